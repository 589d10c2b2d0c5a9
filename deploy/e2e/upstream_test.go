package e2e

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/proctest"
)

// A person signs in with an account at another OpenID provider (panva's oidc-provider, its
// own login form): Chromium opens an app behind nginx, clicks "Sign in with Upstream" on our
// login page, signs in upstream, and lands in the app, which nginx hands Remote-User and
// Remote-Groups (the upstream's groups, mapped with a prefix). Then a relying party of ours
// (go-oidc) gets an ID token naming the user, whose idp claim is the connector's id.
func TestUpstreamOIDCSignInThroughNginx(t *testing.T) {
	need(t, "chromium")
	need(t, "node")

	listen, idpAddr, upPort := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreePort(t)
	idpURL := "http://" + idpAddr
	up := proctest.StartOIDCProvider(t, "../../idp/testdata/oidc-provider", upPort, idpURL+"/login/upstream/upstream/callback", "devs", "ops")

	const rpSecret = "secret-of-the-upstream-test-rp-0123456789"
	proctest.Secret(rpSecret)
	rp := newIDTokenApp(t, rpSecret)
	rp.issuer = idpURL

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "upstream-secret")
	if err := os.WriteFile(secretFile, []byte(up.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "idp.yaml")
	if err := os.WriteFile(config, []byte(`connectors:
  - id: upstream
    type: oidc
    name: Upstream
    issuer: `+up.Issuer+`
    client_id: jwtidp
    client_secret_file: `+secretFile+`
    scopes: [openid, profile, email, groups]
    claims: {username: preferred_username, email: email, groups: groups}
    groups: {prefix: "company:"}
clients:
  - client_id: rpapp
    client_secret: `+rpSecret+`
    redirect_uris: ["`+rp.srv.URL+`/callback"]
    grant_types: [authorization_code]
    scopes: [openid, profile, email, groups]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--addr", idpAddr, "--data", t.TempDir(), "--config", config,
		"--redirect-hosts", listen, "--trusted-proxies", "127.0.0.1"}, proctest.FastArgon...)
	idp := proctest.Start(t, idpBin, args)
	app := newApp(t)
	proxy := startNginx(t, listen, idp.Addr, strings.TrimPrefix(app.srv.URL, "http://"))

	br := proctest.NewBrowser(t, 90*time.Second)
	br.Context = func() string { return "the IdP's log:\n" + idp.Log() + "\noidc-provider's log:\n" + up.Log() }
	step, value := br.Step, br.Value
	page := proxy + "/projects/7"
	step("open the app", chromedp.Navigate(page), chromedp.WaitVisible(`#upstream-upstream`))
	if text := value(chromedp.Text(`#upstream-upstream`)); text != "Sign in with Upstream" {
		t.Fatalf("the button says %q", text)
	}
	step("sign in with Upstream", chromedp.Click(`#upstream-upstream`), chromedp.WaitVisible(`input[name=login]`))
	if u := value(chromedp.Location()); !strings.HasPrefix(u, up.Issuer+"/") {
		t.Fatalf("the upstream's login form is at %s", u)
	}
	step("sign in upstream",
		chromedp.SendKeys(`input[name=login]`, "zoe"),
		chromedp.SendKeys(`input[name=password]`, "anything-upstream"),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitReady(`input[name=prompt][value=consent]`),
	)
	step("allow upstream", chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#user`))
	if user, u := value(chromedp.Text(`#user`)), value(chromedp.Location()); user != "zoe" || u != page {
		t.Fatalf("after the upstream sign-in: at %s showing %q; want %s showing zoe", u, user, page)
	}
	reqs := app.requests()
	last := reqs[len(reqs)-1]
	if last.Get("Remote-User") != "zoe" || !strings.Contains(last.Get("Remote-Groups"), "company:devs") || !strings.Contains(last.Get("Remote-Groups"), "company:ops") {
		t.Fatalf("the app got Remote-User %q, Remote-Groups %q", last.Get("Remote-User"), last.Get("Remote-Groups"))
	}

	step("open the relying party", chromedp.Navigate(rp.srv.URL+"/"), chromedp.WaitVisible(`#allow`))
	step("allow", chromedp.Click(`#allow`), chromedp.WaitVisible(`#idp`))
	if user, via, amr := value(chromedp.Text(`#user`)), value(chromedp.Text(`#idp`)), value(chromedp.Text(`#amr`)); user != "zoe" || via != "upstream" || !strings.Contains(amr, "fed") {
		t.Fatalf("the relying party's ID token: user %q, idp %q, amr %q", user, via, amr)
	}
	if strings.Contains(idp.Log(), up.ClientSecret) {
		t.Fatal("the upstream's client secret reached the log")
	}
}

// idTokenApp is a relying party of the IdP (go-oidc and x/oauth2): / starts the code flow with
// PKCE and a nonce, /callback verifies the ID token and shows its preferred_username, idp and amr.
type idTokenApp struct {
	srv     *httptest.Server
	issuer  string
	secret  string
	mu      sync.Mutex
	pending map[string][2]string
}

func newIDTokenApp(t *testing.T, secret string) *idTokenApp {
	a := &idTokenApp{secret: secret, pending: map[string][2]string{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *idTokenApp) serve(w http.ResponseWriter, r *http.Request) {
	provider, err := oidc.NewProvider(r.Context(), a.issuer)
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	cfg := oauth2.Config{ClientID: "rpapp", ClientSecret: a.secret, Endpoint: provider.Endpoint(),
		RedirectURL: a.srv.URL + "/callback", Scopes: []string{oidc.ScopeOpenID, "profile", "groups"}}
	switch r.URL.Path {
	case "/":
		state, nonce, verifier := strconv.FormatInt(time.Now().UnixNano(), 36), oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()
		a.mu.Lock()
		a.pending[state] = [2]string{verifier, nonce}
		a.mu.Unlock()
		http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
	case "/callback":
		a.mu.Lock()
		p, ok := a.pending[r.URL.Query().Get("state")]
		a.mu.Unlock()
		if !ok {
			http.Error(w, "unknown state", 400)
			return
		}
		tok, err := cfg.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(p[0]))
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), 502)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		proctest.Secret(tok.AccessToken, raw)
		idt, err := provider.Verifier(&oidc.Config{ClientID: "rpapp"}).Verify(r.Context(), raw)
		if err != nil || idt.Nonce != p[1] {
			http.Error(w, fmt.Sprintf("ID token: %v", err), 502)
			return
		}
		var c struct {
			Name string   `json:"preferred_username"`
			IDP  string   `json:"idp"`
			AMR  []string `json:"amr"`
		}
		idt.Claims(&c)
		fmt.Fprintf(w, `<!doctype html><title>RP</title><p id="user">%s</p><p id="idp">%s</p><p id="amr">%s</p>`,
			html.EscapeString(c.Name), html.EscapeString(c.IDP), html.EscapeString(strings.Join(c.AMR, " ")))
	default:
		http.NotFound(w, r)
	}
}
