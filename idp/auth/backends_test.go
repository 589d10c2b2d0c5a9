package auth

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"jwtidp/idp/identity"
	"jwtidp/idp/upstream"
	"jwtidp/shared/apperr"
)

// fakeDirectory is a PasswordConnector that knows one username and password, or is down.
type fakeDirectory struct {
	id, user, password string
	down               bool
	asked              *[]string // every directory's Login calls, in order, by id
	mu                 *sync.Mutex
}

func (d *fakeDirectory) Login(_ context.Context, username, password string) (upstream.Identity, error) {
	d.mu.Lock()
	*d.asked = append(*d.asked, d.id)
	d.mu.Unlock()
	switch {
	case d.down:
		return upstream.Identity{}, errors.Join(errors.New("dial tcp: connection refused"), upstream.ErrUnavailable)
	case username != d.user || password != d.password:
		return upstream.Identity{}, upstream.ErrInvalidCredentials
	}
	return upstream.Identity{Connector: d.id, Subject: "uid=" + username + ",dc=" + d.id, Username: username, Groups: []string{"devs"}}, nil
}

func (d *fakeDirectory) Refresh(context.Context, upstream.Identity) (upstream.Identity, error) {
	return upstream.Identity{}, upstream.ErrGone
}

// withDirectories sets the password backends of svc: the local accounts and two fake directories,
// corp (knows carol) and corp2 (knows dave), in the order given.
func withDirectories(t *testing.T, svc *Service, backends ...string) (dirs map[string]*fakeDirectory, asked func() []string, log *bytes.Buffer) {
	t.Helper()
	var calls []string
	mu := &sync.Mutex{}
	dirs = map[string]*fakeDirectory{
		"corp":  {id: "corp", user: "carol", password: "carol-upstream-1", asked: &calls, mu: mu},
		"corp2": {id: "corp2", user: "dave", password: "dave-upstream-2", asked: &calls, mu: mu},
	}
	svc.Directories = map[string]upstream.PasswordConnector{"corp": dirs["corp"], "corp2": dirs["corp2"]}
	svc.PasswordBackends = backends
	cs := []upstream.Config{{ID: "corp", Type: upstream.TypeLDAP}, {ID: "corp2", Type: upstream.TypeLDAP}}
	svc.Connectors = map[string]upstream.Config{}
	for i := range cs {
		cs[i].Groups.Prefix = cs[i].ID + ":"
		cs[i].Defaults()
		svc.Connectors[cs[i].ID] = cs[i]
	}
	svc.Statuses = upstream.NewStatuses(cs)
	svc.Federations = svc.Users.(identity.FederationStore) // the test's bbolt store
	log = &bytes.Buffer{}
	svc.Logger = slog.New(slog.NewTextHandler(log, nil))
	svc.Throttle = NewThrottle(ThrottlePolicy{Failures: 3, RemoteFailures: 3, Window: time.Hour, Wait: time.Minute, MaxWait: time.Hour}, svc.Now, nil)
	asked = func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(calls)
		calls = calls[:0]
		return out
	}
	return dirs, asked, log
}

// The form's password goes to each backend in order until one takes it; a local account's
// right password asks no directory.
func TestPasswordBackendsInOrder(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	_, asked, _ := withDirectories(t, svc, "local", "corp", "corp2")

	if a, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9")); err != nil || a.User.Username != "alice" || a.IDP != "" {
		t.Fatalf("alice's local password: %+v, %v", a, err)
	}
	if got := asked(); len(got) != 0 {
		t.Errorf("a local sign-in asked the directories %v", got)
	}
	if _, err := svc.Authenticate(ctx, creds("alice", "wrong-password-1")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("alice's wrong password: %v", err)
	}
	if got := asked(); !slices.Equal(got, []string{"corp", "corp2"}) {
		t.Errorf("a wrong password asked %v, want corp then corp2", got)
	}
	// corp takes carol: corp2 is not asked; corp2 takes dave after corp refused him.
	svc.Authenticate(ctx, creds("carol", "carol-upstream-1"))
	if got := asked(); !slices.Equal(got, []string{"corp"}) {
		t.Errorf("carol asked %v, want corp alone", got)
	}
	svc.Authenticate(ctx, creds("dave", "dave-upstream-2"))
	if got := asked(); !slices.Equal(got, []string{"corp", "corp2"}) {
		t.Errorf("dave asked %v, want corp then corp2", got)
	}
	// Without local in the list, a local password is nobody's.
	svc.PasswordBackends = []string{"corp2"}
	if _, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9")); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("alice with password_backends [corp2]: %v, want a wrong password", err)
	}
}

// A directory's success is handed to Federated with the connector's id.
func TestPasswordBackendDirectorySignsInThroughFederated(t *testing.T) {
	svc, _, _ := newService(t)
	withDirectories(t, svc, "local", "corp")
	ctx := context.Background()
	a, err := svc.Authenticate(ctx, creds("carol", "carol-upstream-1"))
	if err != nil || a.IDP != "corp" || a.User.ID == "" || !slices.Equal(a.AMR, []string{"pwd"}) {
		t.Fatalf("carol through corp: %+v, %v", a, err)
	}
	f, err := svc.Federations.GetFederation(ctx, "corp", "uid=carol,dc=corp")
	if err != nil || f.UserID != a.User.ID || !slices.Equal(f.Groups, []string{"corp:devs"}) {
		t.Errorf("carol's link = %+v, %v; want her user with group corp:devs", f, err)
	}
	// The directory's password is not kept here: carol has no local password.
	u, err := svc.Users.GetUser(ctx, a.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := svc.Hasher.Verify(ctx, u.PasswordHash, "carol-upstream-1"); ok {
		t.Errorf("carol's directory password became her local one")
	}
}

// An attempt counts once toward the lockout however many backends refused it, and a locked
// attempt asks no backend, the right password included.
func TestPasswordBackendsThrottleOncePerAttempt(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	_, asked, _ := withDirectories(t, svc, "corp", "local", "corp2")
	for i := range 3 { // Failures and RemoteFailures: 3
		if _, err := svc.Authenticate(ctx, creds("carol", "wrong-password-1")); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong password %d: %v, want invalid credentials (each attempt counts once)", i+1, err)
		}
	}
	if got := asked(); len(got) != 6 {
		t.Errorf("three attempts asked %v, want corp and corp2 three times", got)
	}
	_, err := svc.Authenticate(ctx, creds("carol", "carol-upstream-1"))
	if apperr.Code(err) != apperr.ETHROTTLED {
		t.Fatalf("the right password once locked: %v, want throttled", err)
	}
	if got := asked(); len(got) != 0 {
		t.Errorf("a locked attempt asked %v", got)
	}
}

// A directory that is down is skipped: local accounts still sign in, its users get the wrong
// password's answer, and the outage is logged and recorded — without the password.
func TestPasswordBackendDown(t *testing.T) {
	svc, _, c := newService(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	dirs, asked, log := withDirectories(t, svc, "corp", "local")
	dirs["corp"].down = true
	if a, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9")); err != nil || a.User.Username != "alice" {
		t.Fatalf("alice with corp down: %+v, %v", a, err)
	}
	if got := asked(); !slices.Equal(got, []string{"corp"}) {
		t.Errorf("asked %v, want corp (down) then the local accounts", got)
	}
	_, err := svc.Authenticate(ctx, creds("carol", "carol-upstream-1"))
	if !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("carol with corp down: %v, want the wrong password's 401", err)
	}
	if !strings.Contains(log.String(), "directory unavailable") || !strings.Contains(log.String(), "connector=corp") {
		t.Errorf("the outage is not logged:\n%s", log)
	}
	if strings.Contains(log.String(), "carol-upstream-1") {
		t.Errorf("the password reached the log:\n%s", log)
	}
	st := svc.Statuses.List()
	if !st[0].LastError.Equal(c.now()) || st[0].Error == "" || !st[0].LastSuccess.IsZero() {
		t.Errorf("corp's status = %+v, want its last error now", st[0])
	}
}

// A directory's user with our TOTP: /auth needs the code beside the directory's password, and
// the browser's form defers it to the next page, as for a local account.
func TestPasswordBackendDirectoryUserWithTOTP(t *testing.T) {
	svc, _, c := newService(t)
	withDirectories(t, svc, "local", "corp")
	ctx := context.Background()
	a, err := svc.Authenticate(ctx, creds("carol", "carol-upstream-1"))
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte("twenty-byte-seed-xx!")
	seed := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw) // as apps are given it
	if _, err := svc.Users.UpdateUser(ctx, a.User.ID, func(u identity.User) (identity.User, error) {
		u.Factors.TOTP = &identity.TOTP{Secret: raw, Confirmed: true, EnrolledAt: c.now()} // no sealer here
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, creds("carol", "carol-upstream-1")); !errors.Is(err, ErrOTPRequired) {
		t.Fatalf("no code: %v, want it asked for", err)
	}
	deferred := creds("carol", "carol-upstream-1")
	deferred.Deferred = true
	if a, err := svc.Authenticate(ctx, deferred); err != nil || !a.Pending {
		t.Fatalf("the form's step: %v, pending %v", err, a.Pending)
	}
	withCode := creds("carol", "carol-upstream-1")
	withCode.OTP, _ = totp.GenerateCode(seed, c.now())
	if a, err := svc.Authenticate(ctx, withCode); err != nil || !slices.Equal(a.AMR, []string{"pwd", "otp", "mfa"}) || a.IDP != "corp" {
		t.Fatalf("with the code: %v %+v", err, a)
	}
}
