package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
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
	// Nor does introspection tell the relying party the username without profile (the review's
	// bypass of the same rule): its own tokens, access and refresh.
	introspect := func(tok string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", p.URL+"/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("webapp", webSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m["active"] != true {
			t.Fatalf("introspect: %v %v", m, err)
		}
		return m
	}
	if m := introspect(bare.AccessToken); m["username"] != nil {
		t.Fatalf("introspection names the user without profile: %v", m)
	}
	full := exchange(oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	if m := introspect(full.AccessToken); m["username"] != "paula" {
		t.Fatalf("introspection with profile: %v", m)
	}
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

// The sid gap of issue 25: access and ID tokens carry sid, the public id of the browser session
// or refresh family they came from, and GET /account/sessions marks that entry current for a
// Bearer caller (it marked none). A token from /auth names its family, a refreshed one the same
// family, one from the code flow the browser session (as its ID token does, and its refreshes).
func TestTokensNameTheirSession(t *testing.T) {
	p := startOIDC(t)
	signup(t, p.URL, "sid", "correct-horse-9")
	sidOf := func(tok string) string {
		t.Helper()
		s, _ := verifyWithJWKS(t, p.URL, p.URL, tok)["sid"].(string)
		if s == "" {
			t.Fatalf("no sid in %v", verifyWithJWKS(t, p.URL, p.URL, tok))
		}
		return s
	}
	current := func(tok string) []accountSession {
		t.Helper()
		var out []accountSession
		for _, s := range accountSessions(t, p.URL, tok) {
			if s.Current {
				out = append(out, s)
			}
		}
		return out
	}
	one := login(t, p.URL, "sid", "correct-horse-9")
	two := login(t, p.URL, "sid", "correct-horse-9")
	famOne, famTwo := sidOf(one["access_token"].(string)), sidOf(two["access_token"].(string))
	for _, tt := range []struct {
		name, tok, sid string
	}{{"the first /auth token", one["access_token"].(string), famOne}, {"the second", two["access_token"].(string), famTwo}} {
		if c := current(tt.tok); len(c) != 1 || c[0].ID != tt.sid || c[0].Kind != "refresh" {
			t.Fatalf("%s (sid %s): current entries %+v, want its family alone", tt.name, tt.sid, c)
		}
	}
	if famOne == famTwo {
		t.Fatal("two logins, one sid")
	}
	r := refreshGrant(t, p.URL, one["refresh_token"].(string))
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	refreshed := r.json(t)["access_token"].(string)
	proctest.Secret(refreshed, r.json(t)["refresh_token"].(string))
	if s := sidOf(refreshed); s != famOne {
		t.Fatalf("a refreshed token's sid %s, want its family %s", s, famOne)
	}
	if c := current(refreshed); len(c) != 1 || c[0].ID != famOne {
		t.Fatalf("after a refresh: current %+v", c)
	}

	// The code flow: the relying party's tokens name the browser session it came from.
	rp := newRP(t, p.URL, "webapp", webSecret, webCallback, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
	verifier := oauth2.GenerateVerifier()
	pg := rp.signIn(rp.get(rp.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nn"))), "sid", "correct-horse-9")
	tok, idt := rp.exchange(rp.callback(rp.submit(pg, "decision", "allow"), "st"), verifier, "nn")
	var ic idClaims
	idt.Claims(&ic)
	session := sidOf(tok.AccessToken)
	if session != ic.SID || session == famOne || session == famTwo {
		t.Fatalf("the code flow's access token sid %s, its ID token's %s", session, ic.SID)
	}
	var kinds []string
	for _, s := range accountSessions(t, p.URL, refreshed) {
		if s.ID == session {
			kinds = append(kinds, s.Kind)
		}
	}
	if len(kinds) != 1 || kinds[0] != "browser" {
		t.Fatalf("the code flow's sid %s names %v in the listing, want one browser session", session, kinds)
	}
	again := tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "webapp", webSecret)
	if again.status != 200 {
		t.Fatalf("the app's refresh: %d %s", again.status, again.body)
	}
	proctest.Secret(again.json(t)["access_token"].(string), again.json(t)["refresh_token"].(string))
	if s := sidOf(again.json(t)["access_token"].(string)); s != session {
		t.Fatalf("the app's refreshed token's sid %s, want its session %s", s, session)
	}
	if lg := p.Log(); strings.Contains(lg, tok.AccessToken) || strings.Contains(lg, refreshed) {
		t.Fatal("a token reached the log")
	}
}
