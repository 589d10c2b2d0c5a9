package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
)

// A session ended on one process stops working on another within the cache period, and at
// once on the process that ended it.
func TestSessionEndReachesOtherProcessesWithinTheCacheTTL(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	svc.Signup(ctx, "alice", "correct-horse-9", "")
	a, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	one, two := newSessions(svc, db, c), newSessions(svc, db, c)
	one.CacheTTL, two.CacheTTL = 5*time.Second, 5*time.Second
	secret, _, err := one.Start(WithClientIP(ctx, "192.0.2.1"), a, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Sessions{one, two} {
		if r, err := s.Resolve(ctx, secret); err != nil || r.Username != "alice" || r.UserID != a.User.ID {
			t.Fatalf("resolve: %+v, %v", r, err)
		}
	}
	if err := one.End(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Resolve(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Fatalf("the ending process still resolves it: %v", err)
	}
	c.add(4 * time.Second)
	if _, err := two.Resolve(ctx, secret); err != nil {
		t.Fatalf("within the cache period the other process may still believe it: %v", err)
	}
	c.add(time.Second)
	if _, err := two.Resolve(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past the cache period: %v, want no session", err)
	}
}

func TestSessionIdleAndAbsoluteExpiry(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	svc.Signup(ctx, "bob", "correct-horse-9", "")
	a, _ := svc.Authenticate(ctx, creds("bob", "correct-horse-9"))
	s := newSessions(svc, db, c)
	s.IdleTTL = 30 * time.Minute
	secret, _, err := s.Start(WithClientIP(ctx, "192.0.2.1"), a, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Used every 20 minutes, it lives to its absolute expiry of 12 hours, not past it.
	for elapsed := time.Duration(0); elapsed < 12*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
		c.add(20 * time.Minute)
		if _, err := s.Resolve(ctx, secret); err != nil {
			t.Fatalf("used every 20 minutes, it died after %s: %v", elapsed+20*time.Minute, err)
		}
	}
	c.add(20 * time.Minute)
	if _, err := s.Resolve(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past the absolute expiry: %v", err)
	}
	secret, _, _ = s.Start(WithClientIP(ctx, "192.0.2.1"), a, "test")
	c.add(30 * time.Minute)
	if _, err := s.Resolve(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Fatalf("unused for the idle period: %v", err)
	}
	if n, err := db.DeleteDeadSessions(ctx, c.now()); err != nil || n != 2 {
		t.Fatalf("garbage collection removed %d, %v; want both", n, err)
	}
}

func TestSessionSecretShape(t *testing.T) {
	for v, want := range map[string]bool{
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA": true,
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB": false, // bits past the 256th
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA":  false,
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA~": false,
		"":    false,
		"a~b": false,
	} {
		if got := ValidSecret(v); got != want {
			t.Errorf("ValidSecret(%q) = %v, want %v", v, got, want)
		}
	}
}

// blockingStore holds every session lookup of one token hash until released.
type blockingStore struct {
	SessionStore
	hash    string
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) SessionByToken(ctx context.Context, hash string) (identity.Session, identity.User, error) {
	if hash == b.hash {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.SessionStore.SessionByToken(ctx, hash)
}

// The security review found that junk session cookies serialised every real renewal through one
// process-wide mutex held across a store write. Now nothing a client sends takes a lock that
// others wait on: while a hundred lookups for an unknown cookie are stuck in the store, a real
// session still resolves.
func TestSlowLookupsBlockNobodyElse(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	svc.Signup(ctx, "alice", "correct-horse-9", "")
	a, _ := svc.Authenticate(ctx, creds("alice", "correct-horse-9"))
	junk := strings.Repeat("A", SecretLen)
	bs := &blockingStore{SessionStore: db, hash: HashSecret(junk), entered: make(chan struct{}), release: make(chan struct{})}
	s := newSessions(svc, bs, c)
	s.CacheTTL = 5 * time.Second
	secret, _, err := s.Start(WithClientIP(ctx, "192.0.2.1"), a, "test")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := s.Resolve(ctx, junk); !errors.Is(err, ErrNoSession) {
				t.Errorf("junk cookie: %v", err)
			}
		})
		select {
		case <-bs.entered:
		case <-time.After(10 * time.Second): // a deadlock guard, not a timing assertion
			close(bs.release)
			t.Fatal("a lookup waited on another's")
		}
	}
	// All hundred are inside the store now.
	done := make(chan error)
	go func() { _, err := s.Resolve(ctx, secret); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a deadlock guard, not a timing assertion
		t.Fatal("a real session waited on lookups of a junk cookie")
	}
	close(bs.release)
	wg.Wait()
}

// FuzzValidSecret: a session secret is accepted exactly when it is the canonical unpadded
// base64url form of 32 bytes, so nothing else ever costs a store read.
func FuzzValidSecret(f *testing.F) {
	for _, s := range []string{strings.Repeat("A", SecretLen), strings.Repeat("A", SecretLen-1) + "B", "", "a~b", strings.Repeat("_", SecretLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		b, err := base64.RawURLEncoding.Strict().DecodeString(v)
		canonical := err == nil && len(b) == 32 && base64.RawURLEncoding.EncodeToString(b) == v
		if got := ValidSecret(v); got != canonical {
			t.Fatalf("ValidSecret(%q) = %v, want %v", v, got, canonical)
		}
	})
}

// Renewing the idle timer only moves LastSeenAt forward: of touches racing, the latest stays,
// and an earlier one changes nothing.
func TestTouchOnlyMovesLastSeenForward(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	a, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	_, sess, err := newSessions(svc, db, c).Start(WithClientIP(ctx, "192.0.2.1"), a, "test")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := db.UpdateSession(ctx, sess.ID, touch(sess.LastSeenAt.Add(time.Duration(i+1)*time.Minute)))
			if err != nil && !errors.Is(err, identity.ErrUnchanged) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := db.UpdateSession(ctx, sess.ID, touch(sess.LastSeenAt.Add(time.Minute))); !errors.Is(err, identity.ErrUnchanged) {
		t.Fatalf("an earlier touch: %v, want it to change nothing", err)
	}
	got, err := db.GetSession(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := sess.LastSeenAt.Add(10 * time.Minute); !got.LastSeenAt.Equal(want) {
		t.Fatalf("LastSeenAt = %s, want the latest touch %s", got.LastSeenAt, want)
	}
}
