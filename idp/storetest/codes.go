package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// code is a valid, unused authorization code of the user for the client.
func code(hash, userID, clientID string) identity.AuthCode {
	return identity.AuthCode{
		Hash: hash, ClientID: clientID, RedirectURI: "https://" + clientID + ".example/callback",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Nonce: "n-" + hash,
		Scopes: []string{"openid", "profile"}, UserID: userID, Epoch: 0, SessionID: "s-" + userID,
		AuthTime: t0.Add(-time.Second), AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: t0.Add(identity.CodeTTL),
	}
}

// getCode returns the code stored under hash as UpdateCode's fn sees it, changing nothing, and
// checks that UpdateCode returns the same code with fn's error.
func getCode(t *testing.T, s Store, hash string) identity.AuthCode {
	t.Helper()
	var seen identity.AuthCode
	got, err := s.UpdateCode(ctx, hash, func(c identity.AuthCode) (identity.AuthCode, error) {
		seen = c
		return identity.AuthCode{}, errPeek
	})
	wantIs(t, "peek at code "+hash, err, errPeek)
	equal(t, "the code UpdateCode returns with fn's error ("+hash+")", got, seen)
	return seen
}

// noCode checks that no code is stored under hash.
func noCode(t *testing.T, s Store, what, hash string) {
	t.Helper()
	updateNothing(t, what, s.UpdateCode, hash)
}

// redeem is a redemption's updater: a used code is a replay.
func redeem(refreshHash string) func(identity.AuthCode) (identity.AuthCode, error) {
	return func(c identity.AuthCode) (identity.AuthCode, error) {
		if c.Used {
			return identity.AuthCode{}, errReplay
		}
		c.Used, c.RefreshHash = true, refreshHash
		return c, nil
	}
}

var errReplay = errors.New("replay")

func testCodeRoundTrip(t *testing.T, s Store) {
	full := code("c1", "u1", "grafana")
	full.AuthTime, full.CreatedAt, full.ExpiresAt = full.AuthTime.In(zone), full.CreatedAt.In(zone), full.ExpiresAt.In(zone)
	full.Scopes = []string{"openid", "profile", "email", "offline_access"}
	full.AMR = []string{"pwd", "otp"}
	full.Epoch = 3
	// A confidential client's code without PKCE, nonce or session; a nil and an empty list.
	bare := identity.AuthCode{Hash: "c2", ClientID: "billing", RedirectURI: "https://billing.example/cb", UserID: "u2",
		Scopes: nil, AMR: []string{}, ExpiresAt: t0.Add(time.Minute)}
	// Already used, with the refresh token it issued.
	used := code("c3", "u1", "grafana")
	used.Used, used.RefreshHash = true, "rh-c3"
	create(t, s.CreateCode, full, bare, used)

	want := full
	want.Scopes, want.AMR = slices.Clone(full.Scopes), slices.Clone(full.AMR)
	want.AuthTime, want.CreatedAt, want.ExpiresAt = full.AuthTime.UTC(), full.CreatedAt.UTC(), full.ExpiresAt.UTC()
	equal(t, "a code with every field set", getCode(t, s, "c1"), want)
	equal(t, "a code with a nil and an empty list", getCode(t, s, "c2"), bare)
	equal(t, "a used code", getCode(t, s, "c3"), used)
	noCode(t, s, "UpdateCode of no code", "nothing")
}

func testCreateCodeRefusals(t *testing.T, s Store) {
	c := code("c1", "u1", "grafana")
	create(t, s.CreateCode, c)
	other := code("c1", "u2", "gitlab")
	wantCode(t, "a code whose hash is taken", s.CreateCode(ctx, other), apperr.ECONFLICT)
	for name, change := range map[string]func(*identity.AuthCode){
		"no hash":         func(c *identity.AuthCode) { c.Hash = "" },
		"no client":       func(c *identity.AuthCode) { c.ClientID = "" },
		"no redirect URI": func(c *identity.AuthCode) { c.RedirectURI = "" },
		"no user":         func(c *identity.AuthCode) { c.UserID = "" },
		"no expiry":       func(c *identity.AuthCode) { c.ExpiresAt = time.Time{} },
	} {
		bad := code("c2", "u1", "grafana")
		change(&bad)
		wantCode(t, "a code with "+name, s.CreateCode(ctx, bad), apperr.EINVALID)
	}
	equal(t, "the code after the refusals", getCode(t, s, "c1"), c)
	noCode(t, s, "a refused code", "c2")
}

func testUpdateCode(t *testing.T, s Store) {
	c := code("c1", "u1", "grafana")
	create(t, s.CreateCode, c, code("c2", "u1", "grafana"))
	c2 := getCode(t, s, "c2")

	// fn's error changes nothing, and the code comes back as stored, not as fn left it.
	got, err := s.UpdateCode(ctx, "c1", func(c identity.AuthCode) (identity.AuthCode, error) {
		c.Used, c.RefreshHash = true, "rh"
		c.Scopes[0] = "changed" // fn's lists are its own
		return c, errBoom
	})
	wantIs(t, "an updater's error", err, errBoom)
	equal(t, "the code returned with the updater's error", got, c)
	equal(t, "the code after a failed updater", getCode(t, s, "c1"), c)

	// An update may only mark the code used: anything else is refused and changes nothing.
	for name, change := range map[string]func(*identity.AuthCode){
		"the hash":         func(c *identity.AuthCode) { c.Hash = "c9" },
		"the client":       func(c *identity.AuthCode) { c.ClientID = "gitlab" },
		"the redirect URI": func(c *identity.AuthCode) { c.RedirectURI = "https://evil.example/cb" },
		"the challenge":    func(c *identity.AuthCode) { c.CodeChallenge = "" },
		"the nonce":        func(c *identity.AuthCode) { c.Nonce = "other" },
		"the scopes":       func(c *identity.AuthCode) { c.Scopes = append(c.Scopes, "admin") },
		"the user":         func(c *identity.AuthCode) { c.UserID = "u2" },
		"the epoch":        func(c *identity.AuthCode) { c.Epoch++ },
		"the session":      func(c *identity.AuthCode) { c.SessionID = "s9" },
		"the auth time":    func(c *identity.AuthCode) { c.AuthTime = c.AuthTime.Add(time.Second) },
		"the AMR":          func(c *identity.AuthCode) { c.AMR = nil },
		"the creation":     func(c *identity.AuthCode) { c.CreatedAt = c.CreatedAt.Add(time.Second) },
		"the expiry":       func(c *identity.AuthCode) { c.ExpiresAt = c.ExpiresAt.Add(time.Hour) },
	} {
		got, err := s.UpdateCode(ctx, "c1", func(c identity.AuthCode) (identity.AuthCode, error) {
			c.Used = true
			change(&c)
			return c, nil
		})
		wantCode(t, "an update that changes "+name, err, apperr.EINVALID)
		if got.Used {
			t.Fatalf("an update that changes %s: returned %+v as stored", name, got)
		}
		equal(t, "the code after an update that changes "+name, getCode(t, s, "c1"), c)
	}
	noCode(t, s, "the hash an update tried", "c9")

	// A redemption marks it used and names what it issued; the result is what is stored.
	got, err = s.UpdateCode(ctx, "c1", redeem("rh-1"))
	check(t, err)
	want := c
	want.Used, want.RefreshHash = true, "rh-1"
	equal(t, "UpdateCode's result", got, want)
	equal(t, "the code after its redemption", getCode(t, s, "c1"), want)
	// A replay gets the code as stored — with what the first redemption issued — and its error.
	got, err = s.UpdateCode(ctx, "c1", redeem("rh-2"))
	wantIs(t, "a second redemption", err, errReplay)
	equal(t, "the code a replay is given", got, want)
	// A used code is not un-used.
	_, err = s.UpdateCode(ctx, "c1", func(c identity.AuthCode) (identity.AuthCode, error) { c.Used = false; return c, nil })
	wantCode(t, "an update that un-uses a code", err, apperr.EINVALID)
	equal(t, "the code after it", getCode(t, s, "c1"), want)
	// The used flag and refresh hash may be set apart: no refresh token, then one named later.
	got, err = s.UpdateCode(ctx, "c2", redeem(""))
	check(t, err)
	c2.Used = true
	equal(t, "a redemption that issued no refresh token", got, c2)
	equal(t, "the code after it", getCode(t, s, "c2"), c2)
}

func testConcurrentRedeemOneWinner(t *testing.T, s Store) {
	create(t, s.CreateCode, code("c1", "u1", "grafana"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	replays := 0
	for i := range 20 {
		wg.Go(func() {
			rh := fmt.Sprintf("rh-%02d", i)
			got, err := s.UpdateCode(ctx, "c1", func(c identity.AuthCode) (identity.AuthCode, error) {
				// A while between the read and the write, so that redemptions without a lock
				// would overlap and both win.
				time.Sleep(2 * time.Millisecond)
				return redeem(rh)(c)
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, rh)
			case errors.Is(err, errReplay) && got.Used:
				replays++
			default:
				t.Errorf("redemption %d: %+v, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 || replays != 19 {
		t.Fatalf("%d redemptions and %d replays, want 1 and 19", len(winners), replays)
	}
	if got := getCode(t, s, "c1"); got.RefreshHash != winners[0] {
		t.Fatalf("the stored code names %q, want the winner's %q", got.RefreshHash, winners[0])
	}
}

func testDeleteDeadCodes(t *testing.T, s Store) {
	expiring := func(hash string, at time.Time) identity.AuthCode {
		c := code(hash, "u1", "grafana")
		c.ExpiresAt = at
		return c
	}
	// Used or not, a code stays until it has expired: a replay must be recognised until then.
	used := expiring("later-used", t0.Add(time.Hour))
	used.Used = true
	create(t, s.CreateCode, expiring("gone1", t0.Add(-time.Hour)), expiring("gone2", t0.Add(-time.Microsecond)),
		expiring("at", t0), expiring("later", t0.Add(time.Microsecond)), used)
	n, err := s.DeleteDeadCodes(ctx, t0.In(zone))
	check(t, err)
	if n != 2 {
		t.Fatalf("DeleteDeadCodes removed %d, want the 2 that expired before", n)
	}
	noCode(t, s, "a code that expired before", "gone1")
	noCode(t, s, "a code that expired a microsecond before", "gone2")
	for _, h := range []string{"at", "later", "later-used"} {
		getCode(t, s, h) // still there
	}
	n, err = s.DeleteDeadCodes(ctx, t0)
	check(t, err)
	if n != 0 {
		t.Fatalf("DeleteDeadCodes again removed %d, want 0", n)
	}
	n, err = s.DeleteDeadCodes(ctx, t0.Add(2*time.Hour))
	check(t, err)
	if n != 3 {
		t.Fatalf("DeleteDeadCodes later removed %d, want 3", n)
	}
	noCode(t, s, "a used code past its expiry", "later-used")
}
