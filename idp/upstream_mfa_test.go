package main

import (
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// TestUpstreamSecondFactor: our TOTP on top of an upstream sign-in. kim, linked once to her
// oidc-provider identity and with an authenticator app enrolled here, comes back from the
// upstream to the one-time code page, not into a session; a wrong code signs nobody in; the
// right one finishes the app's authorization request, and the ID token the app gets (go-oidc,
// code flow with PKCE) says amr fed, otp, mfa and idp company, as does its access token. A
// connector with second_factor: required refuses a user without TOTP with a 403 page that
// says why, and no session.
func TestUpstreamSecondFactor(t *testing.T) {
	idpAddr := "127.0.0.1:" + strconv.Itoa(proctest.FreePort(t))
	up := proctest.StartOIDCProvider(t, "testdata/oidc-provider", proctest.FreePort(t), "http://"+idpAddr+"/login/upstream/company/callback")
	strict := proctest.StartOIDCProvider(t, "testdata/oidc-provider", proctest.FreePort(t), "http://"+idpAddr+"/login/upstream/strict/callback")
	dir := t.TempDir()
	upSecret, strictSecret := filepath.Join(dir, "company.secret"), filepath.Join(dir, "strict.secret")
	writeFile(t, upSecret, up.ClientSecret+"\n")
	writeFile(t, strictSecret, strict.ClientSecret+"\n")
	conf := filepath.Join(dir, "idp.yaml")
	connector := func(id, name, issuer, secretFile, extra string) string {
		return "  - id: " + id + "\n    type: oidc\n    name: " + name + "\n    issuer: " + issuer + "\n    client_id: jwtidp\n" +
			"    client_secret_file: " + secretFile + "\n    scopes: [openid, profile, email, groups]\n" + extra
	}
	writeFile(t, conf, "connectors:\n"+
		connector("company", "Company", up.Issuer, upSecret, "    link: existing\n    second_factor: optional\n")+
		connector("strict", "Strict", strict.Issuer, strictSecret, "    link: existing\n    second_factor: required\n"))
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--addr", idpAddr, "--config", conf, "--clients", oidcClients(t), "--rate-limit", "0")
	const pw = "correct-horse-9"
	signup(t, p.URL, "kim", pw)

	hasSession := func(c *http.Client) bool {
		for _, ck := range c.Jar.Cookies(mustURL(p.URL)) {
			if ck.Name == "jwtidp_session" {
				return true
			}
		}
		return false
	}

	// Link kim's upstream identity once, before she has TOTP (the link form, as
	// TestUpstreamLinkExisting does it).
	linker := newRP(t, p.URL, "spa", "", spaCallback)
	lp := linker.read(up.SignIn(t, linker.browser, p.URL+"/login/upstream/company?rd=/done", "kim-upstream"))
	if !strings.Contains(lp.body, "Link your account") {
		t.Fatalf("the first upstream sign-in: %d at %s:\n%s", lp.status, lp.url, lp.body)
	}
	req, _ := http.NewRequest("POST", p.URL+"/login/upstream/link", strings.NewReader(linkForm(t, lp.body, "kim", pw).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.URL)
	if resp, err := linker.browser.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.Request.URL.Path != "/done" || !hasSession(linker.browser) {
		t.Fatalf("linking kim: %d at %s", resp.StatusCode, resp.Request.URL)
	}

	// kim enrols TOTP through the API, with her local password.
	tok := login(t, p.URL, "kim", pw)["access_token"].(string)
	a := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"`+pw+`"}`)
	if a.status != 200 {
		t.Fatalf("enrol: %d %s", a.status, a.body)
	}
	secret := a.json(t)["secret"].(string)
	proctest.Secret(secret)
	code := func() string {
		c, err := totp.GenerateCode(secret, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code()+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	clk.Advance(30 * time.Second) // the confirming code is spent

	// The app sends a fresh browser to us; it picks "Sign in with Company".
	app := newRP(t, p.URL, "spa", "", spaCallback, oidc.ScopeOpenID, "profile")
	verifier := oauth2.GenerateVerifier()
	loginPage := app.get(app.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nn")))
	m := regexp.MustCompile(`href="(login/upstream/company\?[^"]*)"`).FindStringSubmatch(loginPage.body)
	if m == nil {
		t.Fatalf("no upstream button on the login page: %d at %s\n%s", loginPage.status, loginPage.url, loginPage.body)
	}
	start, _ := loginPage.url.Parse(html.UnescapeString(m[1]))
	otpPage := app.read(up.SignIn(t, app.browser, start.String(), "kim-upstream"))
	if otpPage.status != 200 || !strings.Contains(otpPage.body, `name="otp"`) || hasSession(app.browser) {
		t.Fatalf("back from the upstream: %d at %s, session %v, want the one-time code page:\n%s", otpPage.status, otpPage.url, hasSession(app.browser), otpPage.body)
	}
	wrong := app.submit(otpPage, "otp", "000000")
	if wrong.status != 401 || !strings.Contains(wrong.body, `name="otp"`) || hasSession(app.browser) || strings.HasPrefix(wrong.url.String(), spaCallback) {
		t.Fatalf("a wrong code: %d at %s, session %v:\n%s", wrong.status, wrong.url, hasSession(app.browser), wrong.body)
	}
	done := app.submit(wrong, "otp", code())
	if !hasSession(app.browser) {
		t.Fatalf("the right code made no session: %d at %s:\n%s", done.status, done.url, done.body)
	}
	at, idt := app.exchange(app.callback(done, "st"), verifier, "nn")
	var claims struct {
		AMR               []string `json:"amr"`
		IDP               string   `json:"idp"`
		PreferredUsername string   `json:"preferred_username"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(claims.AMR, []string{"fed", "otp", "mfa"}) || claims.IDP != "company" || claims.PreferredUsername != "kim" {
		t.Errorf("the ID token: amr %v, idp %q, preferred_username %q; want [fed otp mfa], company, kim", claims.AMR, claims.IDP, claims.PreferredUsername)
	}
	if c := payload(t, at.AccessToken); !slices.Equal(toStrings(c["amr"]), []string{"fed", "otp", "mfa"}) {
		t.Errorf("the access token's amr = %v, want [fed otp mfa]", c["amr"])
	}

	// second_factor: required, and lee has no TOTP here: linking her account ends in a 403 page
	// saying so, and no session.
	signup(t, p.URL, "lee", pw)
	jar, _ := cookiejar.New(nil)
	lee := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	lp = (&rp{t: t}).read(strict.SignIn(t, lee, p.URL+"/login/upstream/strict?rd=/done", "lee-upstream"))
	if !strings.Contains(lp.body, "Link your account") {
		t.Fatalf("lee's first upstream sign-in: %d at %s:\n%s", lp.status, lp.url, lp.body)
	}
	req, _ = http.NewRequest("POST", p.URL+"/login/upstream/link", strings.NewReader(linkForm(t, lp.body, "lee", pw).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.URL)
	resp, err := lee.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	refused := (&rp{t: t}).read(resp)
	if refused.status != 403 || !strings.Contains(refused.body, "second factor") || hasSession(lee) || refused.url.Path != "/login/upstream/link" {
		t.Errorf("a user without TOTP through a connector that requires it: %d at %s, session %v:\n%s", refused.status, refused.url, hasSession(lee), refused.body)
	}
	for _, s := range []string{secret, up.ClientSecret, strict.ClientSecret} {
		if strings.Contains(p.Log(), s) {
			t.Errorf("a secret reached the IdP's log")
		}
	}
}

// linkForm is the link form's fields from its page, with the local account's credentials.
func linkForm(t *testing.T, body, username, password string) url.Values {
	t.Helper()
	field := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("the link form has no %s", name)
		}
		return html.UnescapeString(m[1])
	}
	return url.Values{"csrf": {field("csrf")}, "rd": {field("rd")}, "ticket": {field("ticket")}, "connector": {field("connector")},
		"username": {username}, "password": {password}}
}
