package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// auditEvent is a valid event at t0 plus i seconds.
func auditEvent(i int, typ, userID string) identity.AuditEvent {
	return identity.AuditEvent{Time: t0.Add(time.Duration(i) * time.Second), Type: typ, UserID: userID,
		Actor: "user:" + userID, ClientIP: "192.0.2.1", Outcome: "success", Detail: fmt.Sprintf("event %d", i)}
}

// details are the events' details, in the list's order.
func details(l []identity.AuditEvent) []string {
	out := []string{}
	for _, e := range l {
		out = append(out, e.Detail)
	}
	return out
}

// allAudit is every stored event, newest first.
func allAudit(t *testing.T, s Store) []identity.AuditEvent {
	t.Helper()
	return listed(t, s.ListAudit, identity.AuditQuery{Limit: identity.MaxListLimit})
}

func testAuditAppendAndList(t *testing.T, s Store) {
	equal(t, "the audit trail of an empty store", allAudit(t, s), []identity.AuditEvent{})
	// Ten events: even ones alice's logins, odd ones bob's password changes, the last one
	// nobody's key rotation; given in another zone, read back in UTC.
	var given []identity.AuditEvent
	for i := range 10 {
		e := auditEvent(i, identity.AuditLogin, "alice")
		if i%2 == 1 {
			e = auditEvent(i, identity.AuditPasswordChange, "bob")
		}
		if i == 9 {
			e = identity.AuditEvent{Time: e.Time, Type: identity.AuditKeyRotated, Actor: "system", Outcome: "success", Detail: "event 9"}
		}
		e.Time = e.Time.In(zone)
		given = append(given, e)
	}
	check(t, s.AppendAudit(ctx, given[:3]...))
	check(t, s.AppendAudit(ctx, given[3]))
	check(t, s.AppendAudit(ctx, given[4:]...))
	check(t, s.AppendAudit(ctx)) // nothing to append is no error

	all := allAudit(t, s)
	if len(all) != 10 {
		t.Fatalf("%d events listed, want 10", len(all))
	}
	for i, e := range all {
		want := given[9-i]
		want.ID, want.Time = e.ID, want.Time.UTC()
		equal(t, fmt.Sprintf("event %d of the list", i), e, want)
		if e.ID <= 0 || (i > 0 && e.ID >= all[i-1].ID) {
			t.Fatalf("ids of the list %v: want positive, newest (largest) first", ids(all))
		}
	}

	for _, tt := range []struct {
		q    identity.AuditQuery
		want []string
	}{
		{identity.AuditQuery{UserID: "alice", Limit: 100}, []string{"event 8", "event 6", "event 4", "event 2", "event 0"}},
		{identity.AuditQuery{UserID: "bob", Limit: 2}, []string{"event 7", "event 5"}},
		{identity.AuditQuery{UserID: "carol", Limit: 100}, []string{}},
		{identity.AuditQuery{Type: identity.AuditPasswordChange, Limit: 100}, []string{"event 7", "event 5", "event 3", "event 1"}},
		{identity.AuditQuery{Type: identity.AuditKeyRotated, Limit: 100}, []string{"event 9"}},
		{identity.AuditQuery{UserID: "alice", Type: identity.AuditPasswordChange, Limit: 100}, []string{}},
		{identity.AuditQuery{Since: t0.Add(7 * time.Second).In(zone), Limit: 100}, []string{"event 9", "event 8", "event 7"}},
		{identity.AuditQuery{UserID: "alice", Since: t0.Add(3 * time.Second), Limit: 100}, []string{"event 8", "event 6", "event 4"}},
		{identity.AuditQuery{Since: t0.Add(time.Hour), Limit: 100}, []string{}},
		{identity.AuditQuery{Before: all[2].ID, Limit: 3}, []string{"event 6", "event 5", "event 4"}},
		{identity.AuditQuery{Before: all[0].ID + 1000, Limit: 1}, []string{"event 9"}},
		{identity.AuditQuery{Before: all[9].ID, Limit: 100}, []string{}},
		{identity.AuditQuery{UserID: "bob", Before: all[2].ID, Since: t0.Add(2 * time.Second), Limit: 100}, []string{"event 5", "event 3"}},
		{identity.AuditQuery{Limit: 1}, []string{"event 9"}},
	} {
		equal(t, fmt.Sprintf("ListAudit(%+v)", tt.q), details(listed(t, s.ListAudit, tt.q)), tt.want)
	}

	// Paging with Before: every event once, newest first.
	var paged []string
	q := identity.AuditQuery{UserID: "alice", Limit: 2}
	for range 10 {
		page := listed(t, s.ListAudit, q)
		if len(page) == 0 {
			break
		}
		paged = append(paged, details(page)...)
		q.Before = page[len(page)-1].ID
	}
	equal(t, "alice's events page by page", paged, []string{"event 8", "event 6", "event 4", "event 2", "event 0"})

	for _, limit := range []int{0, -1, identity.MaxListLimit + 1} {
		_, err := s.ListAudit(ctx, identity.AuditQuery{Limit: limit})
		wantCode(t, fmt.Sprintf("ListAudit with limit %d", limit), err, apperr.EINVALID)
	}

	// An invalid event fails the append, and none of its batch is written.
	for name, bad := range map[string]identity.AuditEvent{
		"no time":        {Type: identity.AuditLogin},
		"no type":        {Time: t0},
		"a long detail":  {Time: t0, Type: identity.AuditLogin, Detail: strings.Repeat("x", identity.MaxAuditDetail+1)},
		"all but a type": {Time: t0, UserID: "alice", Actor: "anonymous", Outcome: "failure"},
	} {
		wantCode(t, "AppendAudit of an event with "+name, s.AppendAudit(ctx, auditEvent(20, identity.AuditLogin, "alice"), bad), apperr.EINVALID)
	}
	equal(t, "the events after the refused appends", allAudit(t, s), all)

	// Ids are never reused: an event appended after the newest is deleted gets a larger id.
	n, err := s.DeleteAuditBefore(ctx, t0.Add(time.Hour))
	check(t, err)
	equal(t, "events deleted", n, 10)
	check(t, s.AppendAudit(ctx, auditEvent(30, identity.AuditSignup, "dave")))
	after := allAudit(t, s)
	if len(after) != 1 || after[0].ID <= all[0].ID {
		t.Fatalf("the event appended after a delete: %+v, want an id above %d", after, all[0].ID)
	}
}

func ids(l []identity.AuditEvent) []int64 {
	out := []int64{}
	for _, e := range l {
		out = append(out, e.ID)
	}
	return out
}

func testDeleteAuditBefore(t *testing.T, s Store) {
	n, err := s.DeleteAuditBefore(ctx, t0)
	check(t, err)
	equal(t, "events deleted from an empty trail", n, 0)
	for i := range 6 {
		check(t, s.AppendAudit(ctx, auditEvent(i, identity.AuditLogin, "alice")))
	}
	n, err = s.DeleteAuditBefore(ctx, t0.Add(4*time.Second).In(zone))
	check(t, err)
	equal(t, "events older than the 5th deleted", n, 4)
	equal(t, "events left", details(allAudit(t, s)), []string{"event 5", "event 4"})
	n, err = s.DeleteAuditBefore(ctx, t0.Add(4*time.Second))
	check(t, err)
	equal(t, "events deleted again", n, 0)
	n, err = s.DeleteAuditBefore(ctx, t0.Add(time.Hour))
	check(t, err)
	equal(t, "the rest deleted", n, 2)
	equal(t, "events after deleting all", allAudit(t, s), []identity.AuditEvent{})
}

// noted returns ctx carrying one event whose detail is what.
func noted(what string) context.Context {
	return identity.WithAuditEvents(ctx, identity.AuditEvent{Time: t0, Type: identity.AuditRevocation, UserID: "u1",
		Actor: "admin-token", Outcome: "success", Detail: what})
}

// Every write method writes the events of its context with its change, once.
func testAuditEveryWrite(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateClient, client("grafana"))
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	create(t, s.CreateSession, session("s1", "u1", 0), session("s2", "u1", 0))
	create(t, s.CreateCode, code("c1", "u1", "grafana"))
	setPassword := func(u identity.User) (identity.User, error) { u.PasswordHash = "changed"; return u, nil }
	writes := []struct {
		name  string
		write func(context.Context) error
	}{
		{"CreateUser", func(c context.Context) error { return s.CreateUser(c, user("u3")) }},
		{"UpdateUser", func(c context.Context) error { return second(s.UpdateUser(c, "u2", setPassword)) }},
		{"UpdateFamilyByToken", func(c context.Context) error {
			return second(s.UpdateFamilyByToken(c, "r0", func(f identity.Family, u identity.User) (identity.Family, error) {
				return f.Refresh("r0", "r1", u, t0)
			}))
		}},
		{"UpdateSession", func(c context.Context) error {
			return second(s.UpdateSession(c, "s1", func(sess identity.Session) (identity.Session, error) {
				sess.LastSeenAt = t0.Add(time.Minute)
				return sess, nil
			}))
		}},
		{"EndSession", func(c context.Context) error { return second(s.EndSession(c, "s2")) }},
		{"RevokeUserFamilies", func(c context.Context) error { return s.RevokeUserFamilies(c, "u1") }},
		{"ChangeCredentials", func(c context.Context) error { return second(s.ChangeCredentials(c, "u1", setPassword)) }},
		{"CreateSession", func(c context.Context) error { return s.CreateSession(c, session("s3", "u1", 1)) }},
		{"CreateFamily", func(c context.Context) error {
			f := family("f2", "u1", "q0")
			f.Epoch = 1
			return s.CreateFamily(c, f)
		}},
		{"UpdateKeys", func(c context.Context) error {
			return s.UpdateKeys(c, func([]identity.SigningKey) ([]identity.SigningKey, error) {
				return []identity.SigningKey{{ID: "k1", State: identity.KeyCurrent, PrivateDER: []byte{1}, CreatedAt: t0, SignsFrom: t0}}, nil
			})
		}},
		{"CreateClient", func(c context.Context) error { return s.CreateClient(c, client("gitlab")) }},
		{"UpdateClient", func(c context.Context) error {
			return second(s.UpdateClient(c, "gitlab", func(cl identity.Client) (identity.Client, error) { cl.Name = "GitLab"; return cl, nil }))
		}},
		{"SaveConsent", func(c context.Context) error { return s.SaveConsent(c, consent("u2", "gitlab", "openid")) }},
		{"CreateCode", func(c context.Context) error { return s.CreateCode(c, code("c2", "u2", "gitlab")) }},
		{"UpdateCode", func(c context.Context) error { return second(s.UpdateCode(c, "c2", redeem("rh"))) }},
		{"DeleteClient", func(c context.Context) error { return s.DeleteClient(c, "grafana") }},
		{"CreateGroup", func(c context.Context) error { return s.CreateGroup(c, group("ops")) }},
		{"AddMember", func(c context.Context) error { return s.AddMember(c, "ops", "u2") }},
		{"RemoveMember", func(c context.Context) error { return s.RemoveMember(c, "ops", "u2") }},
		{"DeleteGroup", func(c context.Context) error { return s.DeleteGroup(c, "ops") }},
		{"DeleteUser", func(c context.Context) error { return s.DeleteUser(c, "u2") }},
		{"UpdateCodeFailures", func(c context.Context) error {
			return second(s.UpdateCodeFailures(c, "u1", func(identity.ThrottleCounter) identity.ThrottleCounter {
				return identity.ThrottleCounter{First: t0, Touched: t0, Failures: 1}
			}))
		}},
		{"ReleaseUsername", func(c context.Context) error { return second(s.ReleaseUsername(c, "user-u2")) }},
	}
	var want []string
	for _, w := range writes {
		check(t, w.write(noted(w.name)))
		want = append([]string{w.name}, want...)
		equal(t, "the events after "+w.name, details(allAudit(t, s)), want)
	}
	// Without events in the context, a write writes none.
	check(t, s.CreateUser(ctx, user("u4")))
	check(t, s.AppendAudit(ctx)) // nothing
	equal(t, "the events after a write without any", details(allAudit(t, s)), want)
}

func second[T any](_ T, err error) error { return err }

// A write and its events commit together or not at all.
func testAuditWithTheChange(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	u1 := getUser(t, s, "u1")
	// Events several, and known only once the updater ran: written in their order, as the last
	// run of the updater left them.
	var decided string
	runs := 0
	c := identity.WithAudit(ctx, func() []identity.AuditEvent {
		return []identity.AuditEvent{
			{Time: t0, Type: identity.AuditAdminGranted, UserID: "u1", Actor: "admin-token", Outcome: "success", Detail: decided},
			{Time: t0.In(zone), Type: identity.AuditEmailChange, UserID: "u1", Actor: "admin-token", Outcome: "success", Detail: "second"},
		}
	})
	got, err := s.UpdateUser(c, "u1", func(u identity.User) (identity.User, error) {
		runs++
		decided = fmt.Sprintf("granted on run %d", runs)
		return u.SetAdmin(true)
	})
	check(t, err)
	if !got.Admin {
		t.Fatalf("UpdateUser with events: %+v, want admin", got)
	}
	l := allAudit(t, s)
	if len(l) != 2 || l[0].ID <= l[1].ID {
		t.Fatalf("events of the update: %+v, want 2, the second newest", l)
	}
	want := identity.AuditEvent{ID: l[1].ID, Time: t0, Type: identity.AuditAdminGranted, UserID: "u1", Actor: "admin-token",
		Outcome: "success", Detail: fmt.Sprintf("granted on run %d", runs)}
	equal(t, "the first event of the update", l[1], want)
	equal(t, "the second event's time, in UTC", l[0].Time, t0)

	// Nothing changes, nothing is recorded: an updater that fails, one that finds nothing to
	// change, a refusal of the store.
	before := allAudit(t, s)
	u1 = getUser(t, s, "u1")
	_, err = s.UpdateUser(noted("failed"), "u1", func(u identity.User) (identity.User, error) { u.Admin = false; return u, errBoom })
	wantIs(t, "a failing updater", err, errBoom)
	_, err = s.UpdateUser(noted("unchanged"), "u1", func(u identity.User) (identity.User, error) { return u.SetAdmin(true) })
	wantIs(t, "an updater with nothing to change", err, identity.ErrUnchanged)
	_, err = s.ChangeCredentials(noted("unchanged"), "u1", func(u identity.User) (identity.User, error) { return u.Enable() })
	wantIs(t, "a credential change with nothing to change", err, identity.ErrUnchanged)
	_, err = s.UpdateUser(noted("refused"), "u1", func(u identity.User) (identity.User, error) { u.Username = "user-u2"; return u, nil })
	wantCode(t, "a rename to a taken name", err, apperr.ECONFLICT)
	wantCode(t, "CreateUser of a taken id", s.CreateUser(noted("refused"), user("u1")), apperr.ECONFLICT)
	wantCode(t, "DeleteUser of no user", s.DeleteUser(noted("refused"), "nobody"), apperr.ENOTFOUND)
	_, err = s.UpdateUser(noted("refused"), "nobody", func(u identity.User) (identity.User, error) { return u, nil })
	wantCode(t, "UpdateUser of no user", err, apperr.ENOTFOUND)
	err = s.UpdateKeys(noted("failed"), func([]identity.SigningKey) ([]identity.SigningKey, error) { return nil, errBoom })
	wantIs(t, "a failing key update", err, errBoom)
	create(t, s.CreateCode, code("c1", "u1", "grafana"))
	_, err = s.UpdateCode(noted("failed"), "c1", func(identity.AuthCode) (identity.AuthCode, error) { return identity.AuthCode{}, errBoom })
	wantIs(t, "a failing code update", err, errBoom)
	_, err = s.UpdateCode(noted("refused"), "no-such-code", redeem("rh"))
	wantCode(t, "UpdateCode of no code", err, apperr.ENOTFOUND)
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	before = allAudit(t, s)
	_, err = s.UpdateFamilyByToken(noted("peek"), "r0", func(identity.Family, identity.User) (identity.Family, error) {
		return identity.Family{}, errPeek
	})
	wantIs(t, "a step that keeps nothing", err, errPeek)
	equal(t, "events after the writes that changed nothing", allAudit(t, s), before)
	equal(t, "u1 after the writes that changed nothing", getUser(t, s, "u1"), u1)

	// An event that breaks Validate fails the write, and the change is not kept.
	bad := identity.WithAuditEvents(ctx, identity.AuditEvent{Time: t0, Type: identity.AuditAdminRevoked},
		identity.AuditEvent{Type: identity.AuditAdminRevoked})
	_, err = s.UpdateUser(bad, "u1", func(u identity.User) (identity.User, error) { return u.SetAdmin(false) })
	wantCode(t, "an update with an invalid event", err, apperr.EINVALID)
	wantCode(t, "a signup with an invalid event", s.CreateUser(bad, user("u5")), apperr.EINVALID)
	wantCode(t, "a client with an invalid event", s.CreateClient(bad, client("gitlab")), apperr.EINVALID)
	wantCode(t, "a code with an invalid event", s.CreateCode(bad, code("c2", "u1", "grafana")), apperr.EINVALID)
	wantCode(t, "a delete with an invalid event", s.DeleteUser(bad, "u2"), apperr.EINVALID)
	equal(t, "u1 after an update with an invalid event", getUser(t, s, "u1"), u1)
	for _, id := range []string{"u5"} {
		_, err := s.GetUser(ctx, id)
		wantCode(t, "a user created with an invalid event", err, apperr.ENOTFOUND)
	}
	getUser(t, s, "u2")
	_, err = s.GetClient(ctx, "gitlab")
	wantCode(t, "a client created with an invalid event", err, apperr.ENOTFOUND)
	noCode(t, s, "a code created with an invalid event", "c2")
	equal(t, "events after the writes with an invalid event", allAudit(t, s), before)
}

// A refresh family revoked on reuse is kept although the step returns an error, and so are
// the events decided with it.
func testAuditKeptWithReuse(t *testing.T, s Store) {
	users(t, s, "u1")
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	var reused bool
	c := identity.WithAudit(ctx, func() []identity.AuditEvent {
		if !reused {
			return nil
		}
		return []identity.AuditEvent{{Time: t0, Type: identity.AuditRefreshReuse, UserID: "u1", Actor: "client:idp",
			Outcome: "failure", Detail: "family f1 revoked"}}
	})
	step := func(presented, next string) func(identity.Family, identity.User) (identity.Family, error) {
		return func(f identity.Family, u identity.User) (identity.Family, error) {
			f, err := f.Refresh(presented, next, u, t0)
			reused = err != nil
			return f, err
		}
	}
	_, err := s.UpdateFamilyByToken(c, "r0", step("r0", "r1"))
	check(t, err)
	equal(t, "events of a refresh that decided none", allAudit(t, s), []identity.AuditEvent{})
	got, err := s.UpdateFamilyByToken(c, "r0", step("r0", "r2"))
	wantIs(t, "a spent token presented again", err, identity.ErrReuse)
	if !got.Revoked {
		t.Fatalf("the family returned with the reuse: %+v, want revoked", got)
	}
	if f := listed(t, s.ListFamilies, "u1"); len(f) != 1 || !f[0].Revoked {
		t.Fatalf("the family after the reuse: %+v, want it kept revoked", f)
	}
	equal(t, "the events kept with the revocation", details(allAudit(t, s)), []string{"family f1 revoked"})
}

// Disabled, Admin and LastLoginAt read back as stored, from every read of a user.
func testUserFlagsRoundTrip(t *testing.T, s Store) {
	u := user("u1")
	u.Disabled, u.Admin, u.LastLoginAt = true, true, t0.Add(time.Hour).In(zone)
	check(t, s.CreateUser(ctx, u))
	users(t, s, "u2")
	want := u
	want.LastLoginAt = t0.Add(time.Hour)
	equal(t, "GetUser", getUser(t, s, "u1"), want)
	byName, err := s.GetUserByName(ctx, "USER-U1")
	check(t, err)
	equal(t, "GetUserByName", byName, want)
	equal(t, "ListUsers", listed(t, s.ListUsers, identity.ListOptions{Limit: 10})[0], want)
	never := getUser(t, s, "u2")
	if never.Disabled || never.Admin || !never.LastLoginAt.IsZero() {
		t.Fatalf("a user without flags: %+v", never)
	}
	create(t, s.CreateSession, session("s1", "u1", 0))
	_, su, err := s.SessionByToken(ctx, "th-s1")
	check(t, err)
	equal(t, "the user of SessionByToken", su, want)
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	_, fu := peek(t, s, "r0")
	equal(t, "the user a refresh step is given", fu, want)

	// The updaters: enable, revoke the admin flag, record a login; and back to never.
	got, err := s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { return u.Enable() })
	check(t, err)
	want.Disabled, want.Epoch = false, 1
	equal(t, "enabled", got, want)
	got, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { return u.SetAdmin(false) })
	check(t, err)
	want.Admin = false
	equal(t, "admin revoked", got, want)
	login := t0.Add(2 * time.Hour).In(zone)
	got, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { return u.RecordLogin(login) })
	check(t, err)
	want.LastLoginAt = t0.Add(2 * time.Hour)
	equal(t, "a login recorded", got, want)
	equal(t, "GetUser after the updates", getUser(t, s, "u1"), want)
	got, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { return u.RecordLogin(t0) })
	check(t, err)
	equal(t, "after an older login, the latest", got, want)
	got, err = s.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) {
		u.LastLoginAt, u.Disabled, u.Admin = time.Time{}, false, true
		return u, nil
	})
	check(t, err)
	want.LastLoginAt, want.Admin = time.Time{}, true
	equal(t, "never signed in again", got, want)
	equal(t, "GetUser of a user never signed in", getUser(t, s, "u1"), want)
}

// A deleted user's id is refused for ever; the username and email are free again once released.
func testDeletedIDNeverReused(t *testing.T, s Store) {
	u := user("u1")
	u.Email = "u1@example.com"
	check(t, s.CreateUser(ctx, u))
	check(t, s.DeleteUser(ctx, "u1"))
	for _, again := range []identity.User{user("u1"), {ID: "u1", Username: "someone-else", CreatedAt: t0}} {
		wantCode(t, "CreateUser with a deleted user's id", s.CreateUser(ctx, again), apperr.ECONFLICT)
	}
	_, err := s.GetUser(ctx, "u1")
	wantCode(t, "GetUser of the deleted id after the refusals", err, apperr.ENOTFOUND)
	wantCode(t, "a second DeleteUser", s.DeleteUser(ctx, "u1"), apperr.ENOTFOUND)
	successor := user("u2")
	successor.Username, successor.Email = "USER-U1", "U1@example.com"
	_, err = s.ReleaseUsername(ctx, "user-u1")
	check(t, err)
	check(t, s.CreateUser(ctx, successor))
	equal(t, "the user with the deleted user's name and email", getUser(t, s, "u2"), successor)
	equal(t, "users", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{successor})
	// And the successor's id, once deleted, is refused too.
	check(t, s.DeleteUser(ctx, "u2"))
	wantCode(t, "CreateUser with the second deleted id", s.CreateUser(ctx, successor), apperr.ECONFLICT)
	check(t, s.CreateUser(ctx, user("u3")))
}
