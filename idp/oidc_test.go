package main

import (
	"context"
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

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/proctest"
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
