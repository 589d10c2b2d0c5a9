package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func testFamilyRoundTrip(t *testing.T, s Store) {
	u := user("u1")
	u.Epoch = 3
	check(t, s.CreateUser(ctx, u))
	f := identity.Family{ID: "f1", UserID: "u1", ClientID: "grafana", Scope: "openid profile",
		Audience: []string{"grafana", "workitems"}, SessionID: "s1", Epoch: 3, CreatedAt: t0.In(zone),
		ExpiresAt: t0.Add(30 * 24 * time.Hour).In(zone), Current: "hash0"}
	check(t, s.CreateFamily(ctx, f))
	want := f
	want.Audience = []string{"grafana", "workitems"}
	want.CreatedAt, want.ExpiresAt = t0, t0.Add(30*24*time.Hour)
	equal(t, "ListFamilies", listed(t, s.ListFamilies, "u1"), []identity.Family{want})
	got, owner := peek(t, s, "hash0")
	equal(t, "the family UpdateFamilyByToken's step is given", got, want)
	equal(t, "the user UpdateFamilyByToken's step is given", owner, u)

	// The audience is the store's own: changing what was given or returned changes nothing.
	f.Audience[0] = "evil"
	listed(t, s.ListFamilies, "u1")[0].Audience[0] = "evil"
	equal(t, "ListFamilies after changing slices outside the store", listed(t, s.ListFamilies, "u1"), []identity.Family{want})

	// Revoked reads back too.
	_, err := s.UpdateFamilyByToken(ctx, "hash0", func(f identity.Family, _ identity.User) (identity.Family, error) { return f.Revoke() })
	check(t, err)
	want.Revoked = true
	equal(t, "ListFamilies after a revocation", listed(t, s.ListFamilies, "u1"), []identity.Family{want})
	equal(t, "ListFamilies of a user without families", listed(t, s.ListFamilies, "nobody"), []identity.Family{})
}

func testCreateFamilyRefusals(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	f1 := family("f1", "u1", "r1")
	create(t, s.CreateFamily, f1)
	stale := family("f5", "u1", "r5")
	stale.Epoch = 1 // u1 is at epoch 0
	for _, tt := range []struct {
		name string
		f    identity.Family
		code string
		is   error
	}{
		{"id taken", family("f1", "u2", "r2"), apperr.ECONFLICT, nil},
		{"token issued by another family", family("f2", "u2", "r1"), apperr.ECONFLICT, nil},
		{"no current token", family("f3", "u1", ""), apperr.EINVALID, nil},
		{"no id", family("", "u1", "r3"), apperr.EINVALID, nil},
		{"no user", family("f4", "", "r4"), apperr.EINVALID, nil},
		{"a NUL in the id", family("f\x007", "u1", "r7"), apperr.EINVALID, nil},
		{"an older epoch", stale, apperr.ECONFLICT, identity.ErrStaleCredentials},
		{"a user who does not exist", family("f6", "nobody", "r6"), apperr.ECONFLICT, identity.ErrStaleCredentials},
	} {
		err := s.CreateFamily(ctx, tt.f)
		wantCode(t, tt.name, err, tt.code)
		if tt.is != nil {
			wantIs(t, tt.name, err, tt.is)
		}
	}
	// Nothing was stored or changed by the refusals.
	equal(t, "u1's families", listed(t, s.ListFamilies, "u1"), []identity.Family{f1})
	equal(t, "u2's families", listed(t, s.ListFamilies, "u2"), []identity.Family{})
	equal(t, "the families of a user who does not exist", listed(t, s.ListFamilies, "nobody"), []identity.Family{})
	got, _ := peek(t, s, "r1")
	equal(t, "the family of r1", got, f1)
	for _, tok := range []string{"r2", "r3", "r4", "r5", "r6", "r7"} {
		_, err := s.UpdateFamilyByToken(ctx, tok, func(f identity.Family, _ identity.User) (identity.Family, error) { return f, nil })
		wantCode(t, "token "+tok+" of a refused family", err, apperr.ENOTFOUND)
	}
}

func testRefreshChain(t *testing.T, s Store) {
	users(t, s, "u1")
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	got, err := refresh(s, "r0", "r1", t0)
	check(t, err)
	want := family("f1", "u1", "r1")
	equal(t, "the family after r0 → r1", got, want)
	_, err = refresh(s, "r1", "r2", t0)
	check(t, err)
	want.Current = "r2"
	// Every token the family issued finds it.
	for _, tok := range []string{"r0", "r1", "r2"} {
		f, _ := peek(t, s, tok)
		equal(t, "the family of "+tok, f, want)
	}
	// Replaying r0 is reuse: refused, and the revocation is stored, so r2 is dead too.
	got, err = refresh(s, "r0", "x", t0)
	wantIs(t, "replayed r0", err, identity.ErrReuse)
	want.Revoked = true
	equal(t, "the family returned with the reuse", got, want)
	equal(t, "the family after the reuse", listed(t, s.ListFamilies, "u1"), []identity.Family{want})
	_, err = refresh(s, "r2", "r3", t0)
	wantIs(t, "r2 after the reuse", err, identity.ErrInvalidGrant)
	_, err = refresh(s, "never-issued", "x", t0)
	wantCode(t, "a token never issued", err, apperr.ENOTFOUND)
}

func testUpdateFamilyByToken(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateFamily, family("f1", "u1", "r0"), family("f2", "u1", "q0"))
	f1, f2 := family("f1", "u1", "r0"), family("f2", "u1", "q0")

	// A step's error does not undo what it returned with it: a revocation is kept.
	got, err := s.UpdateFamilyByToken(ctx, "r0", func(f identity.Family, _ identity.User) (identity.Family, error) {
		f.Revoked = true
		return f, errBoom
	})
	wantIs(t, "a step's error", err, errBoom)
	f1.Revoked = true
	equal(t, "what a failing step returned", got, f1)
	equal(t, "f1 after a failing step that revoked it", listed(t, s.ListFamilies, "u1")[0], f1)

	// Refusals change nothing.
	for _, tt := range []struct {
		name string
		step func(identity.Family, identity.User) (identity.Family, error)
		code string
	}{
		{"a step that changes the id", func(f identity.Family, _ identity.User) (identity.Family, error) { f.ID = "f9"; return f, nil }, apperr.EINVALID},
		{"a step that changes the user", func(f identity.Family, _ identity.User) (identity.Family, error) { f.UserID = "u2"; return f, nil }, apperr.EINVALID},
		{"a step that clears Current", func(f identity.Family, _ identity.User) (identity.Family, error) { f.Current = ""; return f, nil }, apperr.EINVALID},
		{"a step that takes another family's token", func(f identity.Family, _ identity.User) (identity.Family, error) { f.Current = "r0"; return f, nil }, apperr.ECONFLICT},
	} {
		_, err := s.UpdateFamilyByToken(ctx, "q0", tt.step)
		wantCode(t, tt.name, err, tt.code)
		equal(t, "the families after "+tt.name, listed(t, s.ListFamilies, "u1"), []identity.Family{f1, f2})
	}
	_, err = s.UpdateFamilyByToken(ctx, "q0", func(identity.Family, identity.User) (identity.Family, error) { return identity.Family{}, errBoom })
	wantIs(t, "a step that returns the zero family", err, errBoom)
	equal(t, "the families after a step that returned the zero family", listed(t, s.ListFamilies, "u1"), []identity.Family{f1, f2})
	equal(t, "u2's families", listed(t, s.ListFamilies, "u2"), []identity.Family{})
	f, _ := peek(t, s, "r0")
	equal(t, "the family of r0", f, f1)

	// A new Current is indexed; the old token still finds the family.
	got, err = s.UpdateFamilyByToken(ctx, "q0", func(f identity.Family, _ identity.User) (identity.Family, error) {
		f.Current, f.Scope = "q1", "t"
		return f, nil
	})
	check(t, err)
	f2.Current, f2.Scope = "q1", "t"
	equal(t, "the step's result", got, f2)
	for _, tok := range []string{"q0", "q1"} {
		f, _ := peek(t, s, tok)
		equal(t, "the family of "+tok, f, f2)
	}

	// The step is given the user as stored now.
	renamed, err := s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { u.Username = "renamed"; return u, nil })
	check(t, err)
	_, owner := peek(t, s, "q1")
	equal(t, "the user the step is given", owner, renamed)
}

func testConcurrentRefresh(t *testing.T, s Store) {
	users(t, s, "u1")
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range 20 {
		wg.Go(func() {
			next := fmt.Sprintf("r1-%02d", i)
			_, err := refresh(s, "r0", next, t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, next)
			case !errors.Is(err, identity.ErrInvalidGrant):
				t.Errorf("refresh %d: %v, want success or invalid grant", i, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded, want exactly 1", len(winners))
	}
	// Every loser presented a spent token: reuse, which revoked the family, winner's token and all.
	want := family("f1", "u1", winners[0])
	want.Revoked = true
	equal(t, "the family after the race", listed(t, s.ListFamilies, "u1"), []identity.Family{want})
}

// Twenty steps on one family, each adding to its scope: none is lost.
func testConcurrentUpdateFamily(t *testing.T, s Store) {
	users(t, s, "u1")
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.UpdateFamilyByToken(ctx, "r0", func(f identity.Family, _ identity.User) (identity.Family, error) {
				f.Scope += fmt.Sprintf(" <%d>", i)
				return f, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	f := listed(t, s.ListFamilies, "u1")[0]
	for i := range 20 {
		if n := strings.Count(f.Scope, fmt.Sprintf("<%d>", i)); n != 1 {
			t.Fatalf("update %d is in the result %d times, want once: %q", i, n, f.Scope)
		}
	}
}

func testListFamilies(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	at := func(f identity.Family, d time.Duration) identity.Family { f.CreatedAt = t0.Add(d); return f }
	// Created out of order; listed by CreatedAt, then ID.
	b, c, a, d := at(family("b", "u1", "rb"), 2*time.Hour), at(family("c", "u1", "rc"), 0), at(family("a", "u1", "ra"), 2*time.Hour), at(family("d", "u1", "rd"), time.Hour)
	e := family("e", "u2", "re")
	create(t, s.CreateFamily, b, c, e, a, d)
	equal(t, "u1's families", listed(t, s.ListFamilies, "u1"), []identity.Family{c, d, a, b})
	equal(t, "u2's families", listed(t, s.ListFamilies, "u2"), []identity.Family{e})
}

func testRevokeUser(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateFamily, family("a", "u1", "ra"), family("b", "u1", "rb"), family("c", "u2", "rc"))
	if _, err := refresh(s, "rb", "rb1", t0); err != nil {
		t.Fatal(err)
	}
	u1Fams, u2Fams := listed(t, s.ListFamilies, "u1"), listed(t, s.ListFamilies, "u2")
	check(t, s.RevokeUserFamilies(ctx, "u1"))
	for i := range u1Fams {
		u1Fams[i].Revoked = true
	}
	equal(t, "u1's families: revoked, nothing else", listed(t, s.ListFamilies, "u1"), u1Fams)
	equal(t, "u2's families", listed(t, s.ListFamilies, "u2"), u2Fams)
	for _, tok := range []string{"ra", "rb", "rb1"} {
		_, err := refresh(s, tok, tok+"x", t0)
		wantIs(t, tok+" after the user's families were revoked", err, identity.ErrInvalidGrant)
	}
	if _, err := refresh(s, "rc", "rc1", t0); err != nil {
		t.Fatalf("another user's family was revoked: %v", err)
	}
	check(t, s.RevokeUserFamilies(ctx, "u1")) // again: nothing left to revoke
	check(t, s.RevokeUserFamilies(ctx, "nobody"))
}

func testDeleteDeadFamilies(t *testing.T, s Store) {
	users(t, s, "u")
	now := t0.Add(time.Hour)
	live, expired, revoked, edge := family("live", "u", "l0"), family("exp", "u", "e0"), family("rev", "u", "v0"), family("edge", "u", "g0")
	live.ExpiresAt = now.Add(time.Microsecond) // a microsecond from death
	expired.ExpiresAt = now.Add(-time.Minute)
	edge.ExpiresAt = now // dead at now
	create(t, s.CreateFamily, live, expired, revoked, edge)
	if _, err := refresh(s, "e0", "e1", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateFamilyByToken(ctx, "v0", func(f identity.Family, _ identity.User) (identity.Family, error) { return f.Revoke() }); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteDeadFamilies(ctx, now)
	check(t, err)
	if n != 3 {
		t.Fatalf("DeleteDeadFamilies removed %d, want 3", n)
	}
	equal(t, "the families left", listed(t, s.ListFamilies, "u"), []identity.Family{live})
	for _, tok := range []string{"e0", "e1", "v0", "g0"} {
		_, err := refresh(s, tok, "z", t0)
		wantCode(t, "token "+tok+" of a deleted family", err, apperr.ENOTFOUND)
	}
	n, err = s.DeleteDeadFamilies(ctx, now)
	check(t, err)
	if n != 0 {
		t.Fatalf("a second DeleteDeadFamilies removed %d, want 0", n)
	}
	// Removed entirely: the ids and every token hash are free again.
	check(t, s.CreateFamily(ctx, family("exp", "u", "e0")))
	check(t, s.CreateFamily(ctx, family("rev", "u", "e1")))
	if _, err := refresh(s, "l0", "l1", t0); err != nil {
		t.Fatalf("the live family was touched: %v", err)
	}
}

// A store that reads the owner's groups with the family (identity.FamilyGroupsStore) returns
// them as UserGroups does — in byte order, empty and not nil for none — beside what
// UpdateFamilyByToken would return, on the fast path and on the path of a token the family
// issued before; a refused step changes nothing there either.
func testUpdateFamilyByTokenWithGroups(t *testing.T, s Store) {
	fg, ok := s.(identity.FamilyGroupsStore)
	if !ok {
		t.Skip("the store reads groups apart from families")
	}
	users(t, s, "u1", "u2")
	create(t, s.CreateFamily, family("f1", "u1", "r0"), family("f2", "u2", "q0"))
	for _, g := range []string{"ops", "eng"} {
		check(t, s.CreateGroup(ctx, identity.Group{Name: g, CreatedAt: t0}))
		check(t, s.AddMember(ctx, g, "u1"))
	}
	step := func(presented, next string) func(identity.Family, identity.User) (identity.Family, error) {
		return func(f identity.Family, u identity.User) (identity.Family, error) {
			return f.Refresh(presented, next, u, t0)
		}
	}
	got, groups, err := fg.UpdateFamilyByTokenWithGroups(ctx, "r0", step("r0", "r1"))
	check(t, err)
	equal(t, "the family after r0 → r1", got, family("f1", "u1", "r1"))
	equal(t, "u1's groups with the family", groups, []string{"eng", "ops"})
	got, groups, err = fg.UpdateFamilyByTokenWithGroups(ctx, "q0", step("q0", "q1"))
	check(t, err)
	equal(t, "the family after q0 → q1", got, family("f2", "u2", "q1"))
	if groups == nil || len(groups) != 0 {
		t.Fatalf("u2's groups with the family: %#v, want empty and not nil", groups)
	}
	// A step that moves Current back to a token the family issued before (the store's other path).
	check(t, s.RemoveMember(ctx, "ops", "u1"))
	got, groups, err = fg.UpdateFamilyByTokenWithGroups(ctx, "r1", func(f identity.Family, _ identity.User) (identity.Family, error) {
		f.Current = "r0"
		return f, nil
	})
	check(t, err)
	equal(t, "the family moved back to r0", got, family("f1", "u1", "r0"))
	equal(t, "u1's groups after leaving ops", groups, []string{"eng"})
	// A refusal changes nothing.
	_, _, err = fg.UpdateFamilyByTokenWithGroups(ctx, "r0", func(identity.Family, identity.User) (identity.Family, error) {
		return identity.Family{}, errBoom
	})
	wantIs(t, "a refusing step", err, errBoom)
	equal(t, "f1 after a refusal", listed(t, s.ListFamilies, "u1"), []identity.Family{family("f1", "u1", "r0")})
	_, _, err = fg.UpdateFamilyByTokenWithGroups(ctx, "never-issued", step("never-issued", "x"))
	wantCode(t, "a token never issued", err, apperr.ENOTFOUND)
}
