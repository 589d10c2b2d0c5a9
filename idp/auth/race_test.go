package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func newSessions(svc *Service, db SessionStore, c *clock) *Sessions {
	return &Sessions{Store: db, TTL: 12 * time.Hour, Now: c.now, Random: rand.Reader, Logger: slog.New(slog.DiscardHandler)}
}

// gate holds every CreateFamily and CreateSession until it is opened: a login that checked the
// old password is made to commit only after the password change has.
type gate struct {
	identity.FamilyStore
	SessionStore
	waiting chan struct{}
	open    chan struct{}
}

func (g *gate) hold() { g.waiting <- struct{}{}; <-g.open }
func (g *gate) CreateFamily(ctx context.Context, f identity.Family) error {
	g.hold()
	return g.FamilyStore.CreateFamily(ctx, f)
}
func (g *gate) CreateSession(ctx context.Context, s identity.Session) error {
	g.hold()
	return g.SessionStore.CreateSession(ctx, s)
}

// Finding 1 of the security review: a login that read the old hash just before a password change
// committed its refresh family (or session) after the change had revoked the others, leaving the
// attacker a working 30-day refresh token. Now the family and the session are made only if the
// user's credential epoch is still the one the login saw, checked in their own transaction.
func TestLoginRacingPasswordChangeGetsNothing(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	alice, _ := db.GetUserByName(ctx, "alice")
	g := &gate{FamilyStore: db, SessionStore: db, waiting: make(chan struct{}), open: make(chan struct{})}
	svc.Families = g
	sessions := newSessions(svc, g, c)

	type result struct {
		tokens Tokens
		secret string
		err    error
	}
	apiLogin, browserLogin := make(chan result, 1), make(chan result, 1)
	go func() {
		t, _, err := svc.Login(ctx, creds("alice", "correct-horse-9"))
		apiLogin <- result{tokens: t, err: err}
	}()
	go func() {
		a, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9"))
		var secret string
		if err == nil {
			secret, _, err = sessions.Start(WithClientIP(ctx, "192.0.2.1"), a, "test")
		}
		browserLogin <- result{secret: secret, err: err}
	}()
	<-g.waiting // both passwords checked; neither login has stored anything yet
	<-g.waiting
	svc.Families = db // the password change itself is not held
	if err := svc.ChangePassword(WithClientIP(ctx, "192.0.2.9"), alice.ID, "correct-horse-9", "battery-staple-7"); err != nil {
		t.Fatal(err)
	}
	close(g.open)
	api, br := <-apiLogin, <-browserLogin
	if !errors.Is(api.err, ErrInvalidCredentials) || api.tokens.RefreshToken != "" {
		t.Errorf("API login racing the change: refresh token issued=%v, %v; want invalid credentials and no tokens", api.tokens.RefreshToken != "", api.err)
	}
	if !errors.Is(br.err, ErrInvalidCredentials) || br.secret != "" {
		t.Errorf("browser login racing the change: %v; want invalid credentials and no session", br.err)
	}
}

// The same, as an attacker would try it: logins with the old password in a loop while the
// password changes, many rounds; not one family or session may survive its round.
func TestAttackerLoopDuringPasswordChanges(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	pw := []string{"correct-horse-9", "battery-staple-7"}
	if err := svc.Signup(ctx, "alice", pw[0], ""); err != nil {
		t.Fatal(err)
	}
	alice, _ := db.GetUserByName(ctx, "alice")
	sessions := newSessions(svc, db, c)
	for round := range 20 {
		old, next := pw[round%2], pw[(round+1)%2]
		stop := make(chan struct{})
		var mu sync.Mutex
		var refresh, secrets []string
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if t, _, err := svc.Login(ctx, creds("alice", old)); err == nil {
						mu.Lock()
						refresh = append(refresh, t.RefreshToken)
						mu.Unlock()
					}
					if a, err := svc.Authenticate(ctx, creds("alice", old)); err == nil {
						if s, _, err := sessions.Start(WithClientIP(ctx, "192.0.2.1"), a, "test"); err == nil {
							mu.Lock()
							secrets = append(secrets, s)
							mu.Unlock()
						}
					}
				}
			})
		}
		if err := svc.ChangePassword(WithClientIP(ctx, "192.0.2.9"), alice.ID, old, next); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		for _, rt := range refresh {
			if _, err := svc.Refresh(ctx, rt); err == nil {
				t.Fatalf("round %d: a refresh family from the old password survived the change", round)
			}
		}
		for _, s := range secrets {
			if _, err := sessions.Resolve(ctx, s); err == nil {
				t.Fatalf("round %d: a session from the old password survived the change", round)
			}
		}
	}
}

// A device cookie exempts a browser from others' failures only under the credentials it was
// issued with: one collected before a password change is an ordinary client afterwards.
func TestDeviceCookieDiesWithPasswordChange(t *testing.T) {
	svc, db, c := newService(t)
	svc.Throttle = NewThrottle(DefaultThrottle, c.now, nil)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	alice, _ := db.GetUserByName(ctx, "alice")
	withDevice := func(pw string, epoch int64) Credentials {
		cr := creds("alice", pw)
		cr.Device = Device{ID: "dev1", Epoch: epoch, Sub: alice.ID}
		return cr
	}
	for range 5 {
		svc.Authenticate(ctx, creds("alice", "wrong-password-1"))
	}
	if _, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9")); apperr.Code(err) != apperr.ETHROTTLED {
		t.Fatalf("the locked address without a device cookie: %v", err)
	}
	if _, err := svc.Authenticate(ctx, withDevice("correct-horse-9", 0)); err != nil {
		t.Fatalf("the device cookie from the locked address: %v", err)
	}
	if err := svc.ChangePassword(WithClientIP(ctx, "198.51.100.9"), alice.ID, "correct-horse-9", "battery-staple-7"); err != nil {
		t.Fatal(err)
	}
	// A cookie issued to another user of the same name (a deleted one's, released) exempts no one.
	other := withDevice("battery-staple-7", 1)
	other.Device.Sub = "someone-else"
	if _, err := svc.Authenticate(ctx, other); apperr.Code(err) != apperr.ETHROTTLED {
		t.Fatal("a device cookie issued to another user of the same name exempts its holder")
	}
	// The old cookie is now one more client at the locked address.
	if _, err := svc.Authenticate(ctx, withDevice("battery-staple-7", 0)); apperr.Code(err) != apperr.ETHROTTLED {
		t.Fatal("a device cookie from before the password change still exempts its holder")
	}
	if _, err := svc.Authenticate(ctx, withDevice("battery-staple-7", 1)); err != nil {
		t.Fatalf("a device cookie of the current credentials: %v", err)
	}
}
