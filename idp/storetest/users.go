package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func testUserRoundTrip(t *testing.T, s Store) {
	equal(t, "users of an empty store", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{})
	u := identity.User{ID: "u1", Username: "Alice.Smith", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		CreatedAt: t0.In(zone), Epoch: 7}
	check(t, s.CreateUser(ctx, u))
	want := u
	want.CreatedAt = t0
	equal(t, "GetUser", getUser(t, s, "u1"), want)
	got, err := s.GetUserByName(ctx, "alice.SMITH")
	check(t, err)
	equal(t, "GetUserByName in another case", got, want)
	equal(t, "ListUsers", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{want})
	_, err = s.GetUser(ctx, "nobody")
	wantCode(t, "GetUser of no user", err, apperr.ENOTFOUND)
	_, err = s.GetUserByName(ctx, "nobody")
	wantCode(t, "GetUserByName of no user", err, apperr.ENOTFOUND)
}

func testCreateUserRefusals(t *testing.T, s Store) {
	alice := user("u1")
	alice.Username = "Alice"
	check(t, s.CreateUser(ctx, alice))
	for _, tt := range []struct {
		name string
		u    identity.User
		code string
	}{
		{"username taken in another case", identity.User{ID: "u2", Username: "aLICE", CreatedAt: t0}, apperr.ECONFLICT},
		{"id taken", identity.User{ID: "u1", Username: "bob", CreatedAt: t0}, apperr.ECONFLICT},
		{"no id", identity.User{Username: "carol", CreatedAt: t0}, apperr.EINVALID},
		{"username too short", identity.User{ID: "u3", Username: "dv", CreatedAt: t0}, apperr.EINVALID},
		{"username with a space", identity.User{ID: "u4", Username: "dave smith", CreatedAt: t0}, apperr.EINVALID},
		{"username not ASCII", identity.User{ID: "u5", Username: "ève", CreatedAt: t0}, apperr.EINVALID},
	} {
		wantCode(t, tt.name, s.CreateUser(ctx, tt.u), tt.code)
	}
	// The refusals left nothing behind, and alice is as she was.
	equal(t, "users after the refusals", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{alice})
	for _, id := range []string{"u2", "u3", "u4", "u5", ""} {
		_, err := s.GetUser(ctx, id)
		wantCode(t, "GetUser of a refused user "+id, err, apperr.ENOTFOUND)
	}
	for _, name := range []string{"bob", "carol"} {
		_, err := s.GetUserByName(ctx, name)
		wantCode(t, "GetUserByName of a refused user "+name, err, apperr.ENOTFOUND)
	}
}

func testConcurrentSignup(t *testing.T, s Store) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []string
	conflicts := 0
	for i := range 20 {
		wg.Go(func() {
			id := fmt.Sprintf("u%02d", i)
			err := s.CreateUser(ctx, identity.User{ID: id, Username: "bob", CreatedAt: t0})
			mu.Lock()
			defer mu.Unlock()
			switch apperr.Code(err) {
			case "":
				created = append(created, id)
			case apperr.ECONFLICT:
				conflicts++
			default:
				t.Errorf("signup %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if len(created) != 1 || conflicts != 19 {
		t.Fatalf("%d created and %d conflicts, want 1 and 19", len(created), conflicts)
	}
	want := identity.User{ID: created[0], Username: "bob", CreatedAt: t0}
	equal(t, "users after the race", listed(t, s.ListUsers, identity.ListOptions{Limit: 100}), []identity.User{want})
}

func usernames(us []identity.User) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.Username)
	}
	return out
}

func testListUsers(t *testing.T, s Store) {
	// Created out of order; listed by normalized username byte by byte, so '-' < '.' < digits <
	// '_' < letters whatever the letter case (a collation that ignores punctuation or case
	// orders these otherwise).
	for i, name := range []string{"carol", "a_b", "Bob", "zed", "a.b", "ALF", "abc", "alice", "a0b", "alfred", "a-b"} {
		u := identity.User{ID: fmt.Sprintf("id%02d", i), Username: name, PasswordHash: "h" + name,
			CreatedAt: t0.Add(time.Duration(i) * time.Second), Epoch: int64(i)}
		check(t, s.CreateUser(ctx, u))
	}
	order := []string{"a-b", "a.b", "a0b", "a_b", "abc", "ALF", "alfred", "alice", "Bob", "carol", "zed"}
	all := listed(t, s.ListUsers, identity.ListOptions{Limit: identity.MaxListLimit})
	equal(t, "all users", usernames(all), order)
	for _, u := range all {
		equal(t, "listed user "+u.ID, u, getUser(t, s, u.ID))
	}

	// Paging: each page starts after the last username of the one before, as it was typed.
	var pages [][]string
	var after string
	for {
		page := listed(t, s.ListUsers, identity.ListOptions{After: after, Limit: 3})
		if len(page) == 0 {
			break
		}
		if len(pages) > len(order) {
			t.Fatal("paging does not end")
		}
		pages = append(pages, usernames(page))
		after = page[len(page)-1].Username
	}
	equal(t, "pages of 3", pages, [][]string{{"a-b", "a.b", "a0b"}, {"a_b", "abc", "ALF"}, {"alfred", "alice", "Bob"}, {"carol", "zed"}})

	for _, tt := range []struct {
		opt  identity.ListOptions
		want []string
	}{
		{identity.ListOptions{After: "b", Limit: 100}, []string{"Bob", "carol", "zed"}},
		{identity.ListOptions{After: "ALFA", Limit: 100}, []string{"alfred", "alice", "Bob", "carol", "zed"}},
		{identity.ListOptions{After: "zed", Limit: 100}, []string{}},
		{identity.ListOptions{Prefix: "AL", Limit: 100}, []string{"ALF", "alfred", "alice"}},
		{identity.ListOptions{Prefix: "al", Limit: 2}, []string{"ALF", "alfred"}},
		{identity.ListOptions{Prefix: "al", After: "alf", Limit: 100}, []string{"alfred", "alice"}},
		{identity.ListOptions{Prefix: "al", After: "Alfred", Limit: 100}, []string{"alice"}},
		{identity.ListOptions{Prefix: "al", After: "b", Limit: 100}, []string{}},
		{identity.ListOptions{Prefix: "b", After: "a", Limit: 100}, []string{"Bob"}},
		{identity.ListOptions{Prefix: "a.", Limit: 100}, []string{"a.b"}},
		{identity.ListOptions{Prefix: "zz", Limit: 100}, []string{}},
		{identity.ListOptions{Limit: 1}, []string{"a-b"}},
	} {
		equal(t, fmt.Sprintf("ListUsers(%+v)", tt.opt), usernames(listed(t, s.ListUsers, tt.opt)), tt.want)
	}
	for _, limit := range []int{0, -1, identity.MaxListLimit + 1} {
		_, err := s.ListUsers(ctx, identity.ListOptions{Limit: limit})
		wantCode(t, fmt.Sprintf("ListUsers with limit %d", limit), err, apperr.EINVALID)
	}
}

func testUpdateUser(t *testing.T, s Store) {
	alice := identity.User{ID: "u1", Username: "alice", PasswordHash: "h1", CreatedAt: t0, Epoch: 2}
	check(t, s.CreateUser(ctx, alice))
	users(t, s, "u2")
	bob := getUser(t, s, "u2")

	var seen identity.User
	got, err := s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) {
		seen = u
		u.Username, u.PasswordHash, u.CreatedAt = "Alice2", "h2", t0.Add(time.Hour).In(zone)
		return u, nil
	})
	check(t, err)
	equal(t, "what the updater was given", seen, alice)
	want := identity.User{ID: "u1", Username: "Alice2", PasswordHash: "h2", CreatedAt: t0.Add(time.Hour), Epoch: 2}
	equal(t, "UpdateUser's result", got, want)
	equal(t, "GetUser after the update", getUser(t, s, "u1"), want)
	byName, err := s.GetUserByName(ctx, "ALICE2")
	check(t, err)
	equal(t, "GetUserByName of the new name", byName, want)
	_, err = s.GetUserByName(ctx, "alice")
	wantCode(t, "GetUserByName of the old name", err, apperr.ENOTFOUND)
	equal(t, "users after the rename", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{want, bob})
	// The old name is free, and the new one taken.
	check(t, s.CreateUser(ctx, identity.User{ID: "u3", Username: "alice", CreatedAt: t0}))
	wantCode(t, "signup with the new name", s.CreateUser(ctx, identity.User{ID: "u4", Username: "alice2", CreatedAt: t0}), apperr.ECONFLICT)
	// Renaming to one's own name in another case is no conflict.
	want.Username = "ALICE2"
	got, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { u.Username = "ALICE2"; return u, nil })
	check(t, err)
	equal(t, "rename to another case", got, want)

	// Refusals change nothing.
	for _, tt := range []struct {
		name string
		fn   func(identity.User) (identity.User, error)
		code string
	}{
		{"rename to another user's name in another case", func(u identity.User) (identity.User, error) { u.Username = "user-U2"; return u, nil }, apperr.ECONFLICT},
		{"change the id", func(u identity.User) (identity.User, error) { u.ID = "u9"; return u, nil }, apperr.EINVALID},
		{"change the epoch", func(u identity.User) (identity.User, error) { u.Epoch++; return u, nil }, apperr.EINVALID},
		{"invalid username", func(u identity.User) (identity.User, error) { u.Username = "a b"; return u, nil }, apperr.EINVALID},
		{"stale hash", func(u identity.User) (identity.User, error) { return u.ReplacePasswordHash("h1", "h3") }, apperr.ECONFLICT},
	} {
		_, err := s.UpdateUser(ctx, "u1", tt.fn)
		wantCode(t, tt.name, err, tt.code)
		equal(t, "u1 after a refused update ("+tt.name+")", getUser(t, s, "u1"), want)
	}
	_, err = s.GetUser(ctx, "u9")
	wantCode(t, "the id an update tried", err, apperr.ENOTFOUND)
	equal(t, "bob after the refused updates", getUser(t, s, "u2"), bob)
	_, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { u.PasswordHash = "h9"; return u, errBoom })
	wantIs(t, "an updater's error", err, errBoom)
	equal(t, "u1 after a failed updater", getUser(t, s, "u1"), want)

	updateNothing(t, "UpdateUser of no user", s.UpdateUser, "nobody")
}

func testConcurrentUpdateUser(t *testing.T, s Store) {
	users(t, s, "u1")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) {
				u.PasswordHash += fmt.Sprintf("<%d>", i)
				return u, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	u := getUser(t, s, "u1")
	for i := range 20 {
		if n := strings.Count(u.PasswordHash, fmt.Sprintf("<%d>", i)); n != 1 {
			t.Fatalf("update %d is in the result %d times, want once: %q", i, n, u.PasswordHash)
		}
	}
	if u.Epoch != 0 || u.Username != "user-u1" {
		t.Fatalf("the updates changed more than the hash: %+v", u)
	}
}

// replaceHash is a password change's updater.
func replaceHash(old, new string) func(identity.User) (identity.User, error) {
	return func(u identity.User) (identity.User, error) { return u.ReplacePasswordHash(old, new) }
}

func testChangeCredentials(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	bound := family("a2", "u1", "ra2")
	bound.SessionID = "s1"
	create(t, s.CreateFamily, family("a", "u1", "ra"), bound, family("b", "u2", "rb"))
	create(t, s.CreateSession, session("s1", "u1", 0), session("s1b", "u1", 0), session("s2", "u2", 0))
	u1Fams, u1Sess := listed(t, s.ListFamilies, "u1"), listed(t, s.ListSessions, "u1")
	u2, u2Fams, u2Sess := getUser(t, s, "u2"), listed(t, s.ListFamilies, "u2"), listed(t, s.ListSessions, "u2")

	// Refused: nothing changes, not the user, not the families, not the sessions.
	_, err := s.ChangeCredentials(ctx, "u1", replaceHash("wrong-old-hash", "h2"))
	wantIs(t, "a change from a stale hash", err, identity.ErrPasswordChanged)
	_, err = s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { u.PasswordHash = "h2"; return u, errBoom })
	wantIs(t, "a failing updater", err, errBoom)
	_, err = s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { u.Epoch = 5; return u, nil })
	wantCode(t, "an updater that sets the epoch", err, apperr.EINVALID)
	_, err = s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { u.ID = "u9"; return u, nil })
	wantCode(t, "an updater that changes the id", err, apperr.EINVALID)
	_, err = s.ChangeCredentials(ctx, "nobody", replaceHash("", "h2"))
	wantCode(t, "ChangeCredentials of no user", err, apperr.ENOTFOUND)
	equal(t, "u1 after the refusals", getUser(t, s, "u1"), user("u1"))
	equal(t, "u1's families after the refusals", listed(t, s.ListFamilies, "u1"), u1Fams)
	equal(t, "u1's sessions after the refusals", listed(t, s.ListSessions, "u1"), u1Sess)

	got, err := s.ChangeCredentials(ctx, "u1", replaceHash("h-u1", "h2"))
	check(t, err)
	want := user("u1")
	want.PasswordHash, want.Epoch = "h2", 1
	equal(t, "ChangeCredentials' result", got, want)
	equal(t, "u1 after the change", getUser(t, s, "u1"), want)
	for i := range u1Fams {
		u1Fams[i].Revoked = true
	}
	equal(t, "u1's families after the change: revoked, nothing else", listed(t, s.ListFamilies, "u1"), u1Fams)
	if _, err := refresh(s, "ra", "ra1", t0); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("refresh of u1's family after the change: %v, want invalid grant", err)
	}
	equal(t, "u1's sessions after the change", listed(t, s.ListSessions, "u1"), []identity.Session{})
	_, err = s.GetSession(ctx, "s1")
	wantCode(t, "GetSession of an ended session", err, apperr.ENOTFOUND)
	_, _, err = s.SessionByToken(ctx, "th-s1b")
	wantCode(t, "SessionByToken of an ended session", err, apperr.ENOTFOUND)
	equal(t, "u2", getUser(t, s, "u2"), u2)
	equal(t, "u2's families", listed(t, s.ListFamilies, "u2"), u2Fams)
	equal(t, "u2's sessions", listed(t, s.ListSessions, "u2"), u2Sess)

	// What a login that checked the old password would make now is refused; the new epoch works.
	wantIs(t, "session for the old epoch", s.CreateSession(ctx, session("s3", "u1", 0)), identity.ErrStaleCredentials)
	wantIs(t, "family for the old epoch", s.CreateFamily(ctx, family("c", "u1", "rc")), identity.ErrStaleCredentials)
	create(t, s.CreateSession, session("s4", "u1", 1))
	fresh := family("d", "u1", "rd")
	fresh.Epoch = 1
	create(t, s.CreateFamily, fresh)
	// A rehash (UpdateUser) keeps the epoch.
	got, err = s.UpdateUser(ctx, "u1", replaceHash("h2", "h3"))
	check(t, err)
	if got.Epoch != 1 || got.PasswordHash != "h3" {
		t.Fatalf("after a rehash: %+v, want h3 at epoch 1", got)
	}
}

func testConcurrentChangeCredentials(t *testing.T, s Store) {
	users(t, s, "u1")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) {
				u.PasswordHash += fmt.Sprintf("<%d>", i)
				return u, nil
			})
			if err != nil {
				t.Errorf("change %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	u := getUser(t, s, "u1")
	for i := range 20 {
		if n := strings.Count(u.PasswordHash, fmt.Sprintf("<%d>", i)); n != 1 {
			t.Fatalf("change %d is in the result %d times, want once: %q", i, n, u.PasswordHash)
		}
	}
	if u.Epoch != 20 {
		t.Fatalf("after 20 credential changes the epoch is %d, want 20", u.Epoch)
	}
}

func testDeleteUser(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	bound := family("a2", "u1", "ra2")
	bound.SessionID = "s1"
	create(t, s.CreateFamily, family("a", "u1", "ra0"), bound, family("b", "u2", "rb"))
	if _, err := refresh(s, "ra0", "ra1", t0); err != nil {
		t.Fatal(err)
	}
	create(t, s.CreateSession, session("s1", "u1", 0), session("s2", "u2", 0))
	u2, u2Fams, u2Sess := getUser(t, s, "u2"), listed(t, s.ListFamilies, "u2"), listed(t, s.ListSessions, "u2")

	check(t, s.DeleteUser(ctx, "u1"))
	_, err := s.GetUser(ctx, "u1")
	wantCode(t, "GetUser of a deleted user", err, apperr.ENOTFOUND)
	_, err = s.GetUserByName(ctx, "user-u1")
	wantCode(t, "GetUserByName of a deleted user", err, apperr.ENOTFOUND)
	equal(t, "users after the delete", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{u2})
	equal(t, "the deleted user's families", listed(t, s.ListFamilies, "u1"), []identity.Family{})
	for _, tok := range []string{"ra0", "ra1", "ra2"} {
		_, err := s.UpdateFamilyByToken(ctx, tok, func(f identity.Family, _ identity.User) (identity.Family, error) { return f, nil })
		wantCode(t, "a token of a deleted user's family", err, apperr.ENOTFOUND)
	}
	equal(t, "the deleted user's sessions", listed(t, s.ListSessions, "u1"), []identity.Session{})
	_, err = s.GetSession(ctx, "s1")
	wantCode(t, "GetSession of a deleted user's session", err, apperr.ENOTFOUND)
	_, _, err = s.SessionByToken(ctx, "th-s1")
	wantCode(t, "SessionByToken of a deleted user's session", err, apperr.ENOTFOUND)
	equal(t, "u2", getUser(t, s, "u2"), u2)
	equal(t, "u2's families", listed(t, s.ListFamilies, "u2"), u2Fams)
	equal(t, "u2's sessions", listed(t, s.ListSessions, "u2"), u2Sess)

	// Nothing can be made for the deleted user, and the delete is done.
	wantIs(t, "a family for a deleted user", s.CreateFamily(ctx, family("c", "u1", "rc")), identity.ErrStaleCredentials)
	wantIs(t, "a session for a deleted user", s.CreateSession(ctx, session("s3", "u1", 0)), identity.ErrStaleCredentials)
	wantCode(t, "a second DeleteUser", s.DeleteUser(ctx, "u1"), apperr.ENOTFOUND)
	wantCode(t, "DeleteUser of no user", s.DeleteUser(ctx, "nobody"), apperr.ENOTFOUND)

	// The families and sessions are gone, not just out of the lists: collecting everything
	// finds only u2's.
	n, err := s.DeleteDeadFamilies(ctx, t0.Add(1000*time.Hour))
	check(t, err)
	if n != 1 {
		t.Fatalf("DeleteDeadFamilies after the delete removed %d, want u2's one", n)
	}
	n, err = s.DeleteDeadSessions(ctx, t0.Add(1000*time.Hour))
	check(t, err)
	if n != 1 {
		t.Fatalf("DeleteDeadSessions after the delete removed %d, want u2's one", n)
	}

	// The username stays reserved until it is released; then it is free, for a new user with
	// nothing of the old one's.
	wantCode(t, "a new user under the deleted user's name", s.CreateUser(ctx, identity.User{ID: "u3", Username: "USER-U1", CreatedAt: t0}), apperr.ECONFLICT)
	_, err = s.ReleaseUsername(ctx, "user-u1")
	check(t, err)
	check(t, s.CreateUser(ctx, identity.User{ID: "u3", Username: "USER-U1", CreatedAt: t0}))
	equal(t, "the new user's families", listed(t, s.ListFamilies, "u3"), []identity.Family{})
}
