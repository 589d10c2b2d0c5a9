package identity_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// The rules both stores apply around an updater, each from a table. The stores' conformance
// suite holds them to the same rules through the stores.

func TestApply(t *testing.T) {
	old := identity.Client{ID: "c", Name: "old", SecretHash: "h", GrantTypes: []string{identity.GrantClientCredentials}}
	refused := errors.New("refused")
	changed := func(c identity.Client, err error) bool { return err == nil && c.Name == "new" }
	isRefused := func(_ identity.Client, err error) bool { return errors.Is(err, refused) }
	invalid := func(_ identity.Client, err error) bool { return apperr.Code(err) == apperr.EINVALID }
	for _, tt := range []struct {
		name string
		fn   func(identity.Client) (identity.Client, error)
		ok   func(identity.Client, error) bool
	}{
		{"a change", func(c identity.Client) (identity.Client, error) { c.Name = "new"; return c, nil }, changed},
		{"the updater's refusal, as it is", func(c identity.Client) (identity.Client, error) { return c, refused }, isRefused},
		{"a new id", func(c identity.Client) (identity.Client, error) { c.ID = "d"; return c, nil }, invalid},
		{"an invalid result", func(c identity.Client) (identity.Client, error) { c.GrantTypes = nil; return c, nil }, invalid},
	} {
		if next, err := identity.Apply(old, tt.fn); !tt.ok(next, err) {
			t.Errorf("%s: %+v, %v", tt.name, next, err)
		}
	}
	u, err := identity.ApplyCredentials(identity.User{ID: "u", Username: "alice", Epoch: 3},
		func(u identity.User) (identity.User, error) { u.PasswordHash = "x"; return u, nil })
	if err != nil || u.Epoch != 4 || u.PasswordHash != "x" {
		t.Errorf("ApplyCredentials: %+v, %v; want the next epoch", u, err)
	}
	if _, err := identity.ApplyCredentials(identity.User{ID: "u", Username: "alice"},
		func(u identity.User) (identity.User, error) { u.Epoch = 9; return u, nil }); apperr.Code(err) != apperr.EINVALID {
		t.Errorf("ApplyCredentials of an updater that moves the epoch itself: %v", err)
	}
}

func TestApplyStep(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f := identity.Family{ID: "f", UserID: "u", Current: "t1", ExpiresAt: now.Add(time.Hour)}
	u := identity.User{ID: "u"}
	for _, tt := range []struct {
		name    string
		step    func(identity.Family, identity.User) (identity.Family, error)
		keep    bool
		current string // of next
		err     bool
	}{
		{"a refresh", func(f identity.Family, u identity.User) (identity.Family, error) {
			return f.Refresh("t1", "t2", u, now)
		}, true, "t2", false},
		{"a reuse keeps the revocation", func(f identity.Family, u identity.User) (identity.Family, error) {
			return f.Refresh("t0", "t2", u, now)
		}, true, "t1", true},
		{"a refusal without a family", func(identity.Family, identity.User) (identity.Family, error) {
			return identity.Family{}, identity.ErrUnchanged
		}, false, "", true},
		{"a new user", func(f identity.Family, _ identity.User) (identity.Family, error) { f.UserID = "v"; return f, nil }, false, "", true},
	} {
		next, keep, err := f.ApplyStep(u, tt.step)
		if keep != tt.keep || next.Current != tt.current || (err != nil) != tt.err {
			t.Errorf("%s: %+v, keep %v, %v", tt.name, next, keep, err)
		}
	}
	// A refusal without a family is the step's own error, not a refusal of its result.
	if _, _, err := f.ApplyStep(u, func(identity.Family, identity.User) (identity.Family, error) {
		return identity.Family{}, identity.ErrUnchanged
	}); !errors.Is(err, identity.ErrUnchanged) {
		t.Errorf("a refusal without a family: %v, want the step's own error", err)
	}
}

func TestApplyUpdate(t *testing.T) {
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c := identity.AuthCode{Hash: "h", ClientID: "c", RedirectURI: "https://a.example/cb", UserID: "u", Scopes: []string{"openid"}, ExpiresAt: at}
	replay := errors.New("replay")
	next, keep, err := c.ApplyUpdate(func(g identity.AuthCode) (identity.AuthCode, error) {
		g.Scopes[0] = "changed" // its own list: c's stays
		return g, replay
	})
	if keep || !errors.Is(err, replay) || next.Scopes[0] != "openid" || c.Scopes[0] != "openid" {
		t.Errorf("a refusal: %+v, keep %v, %v; want the code as stored, unchanged", next, keep, err)
	}
	if next, keep, err = c.ApplyUpdate(func(g identity.AuthCode) (identity.AuthCode, error) { g.Nonce = "n"; return g, nil }); keep || apperr.Code(err) != apperr.EINVALID || next.Hash != "" {
		t.Errorf("a change of what the code is bound to: %+v, keep %v, %v", next, keep, err)
	}
	if next, keep, err = c.ApplyUpdate(func(g identity.AuthCode) (identity.AuthCode, error) { g.Used = true; return g, nil }); !keep || err != nil || !next.Used {
		t.Errorf("a redemption: %+v, keep %v, %v", next, keep, err)
	}
}

func TestApplyKeys(t *testing.T) {
	old := []identity.SigningKey{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	next, gone, err := identity.ApplyKeys(old, func(ks []identity.SigningKey) ([]identity.SigningKey, error) {
		return append(ks[1:2], identity.SigningKey{ID: "d"}), nil
	})
	if err != nil || len(next) != 2 || !slices.Equal(gone, []string{"a", "c"}) {
		t.Errorf("ApplyKeys: %v, gone %v, %v", next, gone, err)
	}
	for _, set := range [][]identity.SigningKey{{{ID: ""}}, {{ID: "a"}, {ID: "a"}}} {
		if _, _, err := identity.ApplyKeys(old, func([]identity.SigningKey) ([]identity.SigningKey, error) { return set, nil }); apperr.Code(err) != apperr.EINVALID {
			t.Errorf("ApplyKeys of %v: %v, want EINVALID", set, err)
		}
	}
}

func TestCheckEpoch(t *testing.T) {
	u := identity.User{ID: "u", Epoch: 2}
	for _, tt := range []struct {
		u      identity.User
		userID string
		epoch  int64
		stale  bool
	}{
		{u, "u", 2, false},
		{u, "u", 1, true},
		{identity.User{}, "u", 0, true}, // the user is gone
		{u, "v", 2, true},
	} {
		if err := identity.CheckEpoch(tt.u, tt.userID, tt.epoch); errors.Is(err, identity.ErrStaleCredentials) != tt.stale {
			t.Errorf("CheckEpoch(%+v, %s, %d): %v", tt.u, tt.userID, tt.epoch, err)
		}
	}
}

func TestEvicts(t *testing.T) {
	var all []identity.Session
	for i := range identity.MaxSessionsPerUser + identity.MaxPendingPerUser {
		all = append(all, identity.Session{ID: string(rune('A' + i)), Pending: i%2 == 1 && i < 2*identity.MaxPendingPerUser})
	}
	for _, pending := range []bool{false, true} {
		limit := identity.MaxSessionsPerUser
		if pending {
			limit = identity.MaxPendingPerUser
		}
		s := identity.Session{Pending: pending}
		if s.KindLimit() != limit {
			t.Errorf("pending %v: KindLimit %d, want %d", pending, s.KindLimit(), limit)
		}
		got := s.Evicts(all)
		if len(got) != 1 || got[0].Pending != pending || got[0].ID != all[map[bool]int{false: 0, true: 1}[pending]].ID {
			t.Errorf("pending %v: evicts %v, want the oldest of its kind alone", pending, got)
		}
		if got := s.Evicts(all[:3]); len(got) != 0 {
			t.Errorf("pending %v: evicts %v from a few", pending, got)
		}
	}
}

func TestClaims(t *testing.T) {
	alice := identity.User{Username: "Alice", Email: "a@example.com"}
	for _, tt := range []struct {
		name           string
		before, after  identity.User
		claimed, freed identity.UniqueNames
	}{
		{"a new user", identity.User{}, alice, identity.UniqueNames{Username: "alice", Email: "a@example.com"}, identity.UniqueNames{}},
		{"another letter case", alice, identity.User{Username: "ALICE", Email: "A@example.COM"}, identity.UniqueNames{}, identity.UniqueNames{}},
		{"a rename", alice, identity.User{Username: "bob", Email: alice.Email}, identity.UniqueNames{Username: "bob"}, identity.UniqueNames{Username: "alice"}},
		{"an email dropped", alice, identity.User{Username: "alice"}, identity.UniqueNames{}, identity.UniqueNames{Email: "a@example.com"}},
	} {
		claimed, freed := identity.Claims(tt.before, tt.after)
		if claimed != tt.claimed || freed != tt.freed {
			t.Errorf("%s: claimed %+v, freed %+v", tt.name, claimed, freed)
		}
	}
}

func TestWriteCounter(t *testing.T) {
	c := identity.ThrottleCounter{Failures: 1}
	for _, tt := range []struct {
		old, next identity.ThrottleCounter
		want      identity.CounterWrite
	}{
		{c, c, identity.CounterUnchanged},
		{identity.ThrottleCounter{}, identity.ThrottleCounter{}, identity.CounterUnchanged},
		{c, identity.ThrottleCounter{}, identity.CounterDelete},
		{identity.ThrottleCounter{}, c, identity.CounterStore},
		{c, identity.ThrottleCounter{Failures: 2}, identity.CounterStore},
	} {
		if got := identity.WriteCounter(tt.old, tt.next); got != tt.want {
			t.Errorf("WriteCounter(%+v, %+v) = %v, want %v", tt.old, tt.next, got, tt.want)
		}
	}
}
