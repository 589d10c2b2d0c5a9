package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/idp/keys"
	"jwtidp/idp/password"
	"jwtidp/idp/token"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func newService(t *testing.T) (*Service, *boltdb.DB, *clock) {
	t.Helper()
	db, err := boltdb.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
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
	svc := New(Config{
		Users: db, Families: db, Hasher: h, FirstParty: Client{ID: "idp", Scope: "s", Audience: []string{"a"}},
		Issuer:     &token.Issuer{Issuer: "http://idp", TTL: 15 * time.Minute, Keys: km, Now: c.now, Random: rand.Reader},
		RefreshTTL: 24 * time.Hour, Now: c.now, Random: rand.Reader, Logger: log,
	})
	return svc, db, c
}

func TestRefreshFamilyExpiresAtItsAbsoluteLifetime(t *testing.T) {
	svc, _, c := newService(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	tok, _, err := svc.Login(ctx, creds("alice", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	// Refreshing every 12 hours does not extend the family past 24 hours.
	c.add(12 * time.Hour)
	if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil {
		t.Fatalf("refresh at 12h: %v", err)
	}
	c.add(12*time.Hour - time.Second)
	if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil {
		t.Fatalf("refresh a second before 24h: %v", err)
	}
	c.add(time.Second)
	if _, err = svc.Refresh(ctx, tok.RefreshToken); err != identity.ErrInvalidGrant {
		t.Fatalf("refresh at 24h: %v, want invalid grant", err)
	}
}

func TestGarbageCollectionRemovesDeadFamilies(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	svc.Signup(ctx, "bob", "correct-horse-9", "")
	old, _, _ := svc.Login(ctx, creds("bob", "correct-horse-9"))
	svc.Refresh(ctx, old.RefreshToken)
	c.add(23 * time.Hour)
	live, _, _ := svc.Login(ctx, creds("bob", "correct-horse-9"))
	revoked, _, _ := svc.Login(ctx, creds("bob", "correct-horse-9"))
	svc.Revoke(ctx, revoked.RefreshToken)
	if f, tk := db.Counts(); f != 3 || tk != 4 {
		t.Fatalf("before: %d families, %d tokens", f, tk)
	}
	c.add(2 * time.Hour) // the first family is past its 24 h
	gcCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	ticks := make(chan time.Time)
	go func() { svc.collectOn(gcCtx, ticks); close(done) }()
	ticks <- c.now()
	ticks <- c.now() // taken only once the first collection has finished
	if f, tk := db.Counts(); f != 1 || tk != 1 {
		t.Fatalf("after GC: %d families, %d tokens; want the live one alone", f, tk)
	}
	stop()
	<-done // the goroutine stops with its context
	if _, err := svc.Refresh(ctx, live.RefreshToken); err != nil {
		t.Fatalf("the live family was collected: %v", err)
	}
}

func creds(user, pw string) Credentials {
	return Credentials{Username: user, Password: pw}
}

func claimsOf(t *testing.T, raw string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// A grant names the client, scope and audience its tokens are for, and a refresh keeps them.
func TestIssueForAGrant(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	svc.Signup(ctx, "dora", "correct-horse-9", "")
	a, err := svc.Authenticate(ctx, creds("dora", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	grafana := Client{ID: "grafana", Scope: "openid profile", Audience: []string{"grafana", "workitems"}}
	tok, err := svc.Issue(ctx, Grant{User: a.User, Client: grafana, Scope: "openid", Refresh: true})
	if err != nil || tok.RefreshToken == "" || tok.Scope != "openid" {
		t.Fatalf("Issue = %+v, %v", tok.Scope, err)
	}
	check := func(raw string) {
		t.Helper()
		c := claimsOf(t, raw)
		aud, _ := c.GetAudience()
		if c["client_id"] != "grafana" || c["scope"] != "openid" || len(aud) != 2 || aud[0] != "grafana" || c["sub"] != a.User.ID {
			t.Fatalf("claims %v", c)
		}
	}
	check(tok.AccessToken)
	// A registered client's family is not the first-party client's to refresh; nothing changes.
	if _, err := svc.Refresh(ctx, tok.RefreshToken); !errors.Is(err, identity.ErrInvalidGrant) {
		t.Fatalf("the first-party client refreshed grafana's family: %v", err)
	}
	next, err := svc.refresh(ctx, tok.RefreshToken, "", func(f identity.Family) (string, error) { return f.Scope, nil })
	if err != nil {
		t.Fatal(err)
	}
	check(next.AccessToken)
	// Without Refresh, no family; the client's own scope when the grant names none.
	tok, err = svc.Issue(ctx, Grant{User: a.User, Client: grafana})
	if err != nil || tok.RefreshToken != "" || tok.Scope != "openid profile" {
		t.Fatalf("Issue without refresh = %q, %q, %v", tok.RefreshToken, tok.Scope, err)
	}
	// The first-party login keeps its defaults.
	tok, _, _ = svc.Login(ctx, creds("dora", "correct-horse-9"))
	if c := claimsOf(t, tok.AccessToken); c["client_id"] != "idp" || c["scope"] != "s" {
		t.Fatalf("first-party claims %v", c)
	}
}
