package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func testSessionRoundTrip(t *testing.T, s Store) {
	u := user("u1")
	u.Epoch = 2
	check(t, s.CreateUser(ctx, u))
	sess := identity.Session{
		ID: "s1", TokenHash: "th-s1", UserID: "u1", Epoch: 2, AuthTime: t0.Add(-time.Second).In(zone),
		AMR: []string{"pwd", "otp"}, CreatedAt: t0.In(zone), LastSeenAt: t0.Add(time.Minute), IdleTTL: 2 * time.Hour,
		ExpiresAt: t0.Add(12 * time.Hour).In(zone), RemoteAddr: "2001:db8::1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
	}
	check(t, s.CreateSession(ctx, sess))
	want := sess
	want.AMR = []string{"pwd", "otp"}
	want.AuthTime, want.CreatedAt, want.ExpiresAt = t0.Add(-time.Second), t0, t0.Add(12*time.Hour)
	equal(t, "GetSession", getSession(t, s, "s1"), want)
	got, owner, err := s.SessionByToken(ctx, "th-s1")
	check(t, err)
	equal(t, "SessionByToken's session", got, want)
	equal(t, "SessionByToken's user", owner, u)
	equal(t, "ListSessions", listed(t, s.ListSessions, "u1"), []identity.Session{want})
	equal(t, "ListSessions of a user without sessions", listed(t, s.ListSessions, "nobody"), []identity.Session{})

	// The AMR is the store's own: changing what was given or returned changes nothing.
	sess.AMR[0] = "evil"
	getSession(t, s, "s1").AMR[0] = "evil"
	equal(t, "GetSession after changing slices outside the store", getSession(t, s, "s1"), want)

	_, err = s.GetSession(ctx, "s-unknown")
	wantCode(t, "GetSession of no session", err, apperr.ENOTFOUND)
	_, _, err = s.SessionByToken(ctx, "th-unknown")
	wantCode(t, "SessionByToken of no session", err, apperr.ENOTFOUND)
}

func testCreateSessionRefusals(t *testing.T, s Store) {
	users(t, s, "u1")
	s1 := session("s1", "u1", 0)
	create(t, s.CreateSession, s1)
	sameID := session("s1", "u1", 0)
	sameID.TokenHash = "th-other"
	sameToken := session("s2", "u1", 0)
	sameToken.TokenHash = "th-s1"
	noExpiry := session("s3", "u1", 0)
	noExpiry.ExpiresAt = time.Time{}
	for _, tt := range []struct {
		name string
		sess identity.Session
		code string
		is   error
	}{
		{"id taken", sameID, apperr.ECONFLICT, nil},
		{"token hash taken", sameToken, apperr.ECONFLICT, nil},
		{"no expiry", noExpiry, apperr.EINVALID, nil},
		{"no token hash", identity.Session{ID: "s4", UserID: "u1", ExpiresAt: t0}, apperr.EINVALID, nil},
		{"no id", identity.Session{TokenHash: "th-s5", UserID: "u1", ExpiresAt: t0}, apperr.EINVALID, nil},
		{"no user", identity.Session{ID: "s6", TokenHash: "th-s6", ExpiresAt: t0}, apperr.EINVALID, nil},
		{"an older epoch", session("s7", "u1", -1), apperr.ECONFLICT, identity.ErrStaleCredentials},
		{"a later epoch", session("s8", "u1", 1), apperr.ECONFLICT, identity.ErrStaleCredentials},
		{"a user who does not exist", session("s9", "nobody", 0), apperr.ECONFLICT, identity.ErrStaleCredentials},
	} {
		err := s.CreateSession(ctx, tt.sess)
		wantCode(t, tt.name, err, tt.code)
		if tt.is != nil {
			wantIs(t, tt.name, err, tt.is)
		}
	}
	equal(t, "u1's sessions", listed(t, s.ListSessions, "u1"), []identity.Session{s1})
	equal(t, "s1", getSession(t, s, "s1"), s1)
	for _, id := range []string{"s2", "s3", "s4", "s6", "s7", "s8", "s9"} {
		_, err := s.GetSession(ctx, id)
		wantCode(t, "GetSession of refused "+id, err, apperr.ENOTFOUND)
	}
	for _, tok := range []string{"th-other", "th-s3", "th-s5", "th-s7", "th-s8", "th-s9"} {
		_, _, err := s.SessionByToken(ctx, tok)
		wantCode(t, "SessionByToken of refused "+tok, err, apperr.ENOTFOUND)
	}
	equal(t, "the sessions of a user who does not exist", listed(t, s.ListSessions, "nobody"), []identity.Session{})
}

func testUpdateSession(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	s1, s2 := session("s1", "u1", 0), session("s2", "u2", 0)
	create(t, s.CreateSession, s1, s2)

	var seen identity.Session
	got, err := s.UpdateSession(ctx, "s1", func(sess identity.Session) (identity.Session, error) {
		seen = sess
		sess.AuthTime, sess.AMR, sess.CreatedAt = t0.Add(time.Minute).In(zone), append(sess.AMR, "hwk"), t0.Add(time.Second)
		sess.LastSeenAt, sess.IdleTTL, sess.ExpiresAt = t0.Add(5*time.Minute).In(zone), 3*time.Hour, t0.Add(24*time.Hour)
		sess.RemoteAddr, sess.UserAgent = "198.51.100.7", "curl/8"
		return sess, nil
	})
	check(t, err)
	equal(t, "what the updater was given", seen, s1)
	want := identity.Session{ID: "s1", TokenHash: "th-s1", UserID: "u1", AuthTime: t0.Add(time.Minute), AMR: []string{"pwd", "hwk"},
		CreatedAt: t0.Add(time.Second), LastSeenAt: t0.Add(5 * time.Minute), IdleTTL: 3 * time.Hour, ExpiresAt: t0.Add(24 * time.Hour),
		RemoteAddr: "198.51.100.7", UserAgent: "curl/8"}
	equal(t, "UpdateSession's result", got, want)
	equal(t, "GetSession after the update", getSession(t, s, "s1"), want)
	byToken, _, err := s.SessionByToken(ctx, "th-s1")
	check(t, err)
	equal(t, "SessionByToken after the update", byToken, want)

	// A new token hash replaces the old one.
	got, err = s.UpdateSession(ctx, "s1", func(sess identity.Session) (identity.Session, error) { sess.TokenHash = "th-s1-new"; return sess, nil })
	check(t, err)
	want.TokenHash = "th-s1-new"
	equal(t, "the session with a new token hash", got, want)
	byToken, _, err = s.SessionByToken(ctx, "th-s1-new")
	check(t, err)
	equal(t, "SessionByToken of the new hash", byToken, want)
	_, _, err = s.SessionByToken(ctx, "th-s1")
	wantCode(t, "SessionByToken of the replaced hash", err, apperr.ENOTFOUND)

	// Refusals change nothing.
	for _, tt := range []struct {
		name string
		fn   func(identity.Session) (identity.Session, error)
		code string
	}{
		{"another session's token hash", func(sess identity.Session) (identity.Session, error) { sess.TokenHash = "th-s2"; return sess, nil }, apperr.ECONFLICT},
		{"a change of id", func(sess identity.Session) (identity.Session, error) { sess.ID = "s9"; return sess, nil }, apperr.EINVALID},
		{"a change of user", func(sess identity.Session) (identity.Session, error) { sess.UserID = "u2"; return sess, nil }, apperr.EINVALID},
		{"a change of epoch", func(sess identity.Session) (identity.Session, error) { sess.Epoch = 1; return sess, nil }, apperr.EINVALID},
		{"no expiry", func(sess identity.Session) (identity.Session, error) { sess.ExpiresAt = time.Time{}; return sess, nil }, apperr.EINVALID},
		{"no token hash", func(sess identity.Session) (identity.Session, error) { sess.TokenHash = ""; return sess, nil }, apperr.EINVALID},
	} {
		_, err := s.UpdateSession(ctx, "s1", tt.fn)
		wantCode(t, tt.name, err, tt.code)
		equal(t, "s1 after "+tt.name, getSession(t, s, "s1"), want)
		equal(t, "s2 after "+tt.name, getSession(t, s, "s2"), s2)
	}
	_, err = s.UpdateSession(ctx, "s1", func(sess identity.Session) (identity.Session, error) {
		sess.LastSeenAt = t0.Add(time.Hour)
		return sess, errBoom
	})
	wantIs(t, "an updater's error", err, errBoom)
	equal(t, "s1 after a failed updater", getSession(t, s, "s1"), want)
	for tok, id := range map[string]string{"th-s1-new": "s1", "th-s2": "s2"} {
		sess, _, err := s.SessionByToken(ctx, tok)
		check(t, err)
		if sess.ID != id {
			t.Fatalf("%s finds %s after the refusals, want %s", tok, sess.ID, id)
		}
	}
	for _, id := range []string{"s9"} {
		_, err := s.GetSession(ctx, id)
		wantCode(t, "the id an update tried", err, apperr.ENOTFOUND)
	}
	equal(t, "u2's sessions", listed(t, s.ListSessions, "u2"), []identity.Session{s2})

	updateNothing(t, "UpdateSession of no session", s.UpdateSession, "nope")
}

// Twenty updaters each add a method to one session's AMR: none is lost.
func testConcurrentUpdateSession(t *testing.T, s Store) {
	users(t, s, "u1")
	create(t, s.CreateSession, session("s1", "u1", 0))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.UpdateSession(ctx, "s1", func(sess identity.Session) (identity.Session, error) {
				sess.AMR = append(slices.Clone(sess.AMR), fmt.Sprintf("m%02d", i))
				return sess, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	want := []string{"pwd"}
	for i := range 20 {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	got := getSession(t, s, "s1").AMR
	slices.Sort(got)
	slices.Sort(want)
	equal(t, "the AMR after 20 concurrent appends", got, want)
}

func testListSessions(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	at := func(sess identity.Session, d time.Duration) identity.Session { sess.CreatedAt = t0.Add(d); return sess }
	// Created out of order; listed by CreatedAt, then ID.
	b, c, a, d := at(session("b", "u1", 0), 2*time.Hour), at(session("c", "u1", 0), 0), at(session("a", "u1", 0), 2*time.Hour), at(session("d", "u1", 0), time.Hour)
	e := session("e", "u2", 0)
	create(t, s.CreateSession, b, c, e, a, d)
	equal(t, "u1's sessions", listed(t, s.ListSessions, "u1"), []identity.Session{c, d, a, b})
	equal(t, "u2's sessions", listed(t, s.ListSessions, "u2"), []identity.Session{e})
}

func testEndSession(t *testing.T, s Store) {
	users(t, s, "u1")
	s1, s2 := session("s1", "u1", 0), session("s2", "u1", 0)
	create(t, s.CreateSession, s1, s2)
	bound, boundElsewhere, unbound := family("a", "u1", "ra"), family("b", "u1", "rb"), family("c", "u1", "rc")
	bound.SessionID, boundElsewhere.SessionID = "s1", "s2"
	create(t, s.CreateFamily, bound, boundElsewhere, unbound)

	got, err := s.EndSession(ctx, "s1")
	check(t, err)
	equal(t, "EndSession's result", got, s1)
	_, err = s.GetSession(ctx, "s1")
	wantCode(t, "GetSession of an ended session", err, apperr.ENOTFOUND)
	_, _, err = s.SessionByToken(ctx, "th-s1")
	wantCode(t, "SessionByToken of an ended session", err, apperr.ENOTFOUND)
	equal(t, "the sessions left", listed(t, s.ListSessions, "u1"), []identity.Session{s2})
	bound.Revoked = true
	equal(t, "the families after the end: only the bound one revoked", listed(t, s.ListFamilies, "u1"), []identity.Family{bound, boundElsewhere, unbound})
	_, err = s.EndSession(ctx, "s1")
	wantCode(t, "a second EndSession", err, apperr.ENOTFOUND)
}

func testDeleteDeadSessions(t *testing.T, s Store) {
	users(t, s, "u1")
	now := t0.Add(3 * time.Hour)
	live, idle, expired, idleEdge, expiryEdge, noIdle := session("live", "u1", 0), session("idle", "u1", 0), session("exp", "u1", 0),
		session("idle-edge", "u1", 0), session("exp-edge", "u1", 0), session("no-idle", "u1", 0)
	live.LastSeenAt = now.Add(-time.Hour + time.Microsecond) // a microsecond from idle
	idle.LastSeenAt = now.Add(-2 * time.Hour)
	idleEdge.LastSeenAt = now.Add(-time.Hour) // idle at now
	expired.ExpiresAt, expired.IdleTTL = now.Add(-time.Minute), 0
	expiryEdge.ExpiresAt, expiryEdge.LastSeenAt = now, now // expired at now
	noIdle.IdleTTL = 0                                     // unused for hours, but has no idle limit
	create(t, s.CreateSession, live, idle, expired, idleEdge, expiryEdge, noIdle)
	n, err := s.DeleteDeadSessions(ctx, now)
	check(t, err)
	if n != 4 {
		t.Fatalf("DeleteDeadSessions removed %d, want 4", n)
	}
	equal(t, "the sessions left", listed(t, s.ListSessions, "u1"), []identity.Session{live, noIdle})
	for _, id := range []string{"idle", "exp", "idle-edge", "exp-edge"} {
		_, _, err := s.SessionByToken(ctx, "th-"+id)
		wantCode(t, "SessionByToken of collected "+id, err, apperr.ENOTFOUND)
	}
	// Removed entirely: the id and token hash are free again.
	again := session("idle", "u1", 0)
	check(t, s.CreateSession(ctx, again))
	equal(t, "the sessions after making one again", listed(t, s.ListSessions, "u1"), []identity.Session{again, live, noIdle})
}

func testSecret(t *testing.T, s Store) {
	_, err := s.Secret(ctx, "k", nil)
	wantCode(t, "Secret with nothing to store", err, apperr.EINVALID)
	var wg sync.WaitGroup
	got := make([][]byte, 10)
	for i := range got {
		wg.Go(func() {
			v, err := s.Secret(ctx, "k", []byte{byte(i + 1), 0xff})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for _, v := range got {
		if len(v) != 2 || !bytes.Equal(v, got[0]) {
			t.Fatalf("processes racing on the first start got different secrets: %v", got)
		}
	}
	stored := bytes.Clone(got[0])
	got[0][0] = 0 // the caller owns what it was given
	v, err := s.Secret(ctx, "k", []byte{99})
	check(t, err)
	equal(t, "the secret at a later start", v, stored)
	// Another name is another secret, and what the caller gave stays the caller's.
	fresh := []byte{7, 8, 9}
	v, err = s.Secret(ctx, "other", fresh)
	check(t, err)
	equal(t, "a second secret", v, []byte{7, 8, 9})
	fresh[0] = 0
	v, err = s.Secret(ctx, "other", nil)
	check(t, err)
	equal(t, "the second secret, read again", v, []byte{7, 8, 9})
	v, err = s.Secret(ctx, "k", nil)
	check(t, err)
	equal(t, "the first secret, read again", v, stored)
}

// A user's sessions are bounded: the one past MaxSessionsPerUser ends the oldest, with its
// families, in the same transaction.
func testSessionsPerUserBounded(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	var all []identity.Session
	for i := range identity.MaxSessionsPerUser {
		sess := session(fmt.Sprintf("s%03d", i), "u1", 0)
		sess.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		all = append(all, sess)
	}
	create(t, s.CreateSession, all...)
	oldest := family("f", "u1", "rf")
	oldest.SessionID = all[0].ID
	create(t, s.CreateFamily, oldest)
	create(t, s.CreateSession, session("other-user", "u2", 0))
	newest := session("newest", "u1", 0)
	newest.CreatedAt = t0.Add(24 * time.Hour)
	create(t, s.CreateSession, newest)
	equal(t, "u1's sessions past the bound", listed(t, s.ListSessions, "u1"), append(all[1:], newest))
	equal(t, "u2's sessions", len(listed(t, s.ListSessions, "u2")), 1)
	oldest.Revoked = true
	equal(t, "the oldest session's family", listed(t, s.ListFamilies, "u1"), []identity.Family{oldest})
	_, _, err := s.SessionByToken(ctx, all[0].TokenHash)
	wantCode(t, "the oldest session's token", err, apperr.ENOTFOUND)
}

// ChangeCredentials with keep ends every other session and family of the user, and moves the
// kept session, the families bound to it and a kept family to the new epoch, in one
// transaction; another user's ids in keep change nothing of theirs.
func testChangeCredentialsKeeping(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateSession, session("mine", "u1", 0), session("other", "u1", 0), session("theirs", "u2", 0))
	bound := family("f-bound", "u1", "rt-bound")
	bound.SessionID = "mine"
	own := family("f-own", "u1", "rt-own")
	otherBound := family("f-other", "u1", "rt-other")
	otherBound.SessionID = "other"
	loose := family("f-loose", "u1", "rt-loose")
	create(t, s.CreateFamily, bound, own, otherBound, loose, family("f-theirs", "u2", "rt-theirs"))

	u, err := s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { u.PasswordHash = "h2"; return u, nil },
		"mine", "f-own", "theirs", "f-theirs", "")
	check(t, err)
	equal(t, "the new epoch", u.Epoch, int64(1))
	kept := session("mine", "u1", 1)
	equal(t, "u1's sessions", listed(t, s.ListSessions, "u1"), []identity.Session{kept})
	if sess, owner, err := s.SessionByToken(ctx, kept.TokenHash); err != nil || !sess.Live(owner, t0) {
		t.Fatalf("the kept session is not live under the new epoch: %v %+v %+v", err, sess, owner)
	}
	bound.Epoch, own.Epoch = 1, 1
	otherBound.Revoked, loose.Revoked = true, true
	got := listed(t, s.ListFamilies, "u1")
	slices.SortFunc(got, func(a, b identity.Family) int { return strings.Compare(a.ID, b.ID) })
	equal(t, "u1's families", got, []identity.Family{bound, loose, otherBound, own})
	equal(t, "u2's sessions", listed(t, s.ListSessions, "u2"), []identity.Session{session("theirs", "u2", 0)})
	equal(t, "u2's families", listed(t, s.ListFamilies, "u2"), []identity.Family{family("f-theirs", "u2", "rt-theirs")})
	if _, err := refresh(s, "rt-own", "rt-own-2", t0); err != nil {
		t.Fatalf("the kept family refreshes under the new epoch: %v", err)
	}
	if _, err := refresh(s, "rt-loose", "rt-loose-2", t0); err == nil {
		t.Fatal("a family keep did not name refreshed after the change")
	}
}

// Pre-sessions (a second factor owed) have their own bound, MaxPendingPerUser, and never count
// toward MaxSessionsPerUser: however many half-finished sign-ins there are, the user's real
// sessions and their families stay.
func testPendingSessionsBounded(t *testing.T, s Store) {
	users(t, s, "u1")
	real := session("real", "u1", 0)
	create(t, s.CreateSession, real)
	f := family("f", "u1", "rf")
	f.SessionID = real.ID
	create(t, s.CreateFamily, f)
	var pending []identity.Session
	for i := range identity.MaxSessionsPerUser + 5 {
		p := session(fmt.Sprintf("p%03d", i), "u1", 0)
		p.Pending, p.IdleTTL, p.CreatedAt = true, 0, t0.Add(time.Duration(i+1)*time.Second)
		p.LastSeenAt = p.CreatedAt
		create(t, s.CreateSession, p)
		pending = append(pending, p)
	}
	want := append([]identity.Session{real}, pending[len(pending)-identity.MaxPendingPerUser:]...)
	equal(t, "the sessions after many pre-sessions", listed(t, s.ListSessions, "u1"), want)
	equal(t, "the real session's family", listed(t, s.ListFamilies, "u1"), []identity.Family{f})
	// And real sessions past their bound end real ones, never the pending ones.
	for i := range identity.MaxSessionsPerUser {
		r := session(fmt.Sprintf("r%03d", i), "u1", 0)
		r.CreatedAt = t0.Add(time.Hour + time.Duration(i)*time.Second)
		r.LastSeenAt = r.CreatedAt
		create(t, s.CreateSession, r)
	}
	n := 0
	for _, sess := range listed(t, s.ListSessions, "u1") {
		if sess.Pending {
			n++
		}
		if sess.ID == real.ID {
			t.Fatal("the oldest real session outlived the bound")
		}
	}
	equal(t, "pre-sessions left by real ones", n, identity.MaxPendingPerUser)
}
