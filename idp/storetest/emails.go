package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// withEmail is user(id) with an email.
func withEmail(id, email string, verified bool) identity.User {
	u := user(id)
	u.Email, u.EmailVerified = email, verified
	return u
}

// setEmail is an updater that sets the email and its verified flag as given.
func setEmail(email string, verified bool) func(identity.User) (identity.User, error) {
	return func(u identity.User) (identity.User, error) {
		u.Email, u.EmailVerified = email, verified
		return u, nil
	}
}

func testUserEmail(t *testing.T, s Store) {
	alice := withEmail("u1", "Alice@Example.com", true)
	alice.CreatedAt = t0.In(zone)
	check(t, s.CreateUser(ctx, alice))
	alice.CreatedAt = t0
	equal(t, "a user with a verified email", getUser(t, s, "u1"), alice)
	byName, err := s.GetUserByName(ctx, "USER-U1")
	check(t, err)
	equal(t, "GetUserByName of a user with an email", byName, alice)
	for _, e := range []string{"Alice@Example.com", "alice@EXAMPLE.com"} {
		byEmail, err := s.GetUserByEmail(ctx, e)
		check(t, err)
		equal(t, "GetUserByEmail "+e, byEmail, alice)
	}
	for _, e := range []string{"", "bob@example.com", "alice@example.co"} {
		_, err := s.GetUserByEmail(ctx, e)
		wantCode(t, "GetUserByEmail "+e, err, apperr.ENOTFOUND)
	}
	equal(t, "ListUsers with an email", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{alice})
	// Any number of users have no email: "" is never a conflict.
	users(t, s, "u2", "u3")
	u2, u3 := getUser(t, s, "u2"), getUser(t, s, "u3")

	// Taken in any letter case: refused on create, on update, on a credential change.
	for _, email := range []string{"Alice@Example.com", "alice@example.com", "ALICE@EXAMPLE.COM"} {
		err := s.CreateUser(ctx, withEmail("u9", email, false))
		wantIs(t, "signup with a taken email "+email, err, identity.ErrEmailTaken)
		wantCode(t, "signup with a taken email "+email, err, apperr.ECONFLICT)
		_, err = s.UpdateUser(ctx, "u2", setEmail(email, false))
		wantIs(t, "UpdateUser to a taken email "+email, err, identity.ErrEmailTaken)
		wantCode(t, "UpdateUser to a taken email "+email, err, apperr.ECONFLICT)
		_, err = s.ChangeCredentials(ctx, "u2", setEmail(email, false))
		wantIs(t, "ChangeCredentials to a taken email "+email, err, identity.ErrEmailTaken)
	}
	_, err = s.GetUser(ctx, "u9")
	wantCode(t, "a user refused for its email", err, apperr.ENOTFOUND)
	_, err = s.GetUserByName(ctx, "user-u9")
	wantCode(t, "the username of a user refused for its email", err, apperr.ENOTFOUND)
	equal(t, "u2 after the refusals", getUser(t, s, "u2"), u2)

	// Invalid emails and a verified flag without an email are refused, and change nothing.
	for _, tt := range []struct {
		name     string
		email    string
		verified bool
	}{
		{"no @", "alice.example.com", false},
		{"a space", "al ice@example.com", false},
		{"no domain", "alice@", false},
		{"not ASCII", "élise@example.com", false},
		{"verified without an email", "", true},
	} {
		wantCode(t, "signup with "+tt.name, s.CreateUser(ctx, withEmail("u8", tt.email, tt.verified)), apperr.EINVALID)
		_, err := s.UpdateUser(ctx, "u3", setEmail(tt.email, tt.verified))
		wantCode(t, "UpdateUser to "+tt.name, err, apperr.EINVALID)
	}
	_, err = s.GetUser(ctx, "u8")
	wantCode(t, "a user refused for an invalid email", err, apperr.ENOTFOUND)
	equal(t, "u3 after the refusals", getUser(t, s, "u3"), u3)

	// One's own email in another letter case is no conflict, and is stored as given.
	got, err := s.UpdateUser(ctx, "u1", setEmail("ALICE@example.COM", true))
	check(t, err)
	alice.Email = "ALICE@example.COM"
	equal(t, "UpdateUser to one's own email in another case", got, alice)
	equal(t, "GetUser after it", getUser(t, s, "u1"), alice)

	// A change of email frees the old one and takes the new one.
	got, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { return u.SetEmail("alice@new.example") })
	check(t, err)
	alice.Email, alice.EmailVerified = "alice@new.example", false
	equal(t, "UpdateUser to a new email", got, alice)
	equal(t, "GetUser after the new email", getUser(t, s, "u1"), alice)
	got, err = s.UpdateUser(ctx, "u2", setEmail("alice@example.com", false))
	check(t, err)
	u2.Email = "alice@example.com"
	equal(t, "another user takes the old email", got, u2)
	wantIs(t, "signup with the new email", s.CreateUser(ctx, withEmail("u9", "Alice@New.Example", false)), identity.ErrEmailTaken)

	// The verified flag round-trips through an update and a credential change.
	got, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { return u.VerifyEmail() })
	check(t, err)
	alice.EmailVerified = true
	equal(t, "VerifyEmail's result", got, alice)
	equal(t, "GetUser after VerifyEmail", getUser(t, s, "u1"), alice)
	got, err = s.ChangeCredentials(ctx, "u1", replaceHash("h-u1", "h2"))
	check(t, err)
	alice.PasswordHash, alice.Epoch = "h2", 1
	equal(t, "a credential change keeps the email", got, alice)
	equal(t, "GetUser after the credential change", getUser(t, s, "u1"), alice)

	// Removing an email ("") frees it.
	got, err = s.UpdateUser(ctx, "u1", setEmail("", false))
	check(t, err)
	alice.Email, alice.EmailVerified = "", false
	equal(t, "UpdateUser to no email", got, alice)
	got, err = s.ChangeCredentials(ctx, "u3", func(u identity.User) (identity.User, error) {
		u.Email, u.PasswordHash = "ALICE@new.example", "h3"
		return u, nil
	})
	check(t, err)
	u3.Email, u3.PasswordHash, u3.Epoch = "ALICE@new.example", "h3", 1
	equal(t, "ChangeCredentials to a freed email", got, u3)
	equal(t, "GetUser after it", getUser(t, s, "u3"), u3)

	// DeleteUser keeps the email reserved; releasing the username frees it.
	gone := getUser(t, s, "u2")
	check(t, s.DeleteUser(ctx, "u2"))
	wantIs(t, "a new user with a deleted user's email", s.CreateUser(ctx, withEmail("u4", "ALICE@EXAMPLE.COM", true)), identity.ErrEmailTaken)
	_, err = s.ReleaseUsername(ctx, gone.Username)
	check(t, err)
	check(t, s.CreateUser(ctx, withEmail("u4", "ALICE@EXAMPLE.COM", true)))
	equal(t, "a new user with a deleted user's email", getUser(t, s, "u4"), withEmail("u4", "ALICE@EXAMPLE.COM", true))
	wantIs(t, "and it is taken again", s.CreateUser(ctx, withEmail("u5", "alice@example.com", false)), identity.ErrEmailTaken)
}

func testConcurrentSignupOneEmail(t *testing.T, s Store) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []string
	taken := 0
	for i := range 20 {
		wg.Go(func() {
			id := fmt.Sprintf("u%02d", i)
			email := "bob@example.com"
			if i%2 == 1 {
				email = "BOB@example.com"
			}
			err := s.CreateUser(ctx, withEmail(id, email, false))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created = append(created, id)
			case errors.Is(err, identity.ErrEmailTaken):
				taken++
			default:
				t.Errorf("signup %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if len(created) != 1 || taken != 19 {
		t.Fatalf("%d created and %d refused for the email, want 1 and 19", len(created), taken)
	}
	if l := listed(t, s.ListUsers, identity.ListOptions{Limit: 100}); len(l) != 1 || l[0].ID != created[0] {
		t.Fatalf("users after the race: %+v, want %s alone", l, created[0])
	}
}
