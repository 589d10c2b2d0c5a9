package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// federation is a valid link of the user to (connector, subject), never checked since.
func federation(connector, subject, userID string) identity.Federation {
	return identity.Federation{Connector: connector, Subject: subject, UserID: userID, CreatedAt: t0}
}

// getFederation returns the link of (connector, subject), or fails the test.
func getFederation(t *testing.T, s Store, connector, subject string) identity.Federation {
	t.Helper()
	f, err := s.GetFederation(ctx, connector, subject)
	check(t, err)
	return f
}

// noFederation checks that (connector, subject) is linked to no one.
func noFederation(t *testing.T, s Store, what, connector, subject string) {
	t.Helper()
	f, err := s.GetFederation(ctx, connector, subject)
	wantIs(t, what, err, identity.ErrNoFederation)
	wantCode(t, what, err, apperr.ENOTFOUND)
	equal(t, what+": what it returns", f, identity.Federation{})
}

// noUser checks that no user has the id.
func noUser(t *testing.T, s Store, what, id string) {
	t.Helper()
	_, err := s.GetUser(ctx, id)
	wantCode(t, what, err, apperr.ENOTFOUND)
}

func testFederationRoundTrip(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	// Every field set, its times in another zone; a nil and an empty list of groups.
	full := federation("company", "248289761001", "u1")
	full.Groups = []string{"company:dev", "company:ops"}
	full.CreatedAt, full.CheckedAt = t0.In(zone), t0.Add(time.Minute).In(zone)
	bare := federation("corp", "uid=alice,ou=people,dc=example,dc=com", "u1")
	empty := federation("azure", "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "u1")
	empty.Groups = []string{}
	// The same subject at another connector is another person.
	other := federation("corp", "248289761001", "u2")
	create(t, s.CreateFederation, full, bare, empty, other)

	want := full
	want.Groups = []string{"company:dev", "company:ops"}
	want.CreatedAt, want.CheckedAt = full.CreatedAt.UTC(), full.CheckedAt.UTC()
	equal(t, "a federation with every field set", getFederation(t, s, "company", "248289761001"), want)
	equal(t, "a federation without groups", getFederation(t, s, bare.Connector, bare.Subject), bare)
	equal(t, "a federation with an empty list of groups", getFederation(t, s, empty.Connector, empty.Subject), empty)
	equal(t, "the same subject at another connector", getFederation(t, s, "corp", "248289761001"), other)

	// By connector, then subject.
	equal(t, "UserFederations", listed(t, s.UserFederations, "u1"), []identity.Federation{empty, want, bare})
	equal(t, "UserFederations of another user", listed(t, s.UserFederations, "u2"), []identity.Federation{other})
	equal(t, "UserFederations of a user without links", listed(t, s.UserFederations, "nobody"), []identity.Federation{})

	// The groups are the store's own: changing what was given or returned changes nothing.
	full.Groups[0] = "evil"
	getFederation(t, s, "company", "248289761001").Groups[1] = "evil"
	listed(t, s.UserFederations, "u1")[1].Groups[0] = "evil"
	equal(t, "the federation after changing slices outside the store", getFederation(t, s, "company", "248289761001"), want)

	noFederation(t, s, "an unknown subject", "company", "nobody")
	noFederation(t, s, "an unknown connector", "nowhere", "248289761001")
	noFederation(t, s, "a subject only a prefix of a linked one", "company", "24828976")
	noFederation(t, s, "connector and subject split elsewhere", "compan", "y\x00248289761001")
	noFederation(t, s, "a subject with a NUL", "company", "248289761001\x00")
	noFederation(t, s, "a subject that is not UTF-8", "company", "\xff")
}

func testCreateFederationRefusals(t *testing.T, s Store) {
	users(t, s, "u1", "u2", "u3")
	linked := federation("company", "sub-1", "u1")
	create(t, s.CreateFederation, linked)

	for what, f := range map[string]identity.Federation{
		"no connector":           federation("", "sub-2", "u1"),
		"no subject":             federation("company", "", "u1"),
		"no user":                federation("company", "sub-2", ""),
		"no creation time":       {Connector: "company", Subject: "sub-2", UserID: "u1"},
		"a subject over 1024":    federation("company", string(make([]byte, 1025)), "u1"),
		"a NUL in the subject":   federation("company", "sub\x002", "u1"),
		"a NUL in the connector": federation("comp\x00any", "sub-2", "u1"),
		"a subject not UTF-8":    federation("company", "sub-\xff", "u1"),
		"a group we cannot have": func() identity.Federation {
			f := federation("company", "sub-2", "u1")
			f.Groups = []string{"Not A Group!"}
			return f
		}(),
	} {
		wantCode(t, "CreateFederation with "+what, s.CreateFederation(ctx, f), apperr.EINVALID)
	}
	noFederation(t, s, "after the invalid links", "company", "sub-2")

	wantCode(t, "CreateFederation for no such user", s.CreateFederation(ctx, federation("company", "sub-2", "ghost")), apperr.ENOTFOUND)
	noFederation(t, s, "after linking no user", "company", "sub-2")

	// The subject is linked already: to someone else or to the same user, the first link stays.
	for _, id := range []string{"u2", "u1"} {
		f := federation("company", "sub-1", id)
		f.Groups = []string{"company:x"}
		err := s.CreateFederation(ctx, f)
		wantIs(t, "CreateFederation of a linked subject for "+id, err, identity.ErrFederationTaken)
		wantCode(t, "CreateFederation of a linked subject for "+id, err, apperr.ECONFLICT)
	}
	equal(t, "the first link after the refusals", getFederation(t, s, "company", "sub-1"), linked)
	equal(t, "the refused user's links", listed(t, s.UserFederations, "u2"), []identity.Federation{})

	// One link per user and connector: u1 has company's sub-1, so not sub-4 as well; another
	// connector's is fine.
	wantIs(t, "CreateFederation of a second subject of one connector", s.CreateFederation(ctx, federation("company", "sub-4", "u1")), identity.ErrConnectorLinked)
	noFederation(t, s, "after a second link of one connector", "company", "sub-4")
	create(t, s.CreateFederation, federation("other", "sub-4", "u1"))

	// A deleted user is no user: their id is never linked.
	check(t, s.DeleteUser(ctx, "u3"))
	wantCode(t, "CreateFederation for a deleted user", s.CreateFederation(ctx, federation("company", "sub-3", "u3")), apperr.ENOTFOUND)
	noFederation(t, s, "after linking a deleted user", "company", "sub-3")
}

func testCreateFederatedUser(t *testing.T, s Store) {
	u := user("u1")
	u.Email = "alice@example.com"
	f := federation("company", "sub-1", "u1")
	f.Groups = []string{"company:dev"}
	check(t, s.CreateFederatedUser(ctx, u, f))
	equal(t, "the federated user", getUser(t, s, "u1"), u)
	equal(t, "their link", getFederation(t, s, "company", "sub-1"), f)
	equal(t, "their links", listed(t, s.UserFederations, "u1"), []identity.Federation{f})

	// Each refusal creates neither the user nor the link.
	users(t, s, "gone")
	check(t, s.DeleteUser(ctx, "gone"))
	for _, c := range []struct {
		what string
		u    identity.User
		f    identity.Federation
		err  error
		code string
	}{
		{"a username taken", identity.User{ID: "u2", Username: "USER-u1", CreatedAt: t0}, federation("company", "sub-2", "u2"),
			identity.ErrUsernameTaken, apperr.ECONFLICT},
		{"an email taken", identity.User{ID: "u2", Username: "bob", Email: "Alice@Example.com", CreatedAt: t0},
			federation("company", "sub-2", "u2"), identity.ErrEmailTaken, apperr.ECONFLICT},
		{"a deleted user's username", identity.User{ID: "u2", Username: "user-gone", CreatedAt: t0}, federation("company", "sub-2", "u2"),
			identity.ErrUsernameTaken, apperr.ECONFLICT},
		{"a deleted user's id", identity.User{ID: "gone", Username: "bob", CreatedAt: t0}, federation("company", "sub-2", "gone"),
			identity.ErrUserIDTaken, apperr.ECONFLICT},
		{"an existing user's id", identity.User{ID: "u1", Username: "bob", CreatedAt: t0}, federation("company", "sub-2", "u1"),
			nil, apperr.ECONFLICT},
		{"the subject linked already", identity.User{ID: "u2", Username: "bob", CreatedAt: t0}, federation("company", "sub-1", "u2"),
			identity.ErrFederationTaken, apperr.ECONFLICT},
		{"an invalid user", identity.User{ID: "u2", Username: "b!", CreatedAt: t0}, federation("company", "sub-2", "u2"),
			nil, apperr.EINVALID},
		{"an invalid link", identity.User{ID: "u2", Username: "bob", CreatedAt: t0}, federation("company", "", "u2"),
			nil, apperr.EINVALID},
		{"a link to another user", identity.User{ID: "u2", Username: "bob", CreatedAt: t0}, federation("company", "sub-2", "u1"),
			nil, apperr.EINVALID},
	} {
		err := s.CreateFederatedUser(ctx, c.u, c.f)
		wantCode(t, "CreateFederatedUser with "+c.what, err, c.code)
		if c.err != nil {
			wantIs(t, "CreateFederatedUser with "+c.what, err, c.err)
		}
		if c.u.ID != "u1" {
			noUser(t, s, "the user after "+c.what, c.u.ID)
		}
		if c.f.Subject != "sub-1" {
			noFederation(t, s, "the link after "+c.what, c.f.Connector, c.f.Subject)
		}
	}
	equal(t, "the first user after the refusals", getUser(t, s, "u1"), u)
	equal(t, "the first link after the refusals", getFederation(t, s, "company", "sub-1"), f)
	equal(t, "the first user's links after the refusals", listed(t, s.UserFederations, "u1"), []identity.Federation{f})
	// Nothing of the refused users holds a name: "bob" and the subject are free.
	_, err := s.GetUserByName(ctx, "bob")
	wantCode(t, "the refused username", err, apperr.ENOTFOUND)
	_, err = s.GetUserByEmail(ctx, "bob@example.com")
	wantCode(t, "the refused email", err, apperr.ENOTFOUND)
	bob := identity.User{ID: "u2", Username: "bob", Email: "bob@example.com", CreatedAt: t0}
	check(t, s.CreateFederatedUser(ctx, bob, federation("company", "sub-2", "u2")))
	equal(t, "the user the refusals named, created after them", getUser(t, s, "u2"), bob)
}

func testUpdateFederation(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	f := federation("company", "sub-1", "u1")
	f.Groups = []string{"company:dev"}
	create(t, s.CreateFederation, f)

	got, err := s.UpdateFederation(ctx, "company", "sub-1", func(old identity.Federation) (identity.Federation, error) {
		equal(t, "what the updater is given", old, f)
		old.Groups[0] = "company:ops" // its own copy
		old.Groups = append(old.Groups, "company:qa")
		old.CheckedAt = t0.Add(time.Hour).In(zone)
		return old, nil
	})
	check(t, err)
	want := f
	want.Groups, want.CheckedAt = []string{"company:ops", "company:qa"}, t0.Add(time.Hour)
	equal(t, "what UpdateFederation returns", got, want)
	equal(t, "the federation after UpdateFederation", getFederation(t, s, "company", "sub-1"), want)
	got.Groups[0] = "evil"
	equal(t, "the federation after changing what was returned", getFederation(t, s, "company", "sub-1"), want)

	// The updater's error is returned as it is, and nothing changes.
	_, err = s.UpdateFederation(ctx, "company", "sub-1", func(old identity.Federation) (identity.Federation, error) {
		old.Groups = nil
		return old, errBoom
	})
	wantIs(t, "UpdateFederation whose updater fails", err, errBoom)
	equal(t, "the federation after a failed updater", getFederation(t, s, "company", "sub-1"), want)

	// The key, the user and the creation stay: moving them is refused, and changes nothing.
	for what, move := range map[string]func(*identity.Federation){
		"the connector":     func(f *identity.Federation) { f.Connector = "corp" },
		"the subject":       func(f *identity.Federation) { f.Subject = "sub-2" },
		"the user":          func(f *identity.Federation) { f.UserID = "u2" },
		"the creation time": func(f *identity.Federation) { f.CreatedAt = f.CreatedAt.Add(time.Second) },
		"an invalid group":  func(f *identity.Federation) { f.Groups = []string{"Bad Group"} },
	} {
		_, err := s.UpdateFederation(ctx, "company", "sub-1", func(old identity.Federation) (identity.Federation, error) {
			old.CheckedAt = t0.Add(2 * time.Hour)
			move(&old)
			return old, nil
		})
		wantCode(t, "UpdateFederation moving "+what, err, apperr.EINVALID)
		equal(t, "the federation after moving "+what, getFederation(t, s, "company", "sub-1"), want)
	}
	noFederation(t, s, "the moved-to subject", "company", "sub-2")
	noFederation(t, s, "the moved-to connector", "corp", "sub-1")
	equal(t, "the other user's links", listed(t, s.UserFederations, "u2"), []identity.Federation{})

	for what, k := range map[string][2]string{
		"no such subject": {"company", "sub-2"}, "no such connector": {"corp", "sub-1"}, "a NUL": {"company", "sub-1\x00"},
	} {
		updateNothing(t, "UpdateFederation of "+what, func(_ context.Context, _ string, fn func(identity.Federation) (identity.Federation, error)) (identity.Federation, error) {
			return s.UpdateFederation(ctx, k[0], k[1], fn)
		}, "")
	}
}

func testConcurrentUpdateFederation(t *testing.T, s Store) {
	users(t, s, "u1")
	create(t, s.CreateFederation, federation("company", "sub-1", "u1"))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateFederation(ctx, "company", "sub-1", func(f identity.Federation) (identity.Federation, error) {
				f.Groups = append(f.Groups, fmt.Sprintf("g%d", i))
				return f, nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		check(t, err)
	}
	if got := getFederation(t, s, "company", "sub-1").Groups; len(got) != n {
		t.Fatalf("groups after %d concurrent updates: %v, want %d", n, got, n)
	}
}

func testDeleteUserFederations(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateFederation, federation("company", "sub-1", "u1"), federation("corp", "alice", "u1"),
		federation("company", "sub-2", "u2"))
	check(t, s.DeleteUser(ctx, "u1"))
	noFederation(t, s, "the deleted user's first link", "company", "sub-1")
	noFederation(t, s, "the deleted user's second link", "corp", "alice")
	equal(t, "the deleted user's links", listed(t, s.UserFederations, "u1"), []identity.Federation{})
	equal(t, "another user's links", listed(t, s.UserFederations, "u2"), []identity.Federation{federation("company", "sub-2", "u2")})
	// The person may be linked again, to another account.
	users(t, s, "u3")
	create(t, s.CreateFederation, federation("company", "sub-1", "u3"))
	equal(t, "the subject linked again", getFederation(t, s, "company", "sub-1"), federation("company", "sub-1", "u3"))
}

// testIDPRoundTrip: sessions, families and codes keep the connector a sign-in went through,
// and "" for a local one; a family keeps its sign-in's auth_time, or none.
func testIDPRoundTrip(t *testing.T, s Store) {
	users(t, s, "u1")
	fed, local := session("s1", "u1", 0), session("s2", "u1", 0)
	fed.IDP, local.CreatedAt = "company", t0.Add(time.Second)
	create(t, s.CreateSession, fed, local)
	equal(t, "a session through a connector", getSession(t, s, "s1"), fed)
	equal(t, "a local session", getSession(t, s, "s2"), local)
	equal(t, "ListSessions", listed(t, s.ListSessions, "u1"), []identity.Session{fed, local})
	got, err := s.UpdateSession(ctx, "s2", func(sess identity.Session) (identity.Session, error) {
		sess.IDP = "corp"
		return sess, nil
	})
	check(t, err)
	local.IDP = "corp"
	equal(t, "UpdateSession setting the IDP", got, local)
	equal(t, "the session after UpdateSession", getSession(t, s, "s2"), local)
	sess, _, err := s.SessionByToken(ctx, fed.TokenHash)
	check(t, err)
	equal(t, "SessionByToken", sess, fed)

	ff, lf := family("f1", "u1", "r1"), family("f2", "u1", "r2")
	ff.IDP, lf.CreatedAt = "company", t0.Add(time.Second)
	ff.AuthTime = t0.Add(-time.Minute) // the sign-in's time, for its refreshes' ID tokens; lf keeps none
	create(t, s.CreateFamily, ff, lf)
	equal(t, "ListFamilies", listed(t, s.ListFamilies, "u1"), []identity.Family{ff, lf})
	gotF, _ := peek(t, s, "r1")
	equal(t, "a family through a connector", gotF, ff)
	next, err := refresh(s, "r1", "r1b", t0)
	check(t, err)
	ff.Current = "r1b"
	equal(t, "the family after a refresh", next, ff)
	gotF, _ = peek(t, s, "r1b")
	equal(t, "the family after a refresh, read again", gotF, ff)

	fc, lc := code("c1", "u1", "app"), code("c2", "u1", "app")
	fc.IDP, lc.Resource = "company", "https://api.example/" // and a code bound to a resource (RFC 8707)
	create(t, s.CreateCode, fc, lc)
	equal(t, "a code through a connector", getCode(t, s, "c1"), fc)
	equal(t, "a local code", getCode(t, s, "c2"), lc)
	used, err := s.UpdateCode(ctx, "c1", redeem("rh"))
	check(t, err)
	fc.Used, fc.RefreshHash = true, "rh"
	equal(t, "the code redeemed", used, fc)
	equal(t, "the code redeemed, read again", getCode(t, s, "c1"), fc)
}
