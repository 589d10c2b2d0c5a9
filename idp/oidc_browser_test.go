package main

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// relyingParty is a small web app that logs its users in with the IdP through go-oidc and
// x/oauth2, as any OIDC-using app would: / starts the flow (state, nonce and PKCE kept server-side),
// /callback exchanges the code and verifies the ID token, then shows who signed in.
type relyingParty struct {
	srv      *httptest.Server
	issuer   string
	secret   string
	mu       sync.Mutex
	pending  map[string][2]string // state → verifier, nonce
	provider *oidc.Provider
}

func newRelyingParty(t *testing.T, secret string) *relyingParty {
	rp := &relyingParty{secret: secret, pending: map[string][2]string{}}
	rp.srv = httptest.NewServer(http.HandlerFunc(rp.serve))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *relyingParty) config(ctx context.Context) (*oidc.Provider, oauth2.Config, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.provider == nil {
		p, err := oidc.NewProvider(ctx, rp.issuer)
		if err != nil {
			return nil, oauth2.Config{}, err
		}
		rp.provider = p
	}
	return rp.provider, oauth2.Config{ClientID: "browserapp", ClientSecret: rp.secret, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.srv.URL + "/callback", Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}, nil
}

func (rp *relyingParty) serve(w http.ResponseWriter, r *http.Request) {
	provider, cfg, err := rp.config(r.Context())
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	switch r.URL.Path {
	case "/":
		state, nonce, verifier := oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()
		rp.mu.Lock()
		rp.pending[state] = [2]string{verifier, nonce}
		rp.mu.Unlock()
		http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
	case "/callback":
		q := r.URL.Query()
		rp.mu.Lock()
		p, ok := rp.pending[q.Get("state")]
		delete(rp.pending, q.Get("state"))
		rp.mu.Unlock()
		if !ok || q.Get("iss") != rp.issuer {
			http.Error(w, "unknown state or wrong iss; error="+q.Get("error"), 400)
			return
		}
		tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(p[0]))
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), 502)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		proctest.Secret(tok.AccessToken, raw)
		idt, err := provider.Verifier(&oidc.Config{ClientID: "browserapp"}).Verify(r.Context(), raw)
		if err != nil || idt.Nonce != p[1] || idt.VerifyAccessToken(tok.AccessToken) != nil {
			http.Error(w, fmt.Sprintf("ID token: %v", err), 502)
			return
		}
		var c struct {
			Name  string   `json:"preferred_username"`
			Email string   `json:"email"`
			AMR   []string `json:"amr"`
		}
		idt.Claims(&c)
		fmt.Fprintf(w, `<!doctype html><title>App</title><p id="user">%s</p><p id="email">%s</p><p id="amr">%s</p>`,
			html.EscapeString(c.Name), html.EscapeString(c.Email), html.EscapeString(strings.Join(c.AMR, " ")))
	default:
		http.NotFound(w, r)
	}
}

// browserApp is the relying party of the Chromium tests and the clients file that registers it.
func browserApp(t *testing.T) (*relyingParty, string) {
	const secret = "secret-of-the-browser-app-0123456789-abc"
	proctest.Secret(secret)
	rp := newRelyingParty(t, secret)
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, file, []any{map[string]any{"client_id": "browserapp", "name": "Browser App", "client_secret": secret,
		"redirect_uris": []string{rp.srv.URL + "/callback"}, "grant_types": []string{"authorization_code"},
		"scopes": []string{"openid", "profile", "email"}}})
	return rp, file
}

// A person in Chromium signs in to an app that uses the IdP as its OpenID Provider: the app
// sends them to /authorize, they type their name and password on the login page, click Allow
// on the consent page, and land back in the app, which shows the name and email from the ID
// token go-oidc verified. The second visit asks for nothing.
func TestCodeFlowInChromium(t *testing.T) {
	rp, file := browserApp(t)
	p := startIDP(t, t.TempDir(), "--clients", file)
	rp.issuer = p.URL
	signupEmail(t, p.URL, "frida", "correct-horse-9", "frida@example.com")

	br := proctest.NewBrowser(t, 60*time.Second)
	step, value := br.Step, br.Value

	step("open the app", chromedp.Navigate(rp.srv.URL+"/"), chromedp.WaitVisible(`#username`))
	if title, url := value(chromedp.Title()), value(chromedp.Location()); title != "Sign in" || !strings.HasPrefix(url, p.URL+"/login?rd=") {
		t.Fatalf("landed on %q (%s), want the IdP's login form", title, url)
	}
	step("sign in",
		chromedp.SendKeys(`#username`, "frida"),
		chromedp.SendKeys(`#password`, "correct-horse-9"),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`#allow`),
	)
	if name := value(chromedp.Text(`#client-name`)); name != "Browser App" {
		t.Fatalf("the consent page names %q", name)
	}
	step("allow", chromedp.Click(`#allow`), chromedp.WaitVisible(`#user`))
	if user, email, url := value(chromedp.Text(`#user`)), value(chromedp.Text(`#email`)), value(chromedp.Location()); user != "frida" ||
		email != "frida@example.com" || !strings.HasPrefix(url, rp.srv.URL+"/callback?code=") {
		t.Fatalf("back in the app at %s showing %q %q", url, user, email)
	}
	// Signed in and consent remembered: straight through.
	step("open the app again", chromedp.Navigate(rp.srv.URL+"/"), chromedp.WaitVisible(`#user`))
	if user := value(chromedp.Text(`#user`)); user != "frida" {
		t.Fatalf("second visit shows %q", user)
	}
	if amr := value(chromedp.Text(`#amr`)); amr != "pwd" {
		t.Fatalf("amr %q, want pwd", amr)
	}
}

// The login's second step in Chromium: a user with TOTP types the password, then the code on a
// page of its own, and the app's ID token (verified by go-oidc) says amr pwd, otp, mfa. A wrong
// code shows the step again with an error.
func TestTOTPSecondStepInChromium(t *testing.T) {
	rp, file := browserApp(t)
	clk := clock.NewFake(time.Now())
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", file)
	rp.issuer = p.URL
	signupEmail(t, p.URL, "greta", "correct-horse-9", "greta@example.com")
	tok := login(t, p.URL, "greta", "correct-horse-9")["access_token"].(string)
	secret := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"correct-horse-9"}`).json(t)["secret"].(string)
	proctest.Secret(secret)
	code := func() string {
		c, _ := totp.GenerateCode(secret, clk.Now())
		return c
	}
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code()+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	clk.Advance(30 * time.Second)

	br := proctest.NewBrowser(t, 60*time.Second)
	step, value := br.Step, br.Value
	step("open the app", chromedp.Navigate(rp.srv.URL+"/"), chromedp.WaitVisible(`#username`))
	step("the password",
		chromedp.SendKeys(`#username`, "greta"),
		chromedp.SendKeys(`#password`, "correct-horse-9"),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`#otp`),
	)
	step("a wrong code", chromedp.SendKeys(`#otp`, "000000"), chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#login-error`))
	if title := value(chromedp.Title()); title != "One-time code" {
		t.Fatalf("after a wrong code: %q", title)
	}
	step("the code", chromedp.SendKeys(`#otp`, code()), chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#allow`))
	step("allow", chromedp.Click(`#allow`), chromedp.WaitVisible(`#user`))
	if user, amr := value(chromedp.Text(`#user`)), value(chromedp.Text(`#amr`)); user != "greta" || amr != "pwd otp mfa" {
		t.Fatalf("back in the app: %q with amr %q", user, amr)
	}
}
