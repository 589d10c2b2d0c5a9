package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// The refresh grant returns a fresh ID token when the family holds openid, as kubectl and
// kubelogin demand of every refresh answer: go-oidc verifies it (signature, issuer, audience,
// expiry on the fake clock), and it names the same subject, the original sign-in's auth_time,
// amr and sid, and no nonce. A refresh narrowed to a scope without openid gets none.
func TestIDTokenOnRefresh(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", oidcClients(t), "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	verifier := oauth2.GenerateVerifier()
	pg := r.signIn(r.get(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"))), "alice", "correct-horse-9")
	signedIn := clk.Now()
	clk.Advance(30 * time.Second) // the consent, and so the family, comes later than the sign-in
	tok, first := r.exchange(r.callback(r.submit(pg, "decision", "allow"), "st"), verifier, "n-1")
	var c1 idClaims
	first.Claims(&c1)

	// Two hours on, past the first ID token's expiry (1h): the library refreshes.
	clk.Advance(2 * time.Hour)
	old := *tok
	old.Expiry = time.Now().Add(-time.Minute) // x/oauth2 reads the real clock: an expired token to it
	fresh, err := r.cfg.TokenSource(r.ctx, &old).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	proctest.Secret(fresh.AccessToken, fresh.RefreshToken)
	raw, _ := fresh.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("the refresh answer has no id_token")
	}
	proctest.Secret(raw)
	verifier2 := r.provider.Verifier(&oidc.Config{ClientID: "webapp", Now: clk.Now})
	idt, err := verifier2.Verify(r.ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc verifies the refreshed ID token: %v", err)
	}
	if err := idt.VerifyAccessToken(fresh.AccessToken); err != nil {
		t.Fatalf("at_hash of the refreshed ID token: %v", err)
	}
	var c idClaims
	idt.Claims(&c)
	if idt.Subject != first.Subject || idt.Nonce != "" || c.AuthTime != signedIn.Unix() || c.AuthTime != c1.AuthTime ||
		!slices.Equal(c.AMR, c1.AMR) || c.SID != c1.SID || c.AZP != "webapp" || c.PreferredUsername != "alice" ||
		!idt.IssuedAt.Equal(clk.Now()) {
		t.Fatalf("refreshed ID token: %+v %+v, first %+v %+v", idt, c, first, c1)
	}

	// A refresh narrowed to a scope without openid: an access token, no ID token.
	a := tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}, "scope": {"profile"}}, "webapp", webSecret)
	if a.status != 200 {
		t.Fatalf("narrowed refresh: %d %s", a.status, a.body)
	}
	j := a.json(t)
	proctest.Secret(j["access_token"].(string), j["refresh_token"].(string))
	if _, ok := j["id_token"]; ok || j["scope"] != "profile" {
		t.Fatalf("a refresh without openid: %s", strings.ReplaceAll(string(a.body), j["access_token"].(string), "…"))
	}
}

const (
	gatewaySecret = "secret-of-the-gateway-0123456789-abcdef"
	relaySecret   = "secret-of-the-relay-0123456789-abcdefgh"
	exchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessType    = "urn:ietf:params:oauth:token-type:access_token"
)

// exchangeClients adds to the code-flow tests' clients two services that may exchange a user's
// token: the gateway for the relay's audience, the relay for the work-item service's.
func exchangeClients(t *testing.T) string {
	t.Helper()
	proctest.Secret(gatewaySecret, relaySecret)
	var clients []any
	b, err := os.ReadFile(oidcClients(t))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &clients)
	for _, c := range clients { // the service may also name its own audience as a resource
		if c := c.(map[string]any); c["client_id"] == "service" {
			c["token_exchange"] = map[string]any{"audiences": []string{"reports"}}
		}
	}
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, file, append(clients,
		map[string]any{"client_id": "gateway", "client_secret": gatewaySecret, "grant_types": []string{exchangeGrant},
			"scopes": []string{"workitems:read"}, "token_exchange": map[string]any{"audiences": []string{"relay"}}},
		map[string]any{"client_id": "relay", "client_secret": relaySecret, "grant_types": []string{exchangeGrant},
			"scopes": []string{"workitems:read"}, "token_exchange": map[string]any{"audiences": []string{"workitems"}}},
	))
	return file
}

func exchangeForm(subject, audience string, kv ...string) url.Values {
	f := url.Values{"grant_type": {exchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessType}, "audience": {audience}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			f.Del(kv[i])
		} else {
			f.Set(kv[i], kv[i+1])
		}
	}
	return f
}

// Token exchange (RFC 8693), end to end: the gateway exchanges the user's token for one aimed
// at the relay, the relay exchanges that for one aimed at the work-item service, which serves
// the user's items and logs the user as sub and the chain of actors. Each token's act names its
// client, nesting the one before. Every refusal is RFC 6749 §5.2's or RFC 8693's error, and a
// subject token that expired or whose family was revoked is refused.
func TestTokenExchange(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", exchangeClients(t), "--rate-limit", "0", "--admin-token", "exchange-admin")
	wi := proctest.Start(t, wiBin, []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--issuer", p.URL})
	if err := proctest.WaitReady(wi.URL, 10e9); err != nil {
		t.Fatalf("%v\n%s", err, wi.Log())
	}
	signup(t, p.URL, "alice", "correct-horse-9")
	signed := login(t, p.URL, "alice", "correct-horse-9")
	user, refresh := signed["access_token"].(string), signed["refresh_token"].(string)
	proctest.Secret(user, refresh)
	sub := verifyWithJWKS(t, p.URL, p.URL, user)["sub"].(string)
	if a := do(t, "POST", wi.URL+"/workitems", "application/json", strings.NewReader(`{"title":"mine"}`), "Authorization", "Bearer "+user); a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}

	// Hop one: the gateway, for the relay, narrowed to reading.
	a := tokenCall(t, p.URL, exchangeForm(user, "relay", "scope", "workitems:read"), "gateway", gatewaySecret)
	if a.status != 200 {
		t.Fatalf("gateway exchange: %d %s", a.status, a.body)
	}
	j := a.json(t)
	hop1, _ := j["access_token"].(string)
	proctest.Secret(hop1)
	if j["issued_token_type"] != accessType || j["token_type"] != "Bearer" || j["expires_in"] != float64(900) || j["scope"] != "workitems:read" || j["refresh_token"] != nil {
		t.Fatalf("exchange answer: %v", j)
	}
	c1 := verifyForAudience(t, p.URL, p.URL, "relay", hop1)
	if c1["sub"] != sub || c1["client_id"] != "gateway" || fmt.Sprint(c1["aud"]) != "[relay]" || fmt.Sprint(c1["act"]) != "map[sub:gateway]" ||
		c1["scope"] != "workitems:read" {
		t.Fatalf("hop one's claims: %v", c1)
	}
	// The relay's token is not the work-item service's.
	if a := do(t, "GET", wi.URL+"/workitems", "", nil, "Authorization", "Bearer "+hop1); a.status != 401 {
		t.Fatalf("the relay's token at the work-item service: %d", a.status)
	}
	// Hop two: the relay, for the work-item service, with the subject's scope.
	a = tokenCall(t, p.URL, exchangeForm(hop1, "workitems"), "relay", relaySecret)
	if a.status != 200 {
		t.Fatalf("relay exchange: %d %s", a.status, a.body)
	}
	hop2, _ := a.json(t)["access_token"].(string)
	proctest.Secret(hop2)
	c2 := verifyWithJWKS(t, p.URL, p.URL, hop2)
	if c2["sub"] != sub || c2["client_id"] != "relay" || fmt.Sprint(c2["aud"]) != "[workitems]" ||
		fmt.Sprint(c2["act"]) != "map[act:map[sub:gateway] sub:relay]" || c2["scope"] != "workitems:read" {
		t.Fatalf("hop two's claims: %v", c2)
	}
	list := do(t, "GET", wi.URL+"/workitems", "", nil, "Authorization", "Bearer "+hop2)
	if list.status != 200 || !strings.Contains(string(list.body), `"mine"`) {
		t.Fatalf("the user's items through two hops: %d %s", list.status, list.body)
	}
	if a := do(t, "POST", wi.URL+"/workitems", "application/json", strings.NewReader(`{"title":"x"}`), "Authorization", "Bearer "+hop2); a.status != 403 {
		t.Fatalf("the narrowed token writes: %d", a.status)
	}
	logged := func(lg string) bool {
		return strings.Contains(lg, "sub="+sub) && strings.Contains(lg, `act="relay < gateway"`)
	}
	if !wi.WaitLog(10*time.Second, logged) {
		t.Fatalf("the work-item service does not log the user and the actors:\n%s", wi.Log())
	}

	cc := tokenCall(t, p.URL, url.Values{"grant_type": {"client_credentials"}}, "service", webSecret+"-svc")
	clientsOwn, _ := cc.json(t)["access_token"].(string)
	proctest.Secret(clientsOwn)
	refusals := []struct {
		name         string
		form         url.Values
		id, secret   string
		status       int
		code, detail string
	}{
		{"no subject_token", exchangeForm("", "relay"), "gateway", gatewaySecret, 400, "invalid_request", "subject_token is required"},
		{"no subject_token_type", exchangeForm(user, "relay", "subject_token_type", ""), "gateway", gatewaySecret, 400, "invalid_request", "subject_token_type is required"},
		{"an ID token's type", exchangeForm(user, "relay", "subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), "gateway", gatewaySecret, 400, "invalid_request", "subject_token_type must be"},
		{"no audience", exchangeForm(user, ""), "gateway", gatewaySecret, 400, "invalid_request", "audience is required"},
		{"an actor token", exchangeForm(user, "relay", "actor_token", user, "actor_token_type", accessType), "gateway", gatewaySecret, 400, "invalid_request", "actor_token"},
		{"audience twice", func() url.Values { f := exchangeForm(user, "relay"); f.Add("audience", "relay"); return f }(), "gateway", gatewaySecret, 400, "invalid_request", "repeated"},
		{"an unknown audience", exchangeForm(user, "nowhere"), "gateway", gatewaySecret, 400, "invalid_target", ""},
		{"another client's audience", exchangeForm(user, "workitems"), "gateway", gatewaySecret, 400, "invalid_target", ""},
		{"a wider scope", exchangeForm(hop1, "workitems", "scope", "workitems:read workitems:write"), "relay", relaySecret, 400, "invalid_scope", ""},
		// The user's token may write; the gateway is registered to read only.
		{"a scope the client may not have", exchangeForm(user, "relay", "scope", "workitems:write"), "gateway", gatewaySecret, 400, "invalid_scope", ""},
		{"a client without the grant", exchangeForm(user, "relay"), "service", webSecret + "-svc", 400, "unauthorized_client", ""},
		{"a public client", exchangeForm(user, "relay", "client_id", "spa"), "", "", 401, "invalid_client", ""},
		{"no client", exchangeForm(user, "relay"), "", "", 401, "invalid_client", ""},
		{"a wrong secret", exchangeForm(user, "relay"), "gateway", relaySecret, 401, "invalid_client", ""},
		{"a forged subject token", exchangeForm(user[:len(user)-4]+"AAAA", "relay"), "gateway", gatewaySecret, 400, "invalid_grant", ""},
		{"not a token", exchangeForm("not-a-token", "relay"), "gateway", gatewaySecret, 400, "invalid_grant", ""},
		{"a refresh token", exchangeForm(refresh, "relay"), "gateway", gatewaySecret, 400, "invalid_grant", ""},
		{"a client's own token, naming no user", exchangeForm(clientsOwn, "relay"), "gateway", gatewaySecret, 400, "invalid_grant", "no active user"},
	}
	for _, r := range refusals {
		oauthErr(t, r.name, tokenCall(t, p.URL, r.form, r.id, r.secret), r.status, r.code, r.detail)
	}

	// A revoked family: the user's token, and every token exchanged from it, is refused.
	if a := do(t, "POST", p.URL+"/revoke", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"token": {refresh}}.Encode())); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	oauthErr(t, "a revoked family's token", tokenCall(t, p.URL, exchangeForm(user, "relay"), "gateway", gatewaySecret), 400, "invalid_grant", "revoked")
	oauthErr(t, "a token exchanged from a revoked family's", tokenCall(t, p.URL, exchangeForm(hop1, "workitems"), "relay", relaySecret), 400, "invalid_grant", "revoked")
	// A browser session's token (the web app's code flow, no refresh family): refused once an
	// administrator has ended the user's sessions. A disabled user's token: refused.
	signup(t, p.URL, "bob", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	v := oauth2.GenerateVerifier()
	c := r.callback(r.submit(r.signIn(r.get(authorizeURL(p.URL, webQuery(v, "scope", "openid workitems:read"))), "bob", "correct-horse-9"), "decision", "allow"), "xyz")
	a = tokenCall(t, p.URL, codeForm(c, v), "webapp", webSecret)
	bobs, _ := a.json(t)["access_token"].(string)
	proctest.Secret(bobs)
	if a := tokenCall(t, p.URL, exchangeForm(bobs, "relay"), "gateway", gatewaySecret); a.status != 200 {
		t.Fatalf("a session's token: %d %s", a.status, a.body)
	}
	bob := payload(t, bobs)["sub"].(string)
	if a := do(t, "POST", p.URL+"/admin/users/"+bob+"/logout", "", nil, "Authorization", "Bearer exchange-admin"); a.status != 200 {
		t.Fatalf("admin logout: %d %s", a.status, a.body)
	}
	oauthErr(t, "an ended session's token", tokenCall(t, p.URL, exchangeForm(bobs, "relay"), "gateway", gatewaySecret), 400, "invalid_grant", "session has ended")
	signup(t, p.URL, "carol", "correct-horse-9")
	carols := login(t, p.URL, "carol", "correct-horse-9")["access_token"].(string)
	proctest.Secret(carols)
	if a := do(t, "POST", p.URL+"/admin/users/"+payload(t, carols)["sub"].(string)+"/disable", "", nil, "Authorization", "Bearer exchange-admin"); a.status != 200 {
		t.Fatalf("admin disable: %d %s", a.status, a.body)
	}
	oauthErr(t, "a disabled user's token", tokenCall(t, p.URL, exchangeForm(carols, "relay"), "gateway", gatewaySecret), 400, "invalid_grant", "no active user")

	// A fresh sign-in's token, 10 minutes on: what it is exchanged for expires with it, not later.
	again := login(t, p.URL, "alice", "correct-horse-9")["access_token"].(string)
	proctest.Secret(again)
	clk.Advance(10 * time.Minute)
	a = tokenCall(t, p.URL, exchangeForm(again, "relay"), "gateway", gatewaySecret)
	if a.status != 200 || a.json(t)["expires_in"] != float64(300) {
		t.Fatalf("a live token after the revocation, 10 minutes old: %d %s", a.status, a.body)
	}
	late := a.json(t)["access_token"].(string)
	proctest.Secret(late)
	if exp, want := payload(t, late)["exp"], payload(t, again)["exp"]; exp != want || exp == nil { // the IdP's fake clock is ahead of jwt's
		t.Fatalf("the exchanged token expires at %v, its subject at %v", exp, want)
	}
	// An expired one: 16 minutes on (the access tokens live 15).
	clk.Advance(6 * time.Minute)
	oauthErr(t, "an expired subject token", tokenCall(t, p.URL, exchangeForm(again, "relay"), "gateway", gatewaySecret), 400, "invalid_grant", "")

	if lg := p.Log(); strings.Contains(lg, user) || strings.Contains(lg, hop1) || strings.Contains(lg, gatewaySecret) {
		t.Fatal("a token or secret reached the IdP's log")
	}
}

// Resource indicators (RFC 8707): a resource the client may name (an --audience value, or one of
// its exchange audiences) becomes its access tokens' one audience — named at /authorize (and
// kept with the request and the code), at the code's redemption, at a refresh (one of the
// family's only) and with client credentials; any other is invalid_target and changes nothing.
func TestResourceIndicators(t *testing.T) {
	const api = "https://api.example/"
	p := startIDP(t, t.TempDir(), "--clients", exchangeClients(t), "--audience", "workitems,"+api, "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	aud := func(name string, a answer, want string) map[string]any {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("%s: %d %s", name, a.status, a.body)
		}
		j := a.json(t)
		at, _ := j["access_token"].(string)
		proctest.Secret(at)
		if rt, ok := j["refresh_token"].(string); ok {
			proctest.Secret(rt)
		}
		if c := verifyForAudience(t, p.URL, p.URL, want, at); fmt.Sprint(c["aud"]) != "["+want+"]" {
			t.Fatalf("%s: aud %v, want [%s]", name, c["aud"], want)
		}
		return j
	}

	// An unknown resource at /authorize: invalid_target, sent back to the client.
	v := oauth2.GenerateVerifier()
	pg := r.get(authorizeURL(p.URL, webQuery(v, "resource", "https://elsewhere.example/")))
	if pg.url.Query().Get("error") != "invalid_target" || !strings.HasPrefix(pg.url.String(), webCallback) {
		t.Fatalf("an unknown resource at /authorize: %s (%d) %s", pg.url, pg.status, pg.body)
	}
	// A known one binds the code: its tokens are for that resource alone, whatever /token says.
	q := webQuery(v, "resource", api, "scope", "openid offline_access workitems:read")
	code := r.callback(r.submit(r.signIn(r.get(authorizeURL(p.URL, q)), "alice", "correct-horse-9"), "decision", "allow"), "xyz")
	withOther := codeForm(code, v)
	withOther.Set("resource", "workitems")
	oauthErr(t, "another resource at the code's redemption", tokenCall(t, p.URL, withOther, "webapp", webSecret), 400, "invalid_target", "")
	j := aud("the code's redemption", tokenCall(t, p.URL, codeForm(code, v), "webapp", webSecret), api)
	refresh := j["refresh_token"].(string)
	// A refresh keeps the family's audience, may name it, and may name no other.
	refreshForm := func(resource string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "resource": {resource}}
	}
	oauthErr(t, "a refresh naming a resource not the family's", tokenCall(t, p.URL, refreshForm("workitems"), "webapp", webSecret), 400, "invalid_target", "")
	j = aud("a refresh naming the family's resource", tokenCall(t, p.URL, refreshForm(api), "webapp", webSecret), api)
	refresh = j["refresh_token"].(string) // the refused refresh spent nothing
	f := refreshForm("")
	f.Del("resource")
	aud("a refresh", tokenCall(t, p.URL, f, "webapp", webSecret), api)

	// A code without a resource, redeemed with one: that one.
	v2 := oauth2.GenerateVerifier()
	code2 := r.callback(r.get(authorizeURL(p.URL, webQuery(v2, "scope", "openid workitems:read"))), "xyz")
	f = codeForm(code2, v2)
	f.Set("resource", "workitems")
	aud("a resource at the redemption", tokenCall(t, p.URL, f, "webapp", webSecret), "workitems")

	// Client credentials.
	cc := func(resource string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}
	}
	aud("client credentials for a resource", tokenCall(t, p.URL, cc(api), "service", webSecret+"-svc"), api)
	aud("client credentials for its own exchange audience", tokenCall(t, p.URL, cc("reports"), "service", webSecret+"-svc"), "reports")
	oauthErr(t, "client credentials for an unknown resource", tokenCall(t, p.URL, cc("https://elsewhere.example/"), "service", webSecret+"-svc"), 400, "invalid_target", "")
	oauthErr(t, "client credentials for another client's exchange audience", tokenCall(t, p.URL, cc("relay"), "service", webSecret+"-svc"), 400, "invalid_target", "")
}
