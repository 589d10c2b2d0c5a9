package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

const (
	webSecret   = "secret-of-the-web-app-0123456789-abcdef"
	webCallback = "http://127.0.0.1:9/callback"
	spaCallback = "http://localhost:5173/cb"
)

// oidcClients is the clients file the code-flow tests run with: a confidential web app that is
// not first-party (its users are asked for consent), a public single-page app, and a service.
func oidcClients(t *testing.T) string {
	t.Helper()
	proctest.Secret(webSecret)
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, file, []any{
		map[string]any{"client_id": "webapp", "name": "The Web App", "client_secret": webSecret,
			"redirect_uris": []string{webCallback}, "post_logout_redirect_uris": []string{"http://127.0.0.1:9/bye"},
			"grant_types": []string{"authorization_code", "refresh_token"},
			"scopes":      []string{"openid", "profile", "email", "offline_access", "workitems:read"}},
		map[string]any{"client_id": "spa", "name": "Single Page", "public": true, "first_party": true,
			"redirect_uris": []string{spaCallback}, "grant_types": []string{"authorization_code", "refresh_token"},
			"scopes": []string{"openid", "profile", "offline_access", "workitems:read", "workitems:write"}},
		map[string]any{"client_id": "service", "client_secret": webSecret + "-svc", "grant_types": []string{"client_credentials"},
			"scopes": []string{"workitems:read"}},
	})
	return file
}

// rp is a relying party: go-oidc's provider (from our discovery) and x/oauth2's config, and a
// browser — an HTTP client with a cookie jar that stops at the client's redirect URI.
type rp struct {
	t        *testing.T
	ctx      context.Context
	provider *oidc.Provider
	cfg      oauth2.Config
	browser  *http.Client
}

func newRP(t *testing.T, base, clientID, secret, redirect string, scopes ...string) *rp {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, base)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	return &rp{t: t, ctx: ctx, provider: provider, browser: &http.Client{Jar: jar,
		CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(r.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}},
		cfg: oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: redirect, Scopes: scopes},
	}
}

var (
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
)

// page is a fetched HTML page and where it was.
type page struct {
	url    *url.URL
	status int
	body   string
}

func (p *rp) get(raw string) page {
	p.t.Helper()
	resp, err := p.browser.Get(raw)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.read(resp)
}

func (p *rp) read(resp *http.Response) page {
	p.t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	u := resp.Request.URL
	if loc, err := resp.Location(); err == nil {
		u = loc // stopped at the redirect URI
	}
	return page{url: u, status: resp.StatusCode, body: string(b)}
}

// submit posts the page's form with its hidden fields and the given ones.
func (p *rp) submit(pg page, fields ...string) page {
	p.t.Helper()
	m := formAction.FindStringSubmatch(pg.body)
	if m == nil {
		p.t.Fatalf("no form on %s (%d): %s", pg.url, pg.status, pg.body)
	}
	form := url.Values{}
	for _, h := range hiddenField.FindAllStringSubmatch(pg.body, -1) {
		form.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	action, _ := pg.url.Parse(html.UnescapeString(m[1]))
	resp, err := p.browser.PostForm(action.String(), form)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.read(resp)
}

// signIn answers the login page if the browser is on it.
func (p *rp) signIn(pg page, user, pw string) page {
	p.t.Helper()
	if !strings.Contains(pg.body, `name="password"`) {
		return pg
	}
	return p.submit(pg, "username", user, "password", pw)
}

// callback checks the browser ended at the redirect URI with state and iss, and returns the code.
func (p *rp) callback(pg page, state string) string {
	p.t.Helper()
	q := pg.url.Query()
	if !strings.HasPrefix(pg.url.String(), p.cfg.RedirectURL) || q.Get("code") == "" {
		p.t.Fatalf("did not come back with a code: %s (%d) %s", pg.url, pg.status, pg.body)
	}
	if q.Get("state") != state || q.Get("iss") != p.provider.Endpoint().AuthURL[:strings.LastIndex(p.provider.Endpoint().AuthURL, "/")] {
		p.t.Fatalf("callback %s: state or iss wrong", pg.url)
	}
	proctest.Secret(q.Get("code"))
	return q.Get("code")
}

// exchange redeems the code and verifies the ID token with go-oidc against our discovery and
// JWKS, nonce and at_hash included.
func (p *rp) exchange(code, verifier, nonce string) (*oauth2.Token, *oidc.IDToken) {
	p.t.Helper()
	tok, err := p.cfg.Exchange(p.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		p.t.Fatalf("exchange: %v", err)
	}
	proctest.Secret(tok.AccessToken, tok.RefreshToken)
	raw, _ := tok.Extra("id_token").(string)
	proctest.Secret(raw)
	idt, err := p.provider.Verifier(&oidc.Config{ClientID: p.cfg.ClientID}).Verify(p.ctx, raw)
	if err != nil {
		p.t.Fatalf("go-oidc verifies the ID token: %v", err)
	}
	if idt.Nonce != nonce {
		p.t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		p.t.Fatalf("at_hash: %v", err)
	}
	return tok, idt
}

type idClaims struct {
	AuthTime          int64    `json:"auth_time"`
	AMR               []string `json:"amr"`
	SID               string   `json:"sid"`
	AZP               string   `json:"azp"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	EmailVerified     *bool    `json:"email_verified"`
}

func signupEmail(t *testing.T, base, user, pw, email string) {
	t.Helper()
	proctest.Secret(pw)
	if a := postJSON(t, base+"/signup", map[string]string{"username": user, "password": pw, "email": email}); a.status != 201 {
		t.Fatalf("signup %s: %d %s", user, a.status, a.body)
	}
}

func startOIDC(t *testing.T, extra ...string) *servicetest.Instance {
	t.Helper()
	return startIDP(t, t.TempDir(), append([]string{"--clients", oidcClients(t), "--admin-token", "oidc-admin"}, extra...)...)
}

// The authorization code flow with PKCE, run by go-oidc and x/oauth2 through a browser with a
// cookie jar: sign in, consent (the web app is not first-party), code, exchange, ID token with
// every claim API.md lists, verified by go-oidc; the consent is remembered; the refresh grant
// works for the client that owns the family and no other; the access token opens /userinfo.
func TestCodeFlowWithGoOIDC(t *testing.T) {
	p := startOIDC(t)
	signupEmail(t, p.URL, "alice", "correct-horse-9", "Alice@Example.com")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback, oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess, "workitems:read")

	verifier, nonce := oauth2.GenerateVerifier(), "n-0S6_WzA2Mj"
	start := r.cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	pg := r.signIn(r.get(start), "alice", "correct-horse-9")
	if !strings.Contains(pg.body, "The Web App") || !strings.Contains(pg.body, "See your email address") {
		t.Fatalf("no consent page: %d %s", pg.status, pg.body)
	}
	code := r.callback(r.submit(pg, "decision", "allow"), "st4te")
	tok, idt := r.exchange(code, verifier, nonce)
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if idt.Issuer != p.URL || idt.Subject == "" || !slices.Equal(idt.Audience, []string{"webapp"}) || c.AZP != "webapp" ||
		c.AuthTime == 0 || !slices.Equal(c.AMR, []string{"pwd"}) || c.SID == "" || c.PreferredUsername != "alice" ||
		c.Email != "Alice@Example.com" || c.EmailVerified == nil || *c.EmailVerified {
		t.Fatalf("ID token claims: %+v %+v", idt, c)
	}
	if tok.RefreshToken == "" || tok.Extra("scope") != "openid profile email offline_access workitems:read" {
		t.Fatalf("token response: refresh %t scope %v", tok.RefreshToken != "", tok.Extra("scope"))
	}
	at := verifyWithJWKS(t, p.URL, p.URL, tok.AccessToken)
	if at["sub"] != idt.Subject || at["client_id"] != "webapp" || at["scope"] != "openid profile email offline_access workitems:read" {
		t.Fatalf("access token claims %v", at)
	}

	// The consent is remembered: the next authorization goes straight back with a code.
	verifier2 := oauth2.GenerateVerifier()
	pg = r.get(r.cfg.AuthCodeURL("again", oauth2.S256ChallengeOption(verifier2), oidc.Nonce("n2")))
	_, idt2 := r.exchange(r.callback(pg, "again"), verifier2, "n2")
	var c2 idClaims
	idt2.Claims(&c2)
	if c2.SID != c.SID || c2.AuthTime != c.AuthTime {
		t.Fatalf("same session, same sid and auth_time: %+v %+v", c, c2)
	}

	// Refresh through the library: the family is the web app's.
	old := *tok
	old.Expiry = old.Expiry.Add(-24 * 60 * 60 * 1e9)
	fresh, err := r.cfg.TokenSource(r.ctx, &old).Token()
	if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	proctest.Secret(fresh.AccessToken, fresh.RefreshToken)
	// Another client, or no client, cannot spend it.
	for name, form := range map[string]url.Values{
		"no client":      {"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}},
		"another client": {"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}, "client_id": {"spa"}},
	} {
		a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if a.status != 400 || a.json(t)["error"] != "invalid_grant" {
			t.Fatalf("%s refreshes the web app's family: %d %s", name, a.status, a.body)
		}
	}
	// …and their attempts did not revoke it: the owner still can, and may narrow the scope.
	a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}, "scope": {"openid workitems:read"},
		"client_id": {"webapp"}, "client_secret": {webSecret}}.Encode()))
	if a.status != 200 || a.json(t)["scope"] != "openid workitems:read" {
		t.Fatalf("the owner refreshes with a narrower scope: %d %s", a.status, a.body)
	}
	proctest.Secret(a.json(t)["access_token"].(string), a.json(t)["refresh_token"].(string))
	latest := a.json(t)["refresh_token"].(string)

	// The app's token cannot change the user's password (nor guess it) or email: only the IdP's
	// own sign-in can.
	if a := do(t, "POST", p.URL+"/account/password", "application/json", strings.NewReader(`{"current_password":"wrong-guess-1","new_password":"another-horse-10"}`),
		"Authorization", "Bearer "+tok.AccessToken); a.status != 403 {
		t.Fatalf("password change with the app's token: %d %s", a.status, a.body)
	}
	// RFC 7009 §2.1: revoking the app's refresh token needs the app's authentication.
	revoke := func(form url.Values, id, secret string) answer {
		req, _ := http.NewRequest("POST", p.URL+"/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id != "" {
			req.SetBasicAuth(id, secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header, b}
	}
	oauthErr(t, "revoke without the client", revoke(url.Values{"token": {latest}}, "", ""), 401, "invalid_client", "")
	oauthErr(t, "revoke by another client", revoke(url.Values{"token": {latest}, "client_id": {"spa"}}, "", ""), 400, "unauthorized_client", "")
	oauthErr(t, "revoke with a wrong secret", revoke(url.Values{"token": {latest}}, "webapp", "nope"), 401, "invalid_client", "")
	if a := revoke(url.Values{"token": {latest}}, "webapp", webSecret); a.status != 200 {
		t.Fatalf("the app revokes its token: %d %s", a.status, a.body)
	}
	oauthErr(t, "refresh after revocation", tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {latest}},
		"webapp", webSecret), 400, "invalid_grant", "")

	// The public single-page app (first-party: no consent) with PKCE and no secret.
	spa := newRP(t, p.URL, "spa", "", spaCallback, oidc.ScopeOpenID, "workitems:write")
	spa.browser.Jar = r.browser.Jar // the same browser, already signed in
	v3 := oauth2.GenerateVerifier()
	spaTok, spaID := spa.exchange(spa.callback(spa.get(spa.cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v3), oidc.Nonce("n3"))), "s"), v3, "n3")
	var c3 idClaims
	spaID.Claims(&c3)
	if spaID.Subject != idt.Subject || c3.PreferredUsername != "" || c3.Email != "" || spaTok.RefreshToken != "" {
		t.Fatalf("spa: sub %s claims %+v refresh %t", spaID.Subject, c3, spaTok.RefreshToken != "")
	}
	if lg := p.Log(); strings.Contains(lg, tok.AccessToken) || strings.Contains(lg, code) {
		t.Fatal("a token or code reached the log")
	}
}

// authorizeURL is an authorization request of the web app (or another client) with query q.
func authorizeURL(base string, q url.Values) string { return base + "/authorize?" + q.Encode() }

func webQuery(verifier string, kv ...string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {"webapp"}, "redirect_uri": {webCallback},
		"scope": {"openid offline_access"}, "state": {"xyz"}, "nonce": {"n"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

// tokenCall posts a token request, authenticating with Basic when id is not empty.
func tokenCall(t *testing.T, base string, form url.Values, id, secret string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func codeForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webCallback}, "code_verifier": {verifier}}
}

// oauthErr checks a token-endpoint refusal: status, error and (a part of) its description.
func oauthErr(t *testing.T, name string, a answer, status int, code, desc string) {
	t.Helper()
	m := map[string]any{}
	json.Unmarshal(a.body, &m)
	d, _ := m["error_description"].(string)
	if a.status != status || m["error"] != code || !strings.Contains(d, desc) {
		t.Errorf("%s: %d %s, want %d %s (%s)", name, a.status, a.body, status, code, desc)
	}
}

// Every refusal the issue lists, each with its exact error, against the running IdP: the
// authorization endpoint's (an error page, never a redirect, when the client or redirect URI
// cannot be trusted) and the token endpoint's.
func TestCodeFlowRefusals(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", oidcClients(t), "--admin-token", "oidc-admin", "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	v := oauth2.GenerateVerifier()
	// Sign in and allow the web app once.
	first := r.callback(r.submit(r.signIn(r.get(authorizeURL(p.URL, webQuery(v))), "alice", "correct-horse-9"), "decision", "allow"), "xyz")

	// The authorization endpoint: an error page, and no Location, for what cannot be trusted.
	noRedirect := func(name string, q url.Values, code string) {
		t.Helper()
		pg := r.get(authorizeURL(p.URL, q))
		if pg.status != 400 || strings.HasPrefix(pg.url.String(), webCallback) || !strings.Contains(pg.body, code+":") {
			t.Errorf("%s: %d at %s: %s", name, pg.status, pg.url, pg.body)
		}
	}
	noRedirect("unknown client", webQuery(v, "client_id", "nobody"), "invalid_client")
	noRedirect("unregistered redirect URI", webQuery(v, "redirect_uri", "http://127.0.0.1:9/elsewhere"), "invalid_request")
	noRedirect("extended redirect URI", webQuery(v, "redirect_uri", webCallback+"/more"), "invalid_request")
	noRedirect("differently-cased redirect URI", webQuery(v, "redirect_uri", strings.ToUpper(webCallback[:4])+webCallback[4:]), "invalid_request")
	noRedirect("redirect URI with another path case", webQuery(v, "redirect_uri", "http://127.0.0.1:9/Callback"), "invalid_request")
	// Redirected errors carry error, state and iss.
	redirected := func(name string, q url.Values, code string) {
		t.Helper()
		pg := r.get(authorizeURL(p.URL, q))
		got := pg.url.Query()
		if !strings.HasPrefix(pg.url.String(), q.Get("redirect_uri")) || got.Get("error") != code || got.Get("state") != q.Get("state") ||
			got.Get("iss") != p.URL || got.Get("code") != "" {
			t.Errorf("%s: %d at %s", name, pg.status, pg.url)
		}
	}
	spa := url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {spaCallback}, "scope": {"openid"}, "state": {"s"}}
	r.browser.CheckRedirect = stopAt(webCallback, spaCallback)
	redirected("missing PKCE for a public client", spa, "invalid_request")
	withPlain := url.Values{"code_challenge": {v}, "code_challenge_method": {"plain"}}
	for k, vv := range spa {
		withPlain[k] = vv
	}
	redirected("plain", withPlain, "invalid_request")
	redirected("a scope the client may not have", webQuery(v, "scope", "openid workitems:write"), "invalid_scope")
	redirected("an unsupported response type", webQuery(v, "response_type", "token"), "unsupported_response_type")

	// prompt=none without a session: login_required.
	anon := newRP(t, p.URL, "webapp", webSecret, webCallback)
	pg := anon.get(authorizeURL(p.URL, webQuery(v, "prompt", "none")))
	if pg.url.Query().Get("error") != "login_required" || pg.url.Query().Get("state") != "xyz" {
		t.Errorf("prompt=none without a session: %s", pg.url)
	}
	// Consent denied: access_denied. Bob has not allowed the web app; prompt=none first says so.
	signup(t, p.URL, "bob", "correct-horse-9")
	bob := newRP(t, p.URL, "webapp", webSecret, webCallback)
	bob.signIn(bob.get(p.URL+"/login"), "bob", "correct-horse-9")
	if pg := bob.get(authorizeURL(p.URL, webQuery(v, "prompt", "none"))); pg.url.Query().Get("error") != "consent_required" {
		t.Errorf("prompt=none without consent: %s", pg.url)
	}
	consent := bob.get(authorizeURL(p.URL, webQuery(v)))
	if pg := bob.submit(consent, "decision", "deny"); pg.url.Query().Get("error") != "access_denied" || pg.url.Query().Get("code") != "" {
		t.Errorf("consent denied: %s", pg.url)
	}
	// A consent POST without the CSRF token (or with another session's) is refused with a page.
	consent = bob.get(authorizeURL(p.URL, webQuery(v)))
	form := url.Values{"decision": {"allow"}, "id": {formField(t, consent, "id")}}
	resp, _ := bob.browser.PostForm(p.URL+"/authorize/continue", form)
	if pg := bob.read(resp); pg.status != 403 || strings.HasPrefix(pg.url.String(), webCallback) {
		t.Errorf("a CSRF-less consent POST: %d %s", pg.status, pg.url)
	}
	form.Set("csrf", formField(t, consent, "csrf")) // bob's token, posted from alice's browser
	resp, _ = r.browser.PostForm(p.URL+"/authorize/continue", form)
	if pg := r.read(resp); pg.status != 403 {
		t.Errorf("another session's consent token: %d %s", pg.status, pg.url)
	}

	// The token endpoint.
	code := func() (string, string) {
		t.Helper()
		ver := oauth2.GenerateVerifier()
		return r.callback(r.get(authorizeURL(p.URL, webQuery(ver))), "xyz"), ver
	}
	c, ver := code()
	oauthErr(t, "a wrong verifier", tokenCall(t, p.URL, codeForm(c, oauth2.GenerateVerifier()), "webapp", webSecret), 400, "invalid_grant", "code_verifier does not match")
	oauthErr(t, "no verifier", tokenCall(t, p.URL, codeForm(c, ""), "webapp", webSecret), 400, "invalid_grant", "code_verifier is required")
	oauthErr(t, "another redirect URI", tokenCall(t, p.URL, url.Values{"grant_type": {"authorization_code"}, "code": {c},
		"redirect_uri": {webCallback + "/x"}, "code_verifier": {ver}}, "webapp", webSecret), 400, "invalid_grant", "redirect_uri")
	a := tokenCall(t, p.URL, codeForm(c, ver), "webapp", webSecret+"x")
	oauthErr(t, "a wrong client secret", a, 401, "invalid_client", "")
	if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("a wrong client secret: WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
	}
	spaForm := codeForm(c, ver)
	spaForm.Set("client_id", "spa")
	oauthErr(t, "a code presented by another client", tokenCall(t, p.URL, spaForm, "", ""), 400, "invalid_grant", "another client")
	// None of those spent the code: its client, with its verifier, redeems it — once.
	a = tokenCall(t, p.URL, codeForm(c, ver), "webapp", webSecret)
	if a.status != 200 {
		t.Fatalf("the code after refused attempts: %d %s", a.status, a.body)
	}
	issued := a.json(t)
	proctest.Secret(issued["access_token"].(string), issued["refresh_token"].(string), issued["id_token"].(string))
	oauthErr(t, "a replayed code", tokenCall(t, p.URL, codeForm(c, ver), "webapp", webSecret), 400, "invalid_grant", "already used")
	// …and what the first redemption issued is revoked.
	oauthErr(t, "the replayed code's refresh token", tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {issued["refresh_token"].(string)}}, "webapp", webSecret), 400, "invalid_grant", "")
	// The very first code, issued a while ago, is still good until 60 s have passed…
	c2, ver2 := code()
	clk.Advance(61 * time.Second)
	oauthErr(t, "an expired code", tokenCall(t, p.URL, codeForm(c2, ver2), "webapp", webSecret), 400, "invalid_grant", "expired")
	oauthErr(t, "an unknown code", tokenCall(t, p.URL, codeForm("bm90LWEtY29kZQ", ver2), "webapp", webSecret), 400, "invalid_grant", "not valid")
	_ = first
	// Client credentials for a public client; a public client claiming a secret.
	oauthErr(t, "client credentials for a public client", tokenCall(t, p.URL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"spa"}}, "", ""), 400, "unauthorized_client", "")
	oauthErr(t, "the code grant for a client-credentials client", tokenCall(t, p.URL, codeForm("x", ver2), "service", webSecret+"-svc"), 400, "unauthorized_client", "")
	oauthErr(t, "a confidential client without its secret", tokenCall(t, p.URL, url.Values{"grant_type": {"authorization_code"},
		"code": {"x"}, "redirect_uri": {webCallback}, "client_id": {"webapp"}}, "", ""), 401, "invalid_client", "")
}

// stopAt is a CheckRedirect that stops at any of the given redirect URIs.
func stopAt(prefixes ...string) func(*http.Request, []*http.Request) error {
	return func(r *http.Request, _ []*http.Request) error {
		for _, p := range prefixes {
			if strings.HasPrefix(r.URL.String(), p) {
				return http.ErrUseLastResponse
			}
		}
		return nil
	}
}

// RP-initiated logout: a valid id_token_hint naming the browser's session ends it at once and
// returns to the registered post_logout_redirect_uri with state; without a hint the user is
// asked first; an unregistered URI is refused with a page. After it, prompt=none is
// login_required.
func TestRPInitiatedLogout(t *testing.T) {
	p := startOIDC(t)
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	const bye = "http://127.0.0.1:9/bye"
	r.browser.CheckRedirect = stopAt(webCallback, bye)
	v := oauth2.GenerateVerifier()
	c := r.callback(r.submit(r.signIn(r.get(authorizeURL(p.URL, webQuery(v))), "alice", "correct-horse-9"), "decision", "allow"), "xyz")
	a := tokenCall(t, p.URL, codeForm(c, v), "webapp", webSecret)
	idToken, _ := a.json(t)["id_token"].(string)
	refresh, _ := a.json(t)["refresh_token"].(string)
	proctest.Secret(idToken, refresh, a.json(t)["access_token"].(string))

	logout := func(q url.Values) page { return r.get(p.URL + "/logout?" + q.Encode()) }
	if pg := logout(url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"http://127.0.0.1:9/elsewhere"}}); pg.status != 400 || !strings.Contains(pg.body, "not registered") {
		t.Fatalf("an unregistered post_logout_redirect_uri: %d %s %s", pg.status, pg.url, pg.body)
	}
	if pg := logout(url.Values{"post_logout_redirect_uri": {bye}}); pg.status != 400 {
		t.Fatalf("a post_logout_redirect_uri without its client: %d %s", pg.status, pg.url)
	}
	if pg := logout(url.Values{"id_token_hint": {idToken[:len(idToken)-4] + "AAAA"}}); pg.status != 400 {
		t.Fatalf("a forged hint: %d %s", pg.status, pg.url)
	}
	// Without a hint: a confirmation page, whose form carries the request on.
	pg := logout(url.Values{"client_id": {"webapp"}, "post_logout_redirect_uri": {bye}, "state": {"s1"}})
	if pg.status != 200 || !strings.Contains(pg.body, "confirm-logout") {
		t.Fatalf("logout without a hint: %d %s", pg.status, pg.body)
	}
	if pg := r.get(authorizeURL(p.URL, webQuery(v, "prompt", "none"))); pg.url.Query().Get("code") == "" {
		t.Fatalf("the confirmation page ended the session: %s", pg.url)
	}
	// A POST without the page's token is asked again, and ends nothing.
	resp, _ := r.browser.PostForm(p.URL+"/logout", url.Values{"client_id": {"webapp"}, "post_logout_redirect_uri": {bye}})
	if pg := r.read(resp); pg.status != 200 || !strings.Contains(pg.body, "confirm-logout") {
		t.Fatalf("a CSRF-less logout POST: %d %s", pg.status, pg.url)
	}
	// With the hint: straight back, signed out, families ended.
	pg = logout(url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {bye}, "state": {"s2"}})
	if pg.url.String() != bye+"?state=s2" {
		t.Fatalf("logout with a hint: %d %s", pg.status, pg.url)
	}
	if pg := r.get(authorizeURL(p.URL, webQuery(v, "prompt", "none"))); pg.url.Query().Get("error") != "login_required" {
		t.Fatalf("after logout, prompt=none: %s", pg.url)
	}
	oauthErr(t, "the session's refresh token after logout", tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {refresh}}, "webapp", webSecret), 400, "invalid_grant", "")
}

// A code issued before a key rotation is exchanged after it: the ID token is signed by the new
// key, which the JWKS published before it signed, and go-oidc verifies it.
func TestKeyRotationMidFlow(t *testing.T) {
	p := startOIDC(t)
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "spa", "", spaCallback, oidc.ScopeOpenID)
	v := oauth2.GenerateVerifier()
	before := r.provider.Verifier(&oidc.Config{ClientID: "spa"})
	code := r.callback(r.signIn(r.get(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(v), oidc.Nonce("nn"))), "alice", "correct-horse-9"), "st")
	kids := func() []string {
		keys, _ := jwksKeys(t, p.URL)
		var out []string
		for k := range keys {
			out = append(out, k)
		}
		return out
	}
	published := kids()
	if a := do(t, "POST", p.URL+"/admin/keys/rotate", "", nil, "Authorization", "Bearer oidc-admin"); a.status != 200 {
		t.Fatalf("rotate: %d %s", a.status, a.body)
	}
	tok, idt := r.exchange(code, v, "nn")
	raw := tok.Extra("id_token").(string)
	if _, err := before.Verify(r.ctx, raw); err != nil {
		t.Fatalf("the verifier made before the rotation: %v", err)
	}
	hdr := strings.Split(raw, ".")[0]
	var h map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(hdr)
	json.Unmarshal(b, &h)
	if !slices.Contains(published, h["kid"].(string)) || idt.Subject == "" {
		t.Fatalf("signed by %v, which was not published before the rotation (%v)", h["kid"], published)
	}
}

// A user who signed in through a third-party app calls the work-item service with the access
// token the app got: the items are the user's own (same sub), and only the scopes they
// consented to work — read, not write.
func TestThirdPartyTokenAtTheWorkItemService(t *testing.T) {
	p := startOIDC(t)
	wi := proctest.Start(t, wiBin, []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--issuer", p.URL})
	if err := proctest.WaitReady(wi.URL, 10e9); err != nil {
		t.Fatalf("%v\n%s", err, wi.Log())
	}
	signup(t, p.URL, "alice", "correct-horse-9")
	own := login(t, p.URL, "alice", "correct-horse-9")["access_token"].(string)
	if a := do(t, "POST", wi.URL+"/workitems", "application/json", strings.NewReader(`{"title":"mine"}`), "Authorization", "JWT "+own); a.status != 201 {
		t.Fatalf("create with the first-party token: %d %s", a.status, a.body)
	}
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	v := oauth2.GenerateVerifier()
	q := webQuery(v, "scope", "openid workitems:read")
	c := r.callback(r.submit(r.signIn(r.get(authorizeURL(p.URL, q)), "alice", "correct-horse-9"), "decision", "allow"), "xyz")
	a := tokenCall(t, p.URL, codeForm(c, v), "webapp", webSecret)
	at, _ := a.json(t)["access_token"].(string)
	proctest.Secret(at)
	if claims := verifyWithJWKS(t, p.URL, p.URL, at); claims["client_id"] != "webapp" || claims["scope"] != "openid workitems:read" {
		t.Fatalf("the app's token: %v", claims)
	}
	list := do(t, "GET", wi.URL+"/workitems", "", nil, "Authorization", "Bearer "+at)
	if list.status != 200 || !strings.Contains(string(list.body), `"mine"`) {
		t.Fatalf("list with the app's token: %d %s", list.status, list.body)
	}
	if a := do(t, "POST", wi.URL+"/workitems", "application/json", strings.NewReader(`{"title":"x"}`), "Authorization", "Bearer "+at); a.status != 403 ||
		!strings.Contains(a.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("create with a read-only consent: %d %s", a.status, a.body)
	}
}

// prompt=login, select_account and max_age send a signed-in user to sign in again, and the ID
// token's auth_time is that new sign-in; a recent enough sign-in satisfies max_age without a
// page; login_hint fills in the username.
func TestPromptMaxAgeAndLoginHint(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", oidcClients(t), "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "spa", "", spaCallback, oidc.ScopeOpenID)
	var v string
	exchangeAuthTime := func(pg page) int64 {
		t.Helper()
		_, idt := r.exchange(r.callback(pg, "st"), v, "n")
		var c idClaims
		idt.Claims(&c)
		return c.AuthTime
	}
	// authTime runs an authorization: the ID token's auth_time, or 0 and the login page.
	authTime := func(extra ...oauth2.AuthCodeOption) (int64, page) {
		t.Helper()
		v = oauth2.GenerateVerifier()
		pg := r.get(r.cfg.AuthCodeURL("st", append(extra, oauth2.S256ChallengeOption(v), oidc.Nonce("n"))...))
		if strings.Contains(pg.body, `name="password"`) {
			return 0, pg
		}
		return exchangeAuthTime(pg), pg
	}
	// login_hint on a browser without a session: the login page with the name filled in.
	if _, pg := authTime(oauth2.SetAuthURLParam("login_hint", "alice")); !strings.Contains(pg.body, `value="alice"`) {
		t.Fatalf("login_hint: %s", pg.body)
	}
	r.signIn(r.get(p.URL+"/login"), "alice", "correct-horse-9")
	first, _ := authTime()
	if first != clk.Now().Unix() {
		t.Fatalf("auth_time %d, want %d", first, clk.Now().Unix())
	}
	clk.Advance(10 * time.Second)
	if at, _ := authTime(oauth2.SetAuthURLParam("max_age", "3600")); at != first {
		t.Fatalf("a recent sign-in and max_age=3600: auth_time %d, want %d without a page", at, first)
	}
	for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "5"), oauth2.SetAuthURLParam("prompt", "login"),
		oauth2.SetAuthURLParam("prompt", "select_account")} {
		at, pg := authTime(opt)
		if at != 0 {
			t.Fatalf("%v: a code without a new sign-in (auth_time %d)", opt, at)
		}
		if at := exchangeAuthTime(r.signIn(pg, "alice", "correct-horse-9")); at != clk.Now().Unix() {
			t.Fatalf("%v: after signing in again auth_time is %d, want now (%d)", opt, at, clk.Now().Unix())
		}
		clk.Advance(10 * time.Second)
	}
}
