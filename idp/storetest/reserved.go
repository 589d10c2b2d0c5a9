package storetest

import (
	"sync"
	"testing"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// A deleted user's username and email stay taken — by signup, by a rename, by an email change,
// in any letter case — until ReleaseUsername frees both; the id stays refused after it.
func testReservedNames(t *testing.T, s Store) {
	gone := withEmail("u1", "Alice@Example.com", true)
	gone.Username = "Alice"
	check(t, s.CreateUser(ctx, gone))
	check(t, s.CreateUser(ctx, user("u2")))
	_, err := s.ReleaseUsername(ctx, "alice")
	wantCode(t, "ReleaseUsername of a live user's name", err, apperr.ENOTFOUND)
	check(t, s.DeleteUser(ctx, "u1"))

	// Signup under the name, in another case, or with the email is refused and stores nothing.
	newcomer := user("u3")
	newcomer.Username = "ALICE"
	wantCode(t, "CreateUser with a reserved username", s.CreateUser(ctx, newcomer), apperr.ECONFLICT)
	wantIs(t, "CreateUser with a reserved email", s.CreateUser(ctx, withEmail("u3", "alice@EXAMPLE.com", false)), identity.ErrEmailTaken)
	_, err = s.GetUser(ctx, "u3")
	wantCode(t, "GetUser after the refusals", err, apperr.ENOTFOUND)
	_, err = s.GetUserByName(ctx, "alice")
	wantCode(t, "GetUserByName of a reserved name", err, apperr.ENOTFOUND)
	equal(t, "users while alice is reserved", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{user("u2")})

	// Nor can a live user be renamed to it or take the email.
	_, err = s.UpdateUser(ctx, "u2", func(u identity.User) (identity.User, error) { u.Username = "alice"; return u, nil })
	wantCode(t, "a rename to a reserved name", err, apperr.ECONFLICT)
	_, err = s.UpdateUser(ctx, "u2", setEmail("ALICE@example.com", false))
	wantIs(t, "an email change to a reserved email", err, identity.ErrEmailTaken)
	_, err = s.ChangeCredentials(ctx, "u2", setEmail("alice@example.com", false))
	wantIs(t, "ChangeCredentials to a reserved email", err, identity.ErrEmailTaken)
	equal(t, "u2 after the refusals", getUser(t, s, "u2"), user("u2"))

	// An unknown name is ENOTFOUND; the release frees both, in any letter case, and says what
	// was reserved.
	_, err = s.ReleaseUsername(ctx, "nobody")
	wantCode(t, "ReleaseUsername of no reservation", err, apperr.ENOTFOUND)
	_, err = s.ReleaseUsername(ctx, "")
	wantCode(t, "ReleaseUsername of the empty name", err, apperr.ENOTFOUND)
	r, err := s.ReleaseUsername(ctx, "aLiCe")
	check(t, err)
	equal(t, "the released reservation", r, identity.ReservedName{Username: "Alice", UserID: "u1", Email: "Alice@Example.com"})
	_, err = s.ReleaseUsername(ctx, "alice")
	wantCode(t, "a second ReleaseUsername", err, apperr.ENOTFOUND)
	successor := withEmail("u3", "alice@example.com", false)
	successor.Username = "alice"
	check(t, s.CreateUser(ctx, successor))
	equal(t, "the user under the released name and email", getUser(t, s, "u3"), successor)
	again := user("u1")
	again.Username = "someone-new"
	wantCode(t, "the deleted id after the release", s.CreateUser(ctx, again), apperr.ECONFLICT)

	// A user without an email reserves only the name; the release frees it for a rename too.
	check(t, s.DeleteUser(ctx, "u2"))
	check(t, s.CreateUser(ctx, withEmail("u4", "u4@example.com", false)))
	_, err = s.UpdateUser(ctx, "u4", func(u identity.User) (identity.User, error) { u.Username = "USER-U2"; return u, nil })
	wantCode(t, "a rename to u2's reserved name", err, apperr.ECONFLICT)
	r, err = s.ReleaseUsername(ctx, "user-u2")
	check(t, err)
	equal(t, "u2's reservation", r, identity.ReservedName{Username: "user-u2", UserID: "u2"})
	got, err := s.UpdateUser(ctx, "u4", func(u identity.User) (identity.User, error) { u.Username = "USER-U2"; return u, nil })
	check(t, err)
	if got.Username != "USER-U2" {
		t.Fatalf("rename after the release: %+v", got)
	}
}

// A signup racing the delete of the user whose name it takes never gets the name: either it is
// refused as taken by the live user or as reserved.
func testConcurrentDeleteAndSignup(t *testing.T, s Store) {
	for i := range 5 {
		old := user("old" + string(rune('a'+i)))
		old.Username = "contested"
		if i > 0 {
			_, err := s.ReleaseUsername(ctx, "contested")
			check(t, err)
		}
		check(t, s.CreateUser(ctx, old))
		var wg sync.WaitGroup
		var created error
		wg.Go(func() { check(t, s.DeleteUser(ctx, old.ID)) })
		wg.Go(func() {
			u := user("new" + string(rune('a'+i)))
			u.Username = "CONTESTED"
			created = s.CreateUser(ctx, u)
		})
		wg.Wait()
		wantCode(t, "a signup racing the delete", created, apperr.ECONFLICT)
	}
}
