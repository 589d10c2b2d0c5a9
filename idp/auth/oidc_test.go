package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

type phase struct{}

// raceFamilies holds the first redemption's family back until the replay has tried (and
// failed) to revoke it: the worst order for the replay.
type raceFamilies struct {
	*boltdb.DB
	revokeMissed chan struct{}
}

func (f *raceFamilies) CreateFamily(ctx context.Context, fam identity.Family) error {
	if ctx.Value(phase{}) == "first" {
		<-f.revokeMissed
	}
	return f.DB.CreateFamily(ctx, fam)
}

func (f *raceFamilies) UpdateFamilyByToken(ctx context.Context, h string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, error) {
	out, err := f.DB.UpdateFamilyByToken(ctx, h, step)
	if ctx.Value(phase{}) == "replay" && apperr.Code(err) == apperr.ENOTFOUND {
		close(f.revokeMissed)
	}
	return out, err
}

// raceCodes says when the first redemption has marked the code used.
type raceCodes struct {
	*boltdb.DB
	once     sync.Once
	redeemed chan struct{}
}

func (c *raceCodes) UpdateCode(ctx context.Context, h string, fn func(identity.AuthCode) (identity.AuthCode, error)) (identity.AuthCode, error) {
	out, err := c.DB.UpdateCode(ctx, h, fn)
	if ctx.Value(phase{}) == "first" {
		c.once.Do(func() { close(c.redeemed) })
	}
	return out, err
}

// A replay racing the first redemption — the code already marked used, the family not made yet,
// so the replay's revocation finds nothing — still ends the family: the replay marks the code in
// the transaction that finds it used, and the first redemption looks again once its family
// exists.
func TestCodeReplayRacingTheFirstRedemption(t *testing.T) {
	svc, db, _ := newService(t)
	ctx := context.Background()
	families := &raceFamilies{DB: db, revokeMissed: make(chan struct{})}
	codes := &raceCodes{DB: db, redeemed: make(chan struct{})}
	svc.Families, svc.Codes, svc.Clients, svc.Consents, svc.Sessions, svc.IDTokenTTL = families, codes, db, db, db, time.Hour
	const secret = "s3cret-of-the-web-app-0123456789abcdef"
	cl := identity.Client{ID: "web", SecretHash: HashClientSecret(secret), RedirectURIs: []string{"https://rp.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"}, CreatedAt: time.Now()}
	if err := db.CreateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	u, _ := db.GetUserByName(ctx, "alice")
	code, err := svc.IssueCode(ctx, CodeRequest{Client: cl, Request: identity.AuthRequest{RedirectURI: "https://rp.example/cb",
		Scopes: []string{"openid", "offline_access"}}, Session: Resolved{UserID: u.ID, Epoch: u.Epoch, AuthTime: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	ex := Exchange{Client: ClientAuth{ID: "web", Secret: secret}, Code: code, RedirectURI: "https://rp.example/cb"}
	type result struct {
		t   Tokens
		err error
	}
	first := make(chan result, 1)
	go func() {
		tk, err := svc.ExchangeCode(context.WithValue(ctx, phase{}, "first"), ex)
		first <- result{tk, err}
	}()
	<-codes.redeemed
	if _, err := svc.ExchangeCode(context.WithValue(ctx, phase{}, "replay"), ex); err != errReplay {
		t.Fatalf("the replay: %v", err)
	}
	r := <-first
	if r.err == nil {
		if _, err := svc.RefreshGrant(ctx, RefreshRequest{Token: r.t.RefreshToken, Client: ex.Client}); err == nil {
			t.Fatal("the family the first redemption made survived the replay")
		}
	}
}
