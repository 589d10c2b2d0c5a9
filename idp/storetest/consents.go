package storetest

import (
	"slices"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func consent(userID, clientID string, scopes ...string) identity.Consent {
	return identity.Consent{UserID: userID, ClientID: clientID, Scopes: scopes, GrantedAt: t0}
}

func getConsent(t *testing.T, s Store, userID, clientID string) identity.Consent {
	t.Helper()
	c, err := s.GetConsent(ctx, userID, clientID)
	check(t, err)
	return c
}

func noConsent(t *testing.T, s Store, what, userID, clientID string) {
	t.Helper()
	_, err := s.GetConsent(ctx, userID, clientID)
	wantCode(t, what, err, apperr.ENOTFOUND)
}

func testConsents(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateClient, client("grafana"), client("gitlab"), client("b.app_1"))
	equal(t, "consents of a user without any", listed(t, s.ListConsents, "u1"), []identity.Consent{})
	equal(t, "consents of no user", listed(t, s.ListConsents, "nobody"), []identity.Consent{})
	noConsent(t, s, "GetConsent before any", "u1", "grafana")

	first := consent("u1", "grafana", "openid", "profile")
	first.GrantedAt = t0.In(zone)
	check(t, s.SaveConsent(ctx, first))
	want := consent("u1", "grafana", "openid", "profile")
	equal(t, "GetConsent", getConsent(t, s, "u1", "grafana"), want)

	// Saving again replaces it: scopes and time, the narrower answer too.
	again := consent("u1", "grafana", "openid", "email", "offline_access")
	again.GrantedAt = t0.Add(time.Hour)
	check(t, s.SaveConsent(ctx, again))
	equal(t, "GetConsent after a second save", getConsent(t, s, "u1", "grafana"), again)
	narrower := consent("u1", "grafana", "openid")
	narrower.GrantedAt = t0.Add(2 * time.Hour)
	check(t, s.SaveConsent(ctx, narrower))
	equal(t, "GetConsent after a narrower save", getConsent(t, s, "u1", "grafana"), narrower)

	// One per user and client; listed by client id, byte by byte.
	gitlab, bapp := consent("u1", "gitlab", "openid", "profile"), consent("u1", "b.app_1", "openid")
	other := consent("u2", "grafana", "profile", "openid")
	check(t, s.SaveConsent(ctx, gitlab))
	check(t, s.SaveConsent(ctx, bapp))
	check(t, s.SaveConsent(ctx, other))
	equal(t, "u1's consents", listed(t, s.ListConsents, "u1"), []identity.Consent{bapp, gitlab, narrower})
	equal(t, "u2's consents", listed(t, s.ListConsents, "u2"), []identity.Consent{other})
	equal(t, "u2's consent to grafana", getConsent(t, s, "u2", "grafana"), other)
	noConsent(t, s, "u2's consent to gitlab", "u2", "gitlab")
	noConsent(t, s, "a consent of no user", "nobody", "grafana")

	// Refusals: an unknown user or client is ENOTFOUND, a consent without scopes EINVALID;
	// nothing is stored.
	wantCode(t, "a consent of no user", s.SaveConsent(ctx, consent("nobody", "grafana", "openid")), apperr.ENOTFOUND)
	wantCode(t, "a consent to no client", s.SaveConsent(ctx, consent("u2", "ghost", "openid")), apperr.ENOTFOUND)
	wantCode(t, "a consent to no client, replacing nothing", s.SaveConsent(ctx, consent("u2", "bad\x00id", "openid")), apperr.ENOTFOUND)
	wantCode(t, "a consent of an id no user can have", s.SaveConsent(ctx, consent("u\xff", "grafana", "openid")), apperr.ENOTFOUND)
	wantCode(t, "a consent without scopes", s.SaveConsent(ctx, consent("u2", "gitlab")), apperr.EINVALID)
	wantCode(t, "a consent without a user", s.SaveConsent(ctx, consent("", "gitlab", "openid")), apperr.EINVALID)
	wantCode(t, "a consent without a client", s.SaveConsent(ctx, consent("u2", "", "openid")), apperr.EINVALID)
	equal(t, "u2's consents after the refusals", listed(t, s.ListConsents, "u2"), []identity.Consent{other})
	equal(t, "consents of no user after the refusals", listed(t, s.ListConsents, "nobody"), []identity.Consent{})

	// The consent read is a copy of its own.
	got := getConsent(t, s, "u1", "gitlab")
	got.Scopes[0] = "changed"
	equal(t, "a consent after its reader changed its copy", getConsent(t, s, "u1", "gitlab"), gitlab)
}

// Deleting a user or a client deletes its consents and codes, and nothing else's.
func testDeleteUserAndClientConsentsCodes(t *testing.T, s Store) {
	users(t, s, "u1", "u2", "u3")
	create(t, s.CreateClient, client("grafana"), client("gitlab"))
	for _, c := range []identity.Consent{
		consent("u1", "grafana", "openid"), consent("u1", "gitlab", "openid"),
		consent("u2", "grafana", "openid"), consent("u2", "gitlab", "openid", "profile"),
		consent("u3", "gitlab", "openid"),
	} {
		check(t, s.SaveConsent(ctx, c))
	}
	create(t, s.CreateCode, code("c-u1-grafana", "u1", "grafana"), code("c-u1-gitlab", "u1", "gitlab"),
		code("c-u2-grafana", "u2", "grafana"), code("c-u2-gitlab", "u2", "gitlab"), code("c-u3-gitlab", "u3", "gitlab"),
		code("c-u2-ghost", "u2", "ghost")) // a code of a client that is not registered
	u2Consents, u3Consents := listed(t, s.ListConsents, "u2"), listed(t, s.ListConsents, "u3")
	u2gitlab := getCode(t, s, "c-u2-gitlab")

	check(t, s.DeleteUser(ctx, "u1"))
	equal(t, "a deleted user's consents", listed(t, s.ListConsents, "u1"), []identity.Consent{})
	noConsent(t, s, "a deleted user's consent", "u1", "grafana")
	noCode(t, s, "a deleted user's code", "c-u1-grafana")
	noCode(t, s, "a deleted user's other code", "c-u1-gitlab")
	equal(t, "u2's consents after u1's delete", listed(t, s.ListConsents, "u2"), u2Consents)
	equal(t, "u3's consents after u1's delete", listed(t, s.ListConsents, "u3"), u3Consents)
	for _, h := range []string{"c-u2-grafana", "c-u2-gitlab", "c-u3-gitlab", "c-u2-ghost"} {
		getCode(t, s, h)
	}

	// A client that is not registered: ENOTFOUND, and its codes are left alone.
	wantCode(t, "DeleteClient of no client", s.DeleteClient(ctx, "ghost"), apperr.ENOTFOUND)
	getCode(t, s, "c-u2-ghost")

	check(t, s.DeleteClient(ctx, "grafana"))
	noConsent(t, s, "a consent to a deleted client", "u2", "grafana")
	equal(t, "u2's consents after grafana's delete", listed(t, s.ListConsents, "u2"),
		slices.DeleteFunc(slices.Clone(u2Consents), func(c identity.Consent) bool { return c.ClientID == "grafana" }))
	equal(t, "u3's consents after grafana's delete", listed(t, s.ListConsents, "u3"), u3Consents)
	noCode(t, s, "a code issued to a deleted client", "c-u2-grafana")
	equal(t, "a code issued to another client", getCode(t, s, "c-u2-gitlab"), u2gitlab)
	getCode(t, s, "c-u3-gitlab")
	getCode(t, s, "c-u2-ghost")

	// Gone, not hidden: a deleted user's id is never made again (the username is, released), a
	// client made again with the old id starts with nothing, and garbage collection finds only
	// the codes left.
	wantCode(t, "a user made again with a deleted user's id", s.CreateUser(ctx, user("u1")), apperr.ECONFLICT)
	again := user("u1b")
	again.Username = "user-u1"
	_, err := s.ReleaseUsername(ctx, "user-u1")
	check(t, err)
	check(t, s.CreateUser(ctx, again))
	create(t, s.CreateClient, client("grafana"))
	equal(t, "the consents of the deleted user", listed(t, s.ListConsents, "u1"), []identity.Consent{})
	equal(t, "the consents of a user made again with the name", listed(t, s.ListConsents, "u1b"), []identity.Consent{})
	noConsent(t, s, "u2's consent to the client made again", "u2", "grafana")
	n, err := s.DeleteDeadCodes(ctx, t0.Add(24*time.Hour))
	check(t, err)
	if n != 3 {
		t.Fatalf("DeleteDeadCodes after the deletes removed %d, want the 3 left", n)
	}
	// Consents can be given again.
	check(t, s.SaveConsent(ctx, consent("u1b", "grafana", "openid")))
	equal(t, "a consent given again", listed(t, s.ListConsents, "u1b"), []identity.Consent{consent("u1b", "grafana", "openid")})
	wantCode(t, "a consent of the deleted user", s.SaveConsent(ctx, consent("u1", "grafana", "openid")), apperr.ENOTFOUND)
}
