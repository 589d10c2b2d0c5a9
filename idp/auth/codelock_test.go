package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"jwtidp/idp/identity"
	"jwtidp/idp/keys"
	"jwtidp/idp/password"
	"jwtidp/idp/pgstore"
	"jwtidp/idp/storetest"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/pgdb/pgtest"
)

// The policy's decisions on the account's code counter, one step at a time.
func TestCodeLockDecisions(t *testing.T) {
	p := DefaultThrottle
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c identity.ThrottleCounter
	for i := range 10 {
		next, wait, locked := p.codeBegin(c, t0, true)
		if wait != 0 || locked || next.Failures != i+1 {
			t.Fatalf("code %d: begin = %+v, %s, %v; want it counted and checked", i+1, next, wait, locked)
		}
		if c, locked = p.codeEnd(next, t0, false); locked != (i == 9) {
			t.Fatalf("wrong code %d: locked = %v; want the 10th to lock", i+1, locked)
		}
	}
	if c.Until != t0.Add(15*time.Minute) || c.Failures != 0 {
		t.Fatalf("after 10 wrong codes: %+v, want locked for 15 minutes", c)
	}
	// Locked: every code is refused, none is counted, a success takes nothing back.
	t1 := t0.Add(14 * time.Minute)
	if next, wait, locked := p.codeBegin(c, t1, true); wait != time.Minute || locked || next != c {
		t.Fatalf("while locked: begin = %+v, %s, %v; want a minute's wait and no change", next, wait, locked)
	}
	if next, _ := p.codeEnd(c, t1, true); next != c {
		t.Fatalf("a right code while locked (counted before the lock) reset the lock: %+v", next)
	}
	// Over: counting starts over.
	t2 := t0.Add(15 * time.Minute)
	if next, wait, _ := p.codeBegin(c, t2, true); wait != 0 || next.Failures != 1 || !next.Until.IsZero() {
		t.Fatalf("after the lock: begin = %+v, %s; want a fresh count", next, wait)
	}
	if next, wait, _ := p.codeBegin(c, t2, false); wait != 0 || next != (identity.ThrottleCounter{}) {
		t.Fatalf("after the lock, no code given: begin = %+v, %s; want the counter dropped", next, wait)
	}
	// A right code outside a lock resets; a missing code is not counted; the window slides.
	c = identity.ThrottleCounter{First: t0, Touched: t0, Failures: 9}
	if next, _ := p.codeEnd(c, t0, true); next != (identity.ThrottleCounter{}) {
		t.Fatalf("a right code: %+v, want the count reset", next)
	}
	if next, wait, _ := p.codeBegin(c, t0, false); wait != 0 || next != c {
		t.Fatalf("no code given: %+v, %s; want nothing counted", next, wait)
	}
	if next, _, _ := p.codeBegin(c, t0.Add(16*time.Minute), true); next.Failures != 1 {
		t.Fatalf("9 failures a window ago: %+v, want a fresh count", next)
	}
	// Guesses in flight fill the count: the next one locks instead of being checked.
	c = identity.ThrottleCounter{First: t0, Touched: t0, Failures: 10}
	if next, wait, locked := p.codeBegin(c, t0, true); !locked || wait != 15*time.Minute || next.Until != t0.Add(15*time.Minute) {
		t.Fatalf("with 10 codes in flight: %+v, %s, %v; want the step locked", next, wait, locked)
	}
}

func TestCodeLockPolicyValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*ThrottlePolicy)
		ok   bool
	}{
		{"default", func(*ThrottlePolicy) {}, true},
		{"code lock off", func(p *ThrottlePolicy) { p.CodeFailures, p.CodeWindow, p.CodeLock = 0, 0, 0 }, true},
		{"negative count", func(p *ThrottlePolicy) { p.CodeFailures = -1 }, false},
		{"no window", func(p *ThrottlePolicy) { p.CodeWindow = 0 }, false},
		{"no lock", func(p *ThrottlePolicy) { p.CodeLock = 0 }, false},
		{"throttling off", func(p *ThrottlePolicy) { p.Failures, p.CodeLock = 0, 0 }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultThrottle
			tt.edit(&p)
			if err := p.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v, want ok %v", p, err, tt.ok)
			}
		})
	}
}

// The in-memory fallback keeps the store contract.
func TestMemoryCodeFailuresConformance(t *testing.T) {
	storetest.RunCodeFailureTests(t, func(*testing.T) identity.CodeFailureStore { return NewMemoryThrottle(15 * time.Minute) })
}

// replica is a Service over a shared PostgreSQL store, as one replica runs it.
func replica(t *testing.T, url string, c *clock) *Service {
	t.Helper()
	db, err := pgstore.Open(context.Background(), pgdb.Config{URL: url, MaxConns: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	km, err := keys.New(context.Background(), db, keys.Options{Bits: 2048, Now: c.now, Random: rand.Reader, Logger: log,
		Policy: keys.Policy{TokenTTL: 15 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 2, time.Second, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	th := NewThrottle(DefaultThrottle, c.now, db)
	th.Codes = db
	return New(Config{
		Users: db, Families: db, Hasher: h, FirstParty: Client{ID: "idp", Scope: "s", Audience: []string{"a"}},
		Issuer:     &token.Issuer{Issuer: "http://idp", TTL: 15 * time.Minute, Keys: km, Now: c.now, Random: rand.Reader},
		RefreshTTL: 24 * time.Hour, Now: c.now, Random: rand.Reader, Logger: log, Audit: db, Throttle: th,
	})
}

// totpUser signs alice up on svc with TOTP on, and returns her and a code generator.
func totpUser(t *testing.T, svc *Service, c *clock) (identity.User, func() string) {
	t.Helper()
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	u, err := svc.Users.GetUserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e, err := svc.EnrollTOTP(ctx, u.ID, Reauth{Password: "correct-horse-9"})
	if err != nil {
		t.Fatal(err)
	}
	code := func() string {
		s, err := totp.GenerateCode(e.Secret, c.now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := svc.ConfirmTOTP(ctx, u.ID, code(), ""); err != nil {
		t.Fatal(err)
	}
	c.add(30 * time.Second)
	u, _ = svc.Users.GetUser(ctx, u.ID)
	return u, code
}

// Issue 25, finding 2, below HTTP: two replicas (two Services over one PostgreSQL store) add
// wrong codes from many addresses to one count; at 10 the right code is refused on both, with
// a Retry-After, but not to the owner's device; and guesses sent all at once, on both
// replicas, are checked at most 10 times before the step locks.
func TestCodeLockAcrossReplicas(t *testing.T) {
	url := pgtest.NewDatabase(t)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)}
	a, b := replica(t, url, c), replica(t, url, c)
	ctx := context.Background()
	u, code := totpUser(t, a, c)
	svcs := []*Service{a, b}
	// Only the user's own pre-session can be completed: another's, or a full session, is none.
	for _, pre := range []identity.Session{{Pending: true, UserID: "someone-else"}, {UserID: u.ID}} {
		if _, err := a.SecondFactor(ctx, pre, u, code(), Device{}); !errors.Is(err, ErrNoSession) {
			t.Fatalf("the code step on %+v: %v, want ErrNoSession", pre, err)
		}
	}

	for i := range 10 {
		_, err := svcs[i%2].SecondFactor(WithClientIP(ctx, fmt.Sprintf("198.51.100.%d", i)), identity.Session{Pending: true, UserID: u.ID}, u, "000000", Device{})
		if !errors.Is(err, ErrOTPRequired) || apperr.RetryAfter(err) != 0 {
			t.Fatalf("wrong code %d: %v (retry after %s)", i+1, err, apperr.RetryAfter(err))
		}
	}
	for i, svc := range svcs {
		_, err := svc.SecondFactor(WithClientIP(ctx, fmt.Sprintf("192.0.2.%d", 100+i)), identity.Session{Pending: true, UserID: u.ID}, u, code(), Device{})
		if !errors.Is(err, ErrOTPRequired) || apperr.Code(err) != apperr.EUNAUTHORIZED || apperr.RetryAfter(err) != 15*time.Minute {
			t.Fatalf("the right code on replica %d after 10 wrong ones on both: %v (retry after %s)", i, err, apperr.RetryAfter(err))
		}
	}
	if _, err := b.SecondFactor(WithClientIP(ctx, "192.0.2.200"), identity.Session{Pending: true, UserID: u.ID}, u, code(), Device{ID: "owners-device", Epoch: u.Epoch, Sub: u.ID}); err != nil {
		t.Fatalf("the owner's device while the code step is locked: %v", err)
	}
	events, err := a.Audit.ListAudit(ctx, identity.AuditQuery{UserID: u.ID, Type: identity.AuditLockout, Limit: 10})
	if err != nil || len(events) != 1 {
		t.Fatalf("lockout events: %v, %v; want one", events, err)
	}

	// After the lock, 40 guesses at once over both replicas: the count stops them at 10.
	c.add(15 * time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked := 0
	for i := range 40 {
		wg.Go(func() {
			_, err := svcs[i%2].SecondFactor(WithClientIP(ctx, fmt.Sprintf("2001:db8:%x::1", i)), identity.Session{Pending: true, UserID: u.ID}, u, "000000", Device{})
			if !errors.Is(err, ErrOTPRequired) {
				t.Errorf("guess %d: %v", i, err)
			}
			if apperr.RetryAfter(err) == 0 {
				mu.Lock()
				checked++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if checked != 10 {
		t.Fatalf("%d of 40 simultaneous guesses were checked, want 10", checked)
	}
	if events, _ := a.Audit.ListAudit(ctx, identity.AuditQuery{UserID: u.ID, Type: identity.AuditLockout, Limit: 10}); len(events) != 2 {
		t.Fatalf("%d lockout events after the second lock, want 2", len(events))
	}
}
