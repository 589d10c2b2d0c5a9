package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/idp/upstream"
	"jwtidp/shared/apperr"
)

// peopleDirectory is a PasswordConnector whose people are a map, subject → identity, for the
// refresh grant's questions.
type peopleDirectory struct {
	mu     sync.Mutex
	people map[string]upstream.Identity
	asked  int
	down   bool
}

func (d *peopleDirectory) Login(ctx context.Context, username, pw string) (upstream.Identity, error) {
	return upstream.Identity{}, upstream.ErrInvalidCredentials
}

func (d *peopleDirectory) Refresh(ctx context.Context, id upstream.Identity) (upstream.Identity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked++
	if d.down {
		return upstream.Identity{}, upstream.ErrUnavailable
	}
	p, ok := d.people[id.Subject]
	if !ok {
		return upstream.Identity{}, upstream.ErrGone
	}
	return p, nil
}

// newFederated is newService with connectors: "co" (oidc, link create, groups prefixed "co:"),
// "old" (oidc, link existing), "strict" (oidc, second factor required) and "dir" (ldap).
func newFederated(t *testing.T) (*Service, *clock, *peopleDirectory) {
	t.Helper()
	svc, db, c := newService(t)
	key := make([]byte, 32)
	rand.Read(key)
	dir := &peopleDirectory{people: map[string]upstream.Identity{}}
	cfgs := []upstream.Config{
		{ID: "co", Type: upstream.TypeOIDC, Link: upstream.LinkCreate, SecondFactor: upstream.SecondFactorOptional, Groups: upstream.GroupMapping{Prefix: "co:"}},
		{ID: "old", Type: upstream.TypeOIDC, Link: upstream.LinkExisting, SecondFactor: upstream.SecondFactorOptional},
		{ID: "strict", Type: upstream.TypeOIDC, Link: upstream.LinkExisting, SecondFactor: upstream.SecondFactorRequired},
		{ID: "dir", Type: upstream.TypeLDAP, Link: upstream.LinkCreate, SecondFactor: upstream.SecondFactorOptional, Groups: upstream.GroupMapping{Map: map[string]string{"staff": "staff"}}},
	}
	svc.Connectors = map[string]upstream.Config{}
	for _, cfg := range cfgs {
		svc.Connectors[cfg.ID] = cfg
	}
	svc.Directories = map[string]upstream.PasswordConnector{"dir": dir}
	svc.Federations, svc.Groups, svc.UpstreamKey, svc.Statuses = db, db, key, upstream.NewStatuses(cfgs)
	return svc, c, dir
}

func groupsOfUser(t *testing.T, svc *Service, userID string) []string {
	t.Helper()
	g, err := svc.Groups.UserGroups(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestFederatedCreatesLinksAndSyncsGroups(t *testing.T) {
	svc, _, _ := newFederated(t)
	ctx := context.Background()
	id := upstream.Identity{Subject: "s-1", Username: "alice@corp.example", Email: "alice@corp.example", EmailVerified: true, Groups: []string{"Eng", "ops", "bad,name"}}
	a, err := svc.Federated(ctx, "co", id)
	if err != nil {
		t.Fatal(err)
	}
	if a.User.Username != "alice" || a.User.Email != "alice@corp.example" || !a.User.EmailVerified || a.IDP != "co" || !slices.Equal(a.AMR, []string{"fed"}) {
		t.Fatalf("first sign-in: %+v", a)
	}
	if g := groupsOfUser(t, svc, a.User.ID); !slices.Equal(g, []string{"co:eng", "co:ops"}) {
		t.Fatalf("groups %v, want the upstream's, prefixed", g)
	}
	// An admin's group stays when the upstream's change; the upstream's follow what it says.
	if err := svc.Groups.CreateGroup(ctx, identity.Group{Name: "local", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Groups.AddMember(ctx, "local", a.User.ID); err != nil {
		t.Fatal(err)
	}
	id.Groups = []string{"eng", "sre"}
	again, err := svc.Federated(ctx, "co", id)
	if err != nil || again.User.ID != a.User.ID {
		t.Fatalf("second sign-in: %v, user %q want %q", err, again.User.ID, a.User.ID)
	}
	if g := groupsOfUser(t, svc, a.User.ID); !slices.Equal(g, []string{"co:eng", "co:sre", "local"}) {
		t.Fatalf("groups after the upstream's changed: %v", g)
	}
	// Complete signs them in as any other sign-in, its tokens naming the connector's method.
	signed, err := svc.Complete(ctx, again, Target{})
	if err != nil || signed.Tokens.AccessToken == "" {
		t.Fatalf("complete: %v", err)
	}
}

func TestFederatedNeverLinksByEmail(t *testing.T) {
	svc, _, _ := newFederated(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", "alice@corp.example"); err != nil {
		t.Fatal(err)
	}
	local, _ := svc.Users.GetUserByName(ctx, "alice")
	for i, verified := range []bool{false, true} {
		a, err := svc.Federated(ctx, "co", upstream.Identity{Subject: "s-" + string(rune('a'+i)), Username: "alice", Email: "ALICE@corp.example", EmailVerified: verified})
		if err != nil {
			t.Fatal(err)
		}
		if a.User.ID == local.ID || a.User.Email != "" || !strings.HasPrefix(a.User.Username, "alice-") {
			t.Fatalf("email verified=%v: signed in as %+v; want a new user without the address", verified, a.User)
		}
	}
	// An address the upstream does not vouch for is not taken, even when nobody here has it.
	a, err := svc.Federated(ctx, "co", upstream.Identity{Subject: "s-c", Username: "zed", Email: "zed@corp.example"})
	if err != nil || a.User.Email != "" || a.User.Username != "zed" {
		t.Fatalf("an unverified address: %v %+v", err, a.User)
	}
}

func TestFederatedRefusals(t *testing.T) {
	svc, _, _ := newFederated(t)
	ctx := context.Background()
	a, err := svc.Federated(ctx, "co", upstream.Identity{Subject: "s-1", Username: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DisableUser(ctx, a.User.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Federated(ctx, "co", upstream.Identity{Subject: "s-1", Username: "bob"}); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("disabled here: %v, want the wrong password's refusal", err)
	}
	if _, err := svc.Federated(ctx, "nope", upstream.Identity{Subject: "s-1"}); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("unknown connector: %v", err)
	}
	if _, err := svc.Federated(ctx, "co", upstream.Identity{}); apperr.Code(err) != apperr.EINVALID {
		t.Fatalf("no subject: %v", err)
	}
	// second_factor: required — a local account without one is refused.
	if err := svc.Signup(ctx, "carol", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Federated(ctx, "strict", upstream.Identity{Subject: "s-2", Username: "carol"})
	var need *LinkNeeded
	if !errors.As(err, &need) {
		t.Fatalf("strict, first sign-in: %v", err)
	}
	if _, err := svc.LinkExisting(ctx, need.Ticket, creds("carol", "correct-horse-9")); !errors.Is(err, ErrSecondFactorRequired) {
		t.Fatalf("second factor required, none: %v", err)
	}
}

func TestLinkExisting(t *testing.T) {
	svc, c, _ := newFederated(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "dave", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	local, _ := svc.Users.GetUserByName(ctx, "dave")
	id := upstream.Identity{Subject: "s-9", Username: "dave.upstream"}
	_, err := svc.Federated(ctx, "old", id)
	var need *LinkNeeded
	if !errors.As(err, &need) || need.Ticket == "" {
		t.Fatalf("link existing, first sign-in: %v, want a ticket", err)
	}
	if _, err := svc.LinkExisting(ctx, need.Ticket, creds("dave", "wrong-horse-9")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	body, mac, _ := strings.Cut(need.Ticket, ".")
	if _, err := svc.LinkExisting(ctx, body+"x."+mac, creds("dave", "correct-horse-9")); !errors.Is(err, ErrLinkTicket) {
		t.Fatalf("a changed ticket: %v", err)
	}
	a, err := svc.LinkExisting(ctx, need.Ticket, creds("dave", "correct-horse-9"))
	if err != nil || a.User.ID != local.ID || a.IDP != "old" {
		t.Fatalf("linked: %v %+v", err, a)
	}
	if a, err = svc.Federated(ctx, "old", id); err != nil || a.User.ID != local.ID {
		t.Fatalf("after the link: %v %+v", err, a)
	}
	// A ticket lives ten minutes.
	_, err = svc.Federated(ctx, "old", upstream.Identity{Subject: "s-10"})
	errors.As(err, &need)
	c.add(LinkTicketTTL + time.Second)
	if _, err := svc.LinkExisting(ctx, need.Ticket, creds("dave", "correct-horse-9")); !errors.Is(err, ErrLinkTicket) {
		t.Fatalf("expired ticket: %v", err)
	}
}

func TestRefreshAsksTheDirectory(t *testing.T) {
	svc, c, dir := newFederated(t)
	ctx := context.Background()
	id := upstream.Identity{Subject: "uid=erin,ou=people", Username: "erin", Groups: []string{"staff"}}
	dir.people[id.Subject] = id
	a, err := svc.Federated(ctx, "dir", id)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := svc.Complete(ctx, a, Target{})
	if err != nil {
		t.Fatal(err)
	}
	tok := signed.Tokens
	// Within a minute of the sign-in the directory is not asked.
	if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil || dir.asked != 0 {
		t.Fatalf("refresh within a minute: %v, asked %d", err, dir.asked)
	}
	// Down: the refresh goes on.
	c.add(time.Minute)
	dir.down = true
	if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil || dir.asked != 1 {
		t.Fatalf("refresh while the directory is down: %v, asked %d", err, dir.asked)
	}
	// An outage is asked about once a minute too, not at every refresh.
	if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil || dir.asked != 1 {
		t.Fatalf("a second refresh while the directory is down: %v, asked %d", err, dir.asked)
	}
	c.add(time.Minute)
	dir.down = false
	delete(dir.people, id.Subject)
	if _, err = svc.Refresh(ctx, tok.RefreshToken); err != identity.ErrInvalidGrant || dir.asked != 2 {
		t.Fatalf("refresh once gone from the directory: %v, asked %d", err, dir.asked)
	}
}

// Linking needs the local account proven whole: with a second factor, the code too — a
// password alone links nothing — and the sign-in it makes is not asked the code again.
func TestLinkExistingNeedsTheSecondFactor(t *testing.T) {
	svc, c, _ := newFederated(t)
	ctx := context.Background()
	u, code := totpUser(t, svc, c)
	_, err := svc.Federated(ctx, "old", upstream.Identity{Subject: "s-20", Username: "alice.upstream"})
	var need *LinkNeeded
	if !errors.As(err, &need) || need.Upstream != "alice.upstream" {
		t.Fatalf("first sign-in: %v, want a ticket naming the upstream account", err)
	}
	if _, err := svc.LinkExisting(ctx, need.Ticket, creds("alice", "correct-horse-9")); !errors.Is(err, ErrOTPRequired) {
		t.Fatalf("password alone: %v, want the code asked for", err)
	}
	if fs, _ := svc.Federations.UserFederations(ctx, u.ID); len(fs) != 0 {
		t.Fatalf("linked on a password alone: %+v", fs)
	}
	cr := creds("alice", "correct-horse-9")
	cr.OTP = code()
	a, err := svc.LinkExisting(ctx, need.Ticket, cr)
	if err != nil || a.User.ID != u.ID || !slices.Equal(a.AMR, []string{"fed", "otp", "mfa"}) {
		t.Fatalf("password and code: %v %+v", err, a)
	}
	if _, err := svc.Complete(ctx, a, Target{}); err != nil {
		t.Fatalf("complete: %v (ErrOTPRequired: the code was asked again)", err)
	}
}

// noticeMailer composes only notices, each a message naming what happened.
type noticeMailer struct{ Mailer }

func (noticeMailer) Notice(u identity.User, what string) (identity.Mail, bool, error) {
	if !u.EmailVerified {
		return identity.Mail{}, false, nil
	}
	return identity.Mail{ID: "m-" + u.ID, To: u.Email, Subject: what, Text: what, Kind: "notice", UserID: u.ID, CreatedAt: time.Now()}, true, nil
}
func (noticeMailer) Queued() {}

// The owner of a local account is told by mail when an upstream identity is linked to it: a
// way in that outlives a password change should not arrive unseen.
func TestLinkExistingTellsTheOwner(t *testing.T) {
	svc, c, _ := newFederated(t)
	ctx := context.Background()
	svc.Mail = noticeMailer{}
	if err := svc.Signup(ctx, "erin", "correct-horse-9", "erin@example.com"); err != nil {
		t.Fatal(err)
	}
	u, _ := svc.Users.GetUserByName(ctx, "erin")
	if _, err := svc.VerifyEmail(ctx, u.ID, "erin@example.com"); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Federated(ctx, "old", upstream.Identity{Subject: "s-30", Username: "erin.up"})
	var need *LinkNeeded
	errors.As(err, &need)
	if _, err := svc.LinkExisting(ctx, need.Ticket, creds("erin", "correct-horse-9")); err != nil {
		t.Fatal(err)
	}
	m, err := svc.Users.(identity.MailStore).ClaimMail(ctx, c.now(), time.Minute)
	if err != nil || m.To != "erin@example.com" || m.Subject != NoticeLinked {
		t.Fatalf("the owner's mail: %+v, %v; want the link's notice", m, err)
	}
}

// staleLinks is a federation store whose UserFederations answers an earlier copy: what one
// replica read before another one checked the directory.
type staleLinks struct {
	identity.FederationStore
	copy []identity.Federation
}

func (s staleLinks) UserFederations(context.Context, string) ([]identity.Federation, error) {
	return s.copy, nil
}

// The directory check is claimed in the store: a replica holding a copy read before another
// replica checked the user does not ask the directory again within the minute.
func TestRefreshCheckClaimedInTheStore(t *testing.T) {
	svc, c, dir := newFederated(t)
	ctx := context.Background()
	id := upstream.Identity{Subject: "uid=finn,ou=people", Username: "finn"}
	dir.people[id.Subject] = id
	a, err := svc.Federated(ctx, "dir", id)
	if err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Minute)
	before, err := svc.Federations.UserFederations(ctx, a.User.ID)
	if err != nil || len(before) != 1 {
		t.Fatalf("links: %v %v", before, err)
	}
	// Another replica checks now.
	if _, err := svc.Federations.UpdateFederation(ctx, "dir", id.Subject, func(f identity.Federation) (identity.Federation, error) {
		f.CheckedAt = c.now().UTC()
		return f, nil
	}); err != nil {
		t.Fatal(err)
	}
	svc.Federations = staleLinks{svc.Federations, before}
	if err := svc.CheckUpstream(ctx, a.User.ID); err != nil || dir.asked != 0 {
		t.Fatalf("check from a stale copy: %v, directory asked %d times, want 0", err, dir.asked)
	}
}

// lockedGroups is a store that reads the owner's groups with the family, as PostgreSQL does
// (identity.FamilyGroupsStore), over the bolt store; failSync makes the directory check's last
// write (the link's groups, after the memberships changed) fail.
type lockedGroups struct {
	*boltdb.DB
	failSync bool
	updates  int
}

func (s *lockedGroups) UpdateFamilyByTokenWithGroups(ctx context.Context, hash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, []string, error) {
	f, err := s.DB.UpdateFamilyByToken(ctx, hash, step)
	if err != nil {
		return f, nil, err
	}
	groups, err := s.DB.UserGroups(ctx, f.UserID) // before the directory is asked, as with the lock
	return f, groups, err
}

func (s *lockedGroups) UpdateFederation(ctx context.Context, connector, subject string, fn func(identity.Federation) (identity.Federation, error)) (identity.Federation, error) {
	if s.failSync {
		if s.updates++; s.updates == 2 { // the first is the check's claim, the second the sync's record
			return identity.Federation{}, errors.New("store gone mid-sync")
		}
	}
	return s.DB.UpdateFederation(ctx, connector, subject, fn)
}

// A directory check that changed the user's memberships and then failed still lets the refresh
// pass, but its token carries the groups as they are now, not those read with the family: a
// group removed upstream does not ride along for a token's lifetime.
func TestRefreshAfterAPartialSyncReadsGroupsAgain(t *testing.T) {
	svc, c, dir := newFederated(t)
	store := &lockedGroups{DB: svc.Families.(*boltdb.DB)}
	svc.Families, svc.Groups, svc.Federations = store, store, store
	ctx := context.Background()
	id := upstream.Identity{Subject: "uid=fay,ou=people", Username: "fay", Groups: []string{"staff"}}
	dir.people[id.Subject] = id
	a, err := svc.Federated(ctx, "dir", id)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := svc.Complete(ctx, a, Target{})
	if err != nil {
		t.Fatal(err)
	}
	if g := accessGroups(t, signed.Tokens.AccessToken); !slices.Equal(g, []string{"staff"}) {
		t.Fatalf("first token's groups %v, want staff", g)
	}
	id.Groups = nil // removed from staff upstream
	dir.people[id.Subject] = id
	c.add(time.Minute)
	store.failSync = true
	tok, err := svc.Refresh(ctx, signed.Tokens.RefreshToken)
	if err != nil {
		t.Fatalf("refresh with a failing sync: %v, want it to pass", err)
	}
	if g := groupsOfUser(t, svc, a.User.ID); len(g) != 0 {
		t.Fatalf("memberships after the sync %v, want none", g)
	}
	if g := accessGroups(t, tok.AccessToken); len(g) != 0 {
		t.Fatalf("the refreshed token carries %v: the groups read before the sync", g)
	}
}
