package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// notices claims every queued message at later and returns them as back-channel logout
// notices, ordered by session id.
func notices(t *testing.T, s Store) []identity.LogoutNotice {
	t.Helper()
	var out []identity.LogoutNotice
	for {
		m, err := s.ClaimMail(ctx, later, 48*time.Hour)
		if apperr.Code(err) == apperr.ENOTFOUND {
			break
		}
		check(t, err)
		check(t, s.MailSent(ctx, m.ID))
		n, err := identity.LogoutNoticeOf(m)
		check(t, err)
		if n.JTI == "" || m.UserID != n.Subject || m.CreatedAt.IsZero() {
			t.Fatalf("notice %+v: no jti, or not the user's, or no creation time", m)
		}
		n.JTI = ""
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b identity.LogoutNotice) int { return strings.Compare(a.SessionID, b.SessionID) })
	return out
}

// A session records the clients that got tokens from it (AddClient, idempotent); when it ends
// early — EndSession, ChangeCredentials, DeleteUser — each recorded client with a back-channel
// logout URI gets one notice, queued in that transaction; a kept session, a client without the
// URI, a deleted client and an expiry get none.
func testBackchannelLogoutMail(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	told, untold, gone := client("told"), client("untold"), client("gone")
	told.BackchannelLogoutURI = "https://told.example/bcl"
	gone.BackchannelLogoutURI = "https://gone.example/bcl"
	create(t, s.CreateClient, told, untold, gone)
	var all []identity.Session
	for _, id := range []string{"s1", "s2", "s3", "s5"} {
		all = append(all, session(id, "u1", 0))
	}
	all = append(all, session("s4", "u2", 0))
	create(t, s.CreateSession, all...)
	for _, add := range [][2]string{{"s1", "told"}, {"s1", "untold"}, {"s1", "gone"}, {"s2", "told"}, {"s3", "told"}, {"s4", "told"}} {
		if _, err := s.UpdateSession(ctx, add[0], identity.AddClient(add[1])); err != nil {
			t.Fatalf("AddClient(%s) to %s: %v", add[1], add[0], err)
		}
	}
	if _, err := s.UpdateSession(ctx, "s1", identity.AddClient("told")); !errors.Is(err, identity.ErrUnchanged) {
		t.Fatalf("AddClient of a recorded client: %v, want ErrUnchanged", err)
	}
	equal(t, "the clients recorded on s1", getSession(t, s, "s1").Clients, []string{"told", "untold", "gone"})
	equal(t, "the clients recorded on s5", getSession(t, s, "s5").Clients, []string(nil))
	check(t, s.DeleteClient(ctx, "gone"))
	equal(t, "notices before any end", notices(t, s), []identity.LogoutNotice(nil))

	_, err := s.EndSession(ctx, "s1")
	check(t, err)
	want := func(sid, sub string) identity.LogoutNotice {
		return identity.LogoutNotice{URI: "https://told.example/bcl", ClientID: "told", Subject: sub, SessionID: sid}
	}
	equal(t, "the notices of EndSession", notices(t, s), []identity.LogoutNotice{want("s1", "u1")})

	_, err = s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { return u, nil }, "s3")
	check(t, err)
	equal(t, "the notices of ChangeCredentials keeping s3", notices(t, s), []identity.LogoutNotice{want("s2", "u1")})

	check(t, s.DeleteUser(ctx, "u2"))
	equal(t, "the notices of DeleteUser", notices(t, s), []identity.LogoutNotice{want("s4", "u2")})

	if _, err := s.DeleteDeadSessions(ctx, later.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	equal(t, "the notices of an expiry", notices(t, s), []identity.LogoutNotice(nil))
}
