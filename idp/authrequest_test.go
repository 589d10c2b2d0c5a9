package main

import (
	"html"
	"net/url"
	"regexp"
	"slices"
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

// formField is the value of the page's hidden field name.
func formField(t *testing.T, pg page, name string) string {
	t.Helper()
	for _, h := range hiddenField.FindAllStringSubmatch(pg.body, -1) {
		if html.UnescapeString(h[1]) == name {
			return html.UnescapeString(h[2])
		}
	}
	t.Fatalf("no field %s on %s (%d): %s", name, pg.url, pg.status, pg.body)
	return ""
}

// hiddenFields are the names of the page's hidden fields.
func hiddenFields(pg page) []string {
	var out []string
	for _, h := range hiddenField.FindAllStringSubmatch(pg.body, -1) {
		out = append(out, h[1])
	}
	slices.Sort(out)
	return out
}

// The authorization request is kept by the IdP: the login page and the consent page, and the
// URLs that lead to them, carry its id and nothing of the request — no client_id, redirect URI,
// state, nonce or PKCE challenge — and the flow still ends at the client with its state.
func TestPagesCarryOnlyTheRequestID(t *testing.T) {
	p := startOIDC(t)
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	v := oauth2.GenerateVerifier()
	q := webQuery(v, "state", "st4te-q7Zk", "nonce", "n0nce-w3Xy", "scope", "openid profile")
	request := []string{"client_id", "redirect_uri", "code_challenge", "state=", "nonce=", `name="state"`, "webapp",
		"127.0.0.1:9/callback", "127.0.0.1%3A9%2Fcallback", "st4te-q7Zk", "n0nce-w3Xy", q.Get("code_challenge")}
	carriesNothing := func(what string, pg page) {
		t.Helper()
		for _, s := range request {
			if strings.Contains(pg.body, s) || strings.Contains(pg.url.RawQuery, s) {
				t.Errorf("%s (%s) carries %q:\n%s", what, pg.url, s, pg.body)
			}
		}
	}
	pg := r.get(authorizeURL(p.URL, q))
	rd, err := url.Parse(pg.url.Query().Get("rd"))
	if pg.url.Path != "/login" || err != nil || rd.Path != "/authorize/continue" || len(rd.Query()) != 1 || len(rd.Query().Get("id")) < 43 {
		t.Fatalf("the login page at %s: rd %q", pg.url, pg.url.Query().Get("rd"))
	}
	if len(pg.url.Query()) != 1 {
		t.Errorf("the login page's URL has %v", pg.url.Query())
	}
	carriesNothing("the login page", pg)
	pg = r.signIn(pg, "alice", "correct-horse-9")
	if pg.url.Path != "/authorize/continue" || !strings.Contains(pg.body, `id="allow"`) {
		t.Fatalf("after signing in: %d at %s: %s", pg.status, pg.url, pg.body)
	}
	carriesNothing("the consent page", pg)
	if got := hiddenFields(pg); !slices.Equal(got, []string{"csrf", "id"}) || formField(t, pg, "id") != rd.Query().Get("id") {
		t.Fatalf("the consent form's fields: %v", got)
	}
	if !strings.Contains(pg.body, "See your username") || !strings.Contains(pg.body, "Sign you in with your account") {
		t.Errorf("the consent page describes the scopes: %s", pg.body)
	}
	code := r.callback(r.submit(pg, "decision", "allow"), "st4te-q7Zk")
	if a := tokenCall(t, p.URL, codeForm(code, v), "webapp", webSecret); a.status != 200 {
		t.Fatalf("the code: %d %s", a.status, a.body)
	} else {
		proctest.Secret(a.json(t)["access_token"].(string), a.json(t)["id_token"].(string))
	}
	// The request was answered: its id does not continue again.
	if again := r.get(p.URL + rd.String()); again.status != 400 || !strings.Contains(again.body, "Sign-in request expired") {
		t.Errorf("the answered request's id again: %d %s %s", again.status, again.url, again.body)
	}
	// A request too large to keep is refused, to the client, rather than stored.
	anon := newRP(t, p.URL, "webapp", webSecret, webCallback)
	long := strings.Repeat("s", 5000)
	if pg := anon.get(authorizeURL(p.URL, webQuery(v, "state", long))); !strings.HasPrefix(pg.url.String(), webCallback) ||
		pg.url.Query().Get("error") != "invalid_request" || pg.url.Query().Get("state") != long {
		t.Errorf("a request too large to keep: %d at %.200s", pg.status, pg.url)
	}
	// The first-party scopes are described as the program names them; an unknown one by name.
	pg = r.get(authorizeURL(p.URL, webQuery(v, "scope", "openid workitems:read")))
	if !strings.Contains(pg.body, "Read your work items") {
		t.Errorf("the consent page for workitems:read: %s", pg.body)
	}
}

// A stored request lives 30 minutes: a browser back from the login page, or a consent posted,
// after that gets a 400 page saying to start again from the application — never a redirect.
func TestExpiredAuthRequest(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", oidcClients(t), "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	v := oauth2.GenerateVerifier()
	expired := func(what string, pg page) {
		t.Helper()
		if pg.status != 400 || pg.url.Host != strings.TrimPrefix(p.URL, "http://") || !strings.Contains(pg.body, "Sign-in request expired") ||
			!strings.Contains(pg.body, "Go back to the application") {
			t.Fatalf("%s: %d at %s: %s", what, pg.status, pg.url, pg.body)
		}
	}
	login := r.get(authorizeURL(p.URL, webQuery(v)))
	clk.Advance(31 * time.Minute)
	expired("signing in 31 minutes later", r.signIn(login, "alice", "correct-horse-9"))

	// Signed in now: the consent page, answered 31 minutes later.
	consent := r.get(authorizeURL(p.URL, webQuery(v)))
	if !strings.Contains(consent.body, `id="allow"`) {
		t.Fatalf("no consent page: %s", consent.body)
	}
	clk.Advance(29 * time.Minute)
	fresh := r.get(authorizeURL(p.URL, webQuery(v, "state", "fresh")))
	clk.Advance(2 * time.Minute)
	expired("a consent posted 31 minutes later", r.submit(consent, "decision", "allow"))
	// A request two minutes old still goes on.
	r.callback(r.submit(fresh, "decision", "allow"), "fresh")
	// An id that was never made, or none at all, is the same page.
	expired("an unknown id", r.get(p.URL+"/authorize/continue?id=bm90LWEtcmVxdWVzdC1pZC1hdC1hbGwtMDEyMzQ1Njc4OQ"))
	expired("no id", r.get(p.URL+"/authorize/continue"))
}

// The consent form's answer is bound to its request and to the session: another request's id
// with this page's token, this id with another page's token, a token from another session —
// each is a 403 page that changes nothing, and the right pair then gets the code, once.
func TestConsentBoundToItsRequest(t *testing.T) {
	p := startOIDC(t, "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	signup(t, p.URL, "bob", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	bob := newRP(t, p.URL, "webapp", webSecret, webCallback)
	v := oauth2.GenerateVerifier()
	first := r.signIn(r.get(authorizeURL(p.URL, webQuery(v, "state", "one"))), "alice", "correct-horse-9")
	second := r.get(authorizeURL(p.URL, webQuery(v, "state", "two")))
	bobs := bob.signIn(bob.get(authorizeURL(p.URL, webQuery(v, "state", "bob"))), "bob", "correct-horse-9")
	id1, id2 := formField(t, first, "id"), formField(t, second, "id")
	if id1 == id2 || formField(t, first, "csrf") == formField(t, second, "csrf") {
		t.Fatalf("two requests, one id or one token: %s %s", id1, id2)
	}
	post := func(from *rp, id, csrf string) page {
		t.Helper()
		resp, err := from.browser.PostForm(p.URL+"/authorize/continue", url.Values{"id": {id}, "csrf": {csrf}, "decision": {"allow"}})
		if err != nil {
			t.Fatal(err)
		}
		return from.read(resp)
	}
	for name, pg := range map[string]page{
		"another request's id":           post(r, id2, formField(t, first, "csrf")),
		"a token for another request":    post(r, id1, formField(t, second, "csrf")),
		"an id no request has":           post(r, "bm90LWEtcmVxdWVzdA", formField(t, first, "csrf")),
		"another session's id and token": post(r, formField(t, bobs, "id"), formField(t, bobs, "csrf")),
		"this session's token elsewhere": post(bob, id1, formField(t, first, "csrf")),
	} {
		if pg.status != 403 || strings.HasPrefix(pg.url.String(), webCallback) {
			t.Errorf("%s: %d at %s", name, pg.status, pg.url)
		}
	}
	// Nothing was allowed: alice's prompt=none still needs consent.
	if pg := r.get(authorizeURL(p.URL, webQuery(v, "prompt", "none"))); pg.url.Query().Get("error") != "consent_required" {
		t.Fatalf("after the refused posts, prompt=none: %s", pg.url)
	}
	r.callback(post(r, id2, formField(t, second, "csrf")), "two")
	// Answered once: the same post again, and the first page (whose request is now covered by
	// the remembered consent but was never answered) each answer once.
	if pg := post(r, id2, formField(t, second, "csrf")); pg.status != 400 {
		t.Errorf("the same consent posted again: %d at %s", pg.status, pg.url)
	}
	r.callback(post(r, id1, formField(t, first, "csrf")), "one")
	bob.callback(post(bob, formField(t, bobs, "id"), formField(t, bobs, "csrf")), "bob")
}

// acr_values (OpenID Connect Core §3.1.2.1): a user with TOTP signed in with the password
// alone (the session from before they set TOTP up) who is asked for mfa is sent to sign in
// again — the login page with their name — gives the password and the code, and the ID token
// says acr mfa; a user without a second factor is not asked, and gets acr sfa; without
// acr_values the ID token says what the sign-in achieved. Discovery lists both values.
func TestACRValuesEndToEnd(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", oidcClients(t), "--rate-limit", "0")
	if d := do(t, "GET", p.URL+"/.well-known/openid-configuration", "", nil).json(t); !slices.Equal(toStrings(d["acr_values_supported"]), []string{"mfa", "sfa"}) ||
		!slices.Contains(toStrings(d["claims_supported"]), "acr") {
		t.Fatalf("discovery: acr_values_supported %v, claims_supported %v", d["acr_values_supported"], d["claims_supported"])
	}
	signup(t, p.URL, "hanna", "correct-horse-9")
	signup(t, p.URL, "ivan", "correct-horse-9")

	// Hanna signs in with her password, then sets TOTP up on the account page: her session
	// stays, single-factor.
	r := newRP(t, p.URL, "spa", "", spaCallback, oidc.ScopeOpenID)
	pg := r.submit(r.signIn(r.get(p.URL+"/account/passkeys"), "hanna", "correct-horse-9"))
	m := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(pg.body)
	if m == nil {
		t.Fatalf("no TOTP key: %s", pg.body)
	}
	proctest.Secret(m[1])
	code := func() string {
		c, _ := totp.GenerateCode(m[1], clk.Now())
		return c
	}
	if pg = r.submit(pg, "code", code()); !strings.Contains(pg.body, `id="totp-on"`) {
		t.Fatalf("TOTP not on: %s", pg.body)
	}
	clk.Advance(30 * time.Second) // the next code

	// claims runs the exchange: the ID token's acr and amr.
	claims := func(r *rp, pg page, state, verifier string) (c struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}) {
		t.Helper()
		_, idt := r.exchange(r.callback(pg, state), verifier, "n")
		idt.Claims(&c)
		return c
	}
	authorize := func(r *rp, state, verifier string, opts ...oauth2.AuthCodeOption) page {
		return r.get(r.cfg.AuthCodeURL(state, append(opts, oauth2.S256ChallengeOption(verifier), oidc.Nonce("n"))...))
	}
	v := oauth2.GenerateVerifier()
	if c := claims(r, authorize(r, "plain", v), "plain", v); c.ACR != "sfa" || !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Fatalf("without acr_values: acr %q amr %v, want sfa and pwd", c.ACR, c.AMR)
	}
	v = oauth2.GenerateVerifier()
	pg = authorize(r, "mfa", v, oauth2.SetAuthURLParam("acr_values", "mfa"))
	if pg.url.Path != "/login" || pg.url.Query().Get("login_hint") != "hanna" || !strings.Contains(pg.body, `value="hanna"`) {
		t.Fatalf("acr_values=mfa from a password session: %d at %s", pg.status, pg.url)
	}
	if pg = r.signIn(pg, "hanna", "correct-horse-9"); !strings.Contains(pg.body, `name="otp"`) {
		t.Fatalf("after the password: %s", pg.body)
	}
	if c := claims(r, r.submit(pg, "otp", code()), "mfa", v); c.ACR != "mfa" || !slices.Contains(c.AMR, "mfa") {
		t.Fatalf("after the code: acr %q amr %v, want mfa", c.ACR, c.AMR)
	}
	// Signed in with both now: asked again, nothing to do.
	v = oauth2.GenerateVerifier()
	if c := claims(r, authorize(r, "again", v, oauth2.SetAuthURLParam("acr_values", "mfa")), "again", v); c.ACR != "mfa" {
		t.Fatalf("mfa asked of an mfa session: acr %q", c.ACR)
	}

	// Ivan has no second factor: asked for mfa, he is not sent anywhere, and gets sfa.
	ivan := newRP(t, p.URL, "spa", "", spaCallback, oidc.ScopeOpenID)
	ivan.signIn(ivan.get(p.URL+"/login"), "ivan", "correct-horse-9")
	v = oauth2.GenerateVerifier()
	if c := claims(ivan, authorize(ivan, "ivan", v, oauth2.SetAuthURLParam("acr_values", "mfa")), "ivan", v); c.ACR != "sfa" {
		t.Fatalf("a user without a second factor asked for mfa: acr %q", c.ACR)
	}
}

// Storing a request is open to anyone, so it is limited per client as the login is: past the
// burst a 429 page (never a redirect); requests that store nothing — signed in, nothing to ask —
// are not counted.
func TestStoringAuthRequestsIsRateLimited(t *testing.T) {
	clk := clock.NewFake(time.Now())
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", oidcClients(t), "--rate-limit", "1", "--rate-burst", "3")
	anon := newRP(t, p.URL, "webapp", webSecret, webCallback)
	v := oauth2.GenerateVerifier()
	for i := range 3 {
		if pg := anon.get(authorizeURL(p.URL, webQuery(v))); pg.url.Path != "/login" {
			t.Fatalf("request %d: %d at %s", i, pg.status, pg.url)
		}
	}
	pg := anon.get(authorizeURL(p.URL, webQuery(v)))
	if pg.status != 429 || pg.url.Path != "/authorize" || !strings.Contains(pg.body, "Too many requests") {
		t.Fatalf("past the burst: %d at %s: %s", pg.status, pg.url, pg.body)
	}
	clk.Advance(10 * time.Second)
	signup(t, p.URL, "alice", "correct-horse-9")
	spa := newRP(t, p.URL, "spa", "", spaCallback, oidc.ScopeOpenID)
	spa.signIn(spa.get(p.URL+"/login"), "alice", "correct-horse-9")
	for range 6 {
		v := oauth2.GenerateVerifier()
		spa.exchange(spa.callback(spa.get(spa.cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oidc.Nonce("n"))), "s"), v, "n")
	}
}
