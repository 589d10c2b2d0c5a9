package main

import (
	"net/url"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/proctest"
)

// Issue 25, finding 9: a relying party's access token names the user (preferred_username) only
// when the profile scope was granted — at the code exchange and at every refresh, where a
// narrowed scope without profile drops it; the IdP's own tokens always name the user.
func TestPreferredUsernameOnlyWithProfile(t *testing.T) {
	p := startOIDC(t)
	signup(t, p.URL, "paula", "correct-horse-9")
	if c := verifyWithJWKS(t, p.URL, p.URL, login(t, p.URL, "paula", "correct-horse-9")["access_token"].(string)); c["preferred_username"] != "paula" {
		t.Fatalf("the IdP's own token: %v", c)
	}
	exchange := func(scopes ...string) *oauth2.Token {
		t.Helper()
		r := newRP(t, p.URL, "webapp", webSecret, webCallback, scopes...)
		verifier := oauth2.GenerateVerifier()
		pg := r.signIn(r.get(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nn"))), "paula", "correct-horse-9")
		pg = r.submit(pg, "decision", "allow")
		tok, _ := r.exchange(r.callback(pg, "st"), verifier, "nn")
		return tok
	}
	bare := exchange(oidc.ScopeOpenID, "workitems:read")
	if c := verifyWithJWKS(t, p.URL, p.URL, bare.AccessToken); c["preferred_username"] != nil || c["client_id"] != "webapp" {
		t.Fatalf("a relying party's token without profile names the user: %v", c)
	}
	full := exchange(oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	if c := verifyWithJWKS(t, p.URL, p.URL, full.AccessToken); c["preferred_username"] != "paula" {
		t.Fatalf("a relying party's token with profile: %v", c)
	}
	refresh := func(rt, scope string) map[string]any {
		t.Helper()
		a := tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {scope}}, "webapp", webSecret)
		if a.status != 200 {
			t.Fatalf("refresh: %d %s", a.status, a.body)
		}
		m := a.json(t)
		proctest.Secret(m["access_token"].(string), m["refresh_token"].(string))
		return m
	}
	kept := refresh(full.RefreshToken, "openid profile offline_access")
	if c := verifyWithJWKS(t, p.URL, p.URL, kept["access_token"].(string)); c["preferred_username"] != "paula" {
		t.Fatalf("refreshed with profile: %v", c)
	}
	narrowed := refresh(kept["refresh_token"].(string), "openid")
	if c := verifyWithJWKS(t, p.URL, p.URL, narrowed["access_token"].(string)); c["preferred_username"] != nil {
		t.Fatalf("refreshed without profile still names the user: %v", c)
	}
}
