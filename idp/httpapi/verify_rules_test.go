package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/shared/clock"
	"jwtidp/shared/web"
)

// edgeRules: a public app with an admin path for bob with two factors (everyone else refused
// there), an app for alice only, a network-limited wildcard, and nothing else.
var edgeRules = access.Config{
	DefaultPolicy: access.Deny,
	Rules: []access.Rule{
		{Domain: []string{"public.test"}, Resources: []string{"^/admin([/?].*)?$"}, Subject: []string{"user:bob"}, Policy: access.TwoFactor},
		{Domain: []string{"public.test"}, Resources: []string{"^/admin([/?].*)?$"}, Policy: access.Deny},
		{Domain: []string{"public.test"}, Policy: access.Bypass},
		{Domain: []string{"alice.test"}, Subject: []string{"user:alice"}, Methods: []string{"GET"}, Policy: access.OneFactor},
		{Domain: []string{"*.net.test"}, Networks: []string{"10.0.0.0/8"}, Policy: access.OneFactor},
	},
}

// edgeIdP is the IdP with rules (nil: none) behind a proxy at 127.0.0.1 (trusted) on clock
// now, allowed to send a login back to the test hosts; deps is what it was made with.
func edgeIdP(t *testing.T, now func() time.Time, rules *access.Config) (srv *httptest.Server, deps *Deps) {
	t.Helper()
	return edgeIdPWith(t, now, rules, nil)
}

// edgeIdPWith is edgeIdP with edit (nil: none) applied to its dependencies last.
func edgeIdPWith(t *testing.T, now func() time.Time, rules *access.Config, edit func(*Deps)) (srv *httptest.Server, deps *Deps) {
	t.Helper()
	var policy *access.Policy
	if rules != nil {
		var probs []access.Problem
		if policy, probs = access.Compile(*rules); probs != nil {
			t.Fatal(probs)
		}
	}
	deps = &Deps{}
	h := newIdPAt(t, now, func(d *Deps) {
		d.Access = func() *access.Policy { return policy }
		d.RemoteAddrs = web.ClientAddrs{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		d.Redirects.Hosts = []string{"public.test", "alice.test", ".net.test"}
		d.Sessions.Users = d.Sessions.Store.(auth.UserReader) // bearer tokens pass at the edge
		if edit != nil {
			edit(d)
		}
		*deps = *d
	})
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, deps
}

func signUp(t *testing.T, base, user string) {
	t.Helper()
	resp, err := http.Post(base+"/signup", "application/json", strings.NewReader(`{"username":"`+user+`","password":"correct-horse-9"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("signup %s: %v %v", user, resp, err)
	}
	resp.Body.Close()
}

// verifyAs asks /verify as the proxy does for the original request (method, URL), with
// headers (name, value pairs) added.
func (b *pageBrowser) verifyAs(method, original string, hdr ...string) pageAnswer {
	b.t.Helper()
	return b.verifyAt("/verify", method, original, hdr...)
}

// verifyAt is verifyAs at path: /verify with a query (?redirect=1, as Traefik and Caddy ask).
func (b *pageBrowser) verifyAt(path, method, original string, hdr ...string) pageAnswer {
	b.t.Helper()
	u, err := url.Parse(original)
	if err != nil {
		b.t.Fatal(err)
	}
	h := []string{"X-Forwarded-Proto", u.Scheme, "X-Forwarded-Host", u.Host, "X-Forwarded-Uri", u.RequestURI(), "X-Forwarded-Method", method}
	return b.do("GET", path, nil, append(h, hdr...)...)
}

func TestVerifyAppliesAccessRules(t *testing.T) {
	srv, _ := edgeIdP(t, time.Now, &edgeRules)
	signUp(t, srv.URL, "alice")
	signUp(t, srv.URL, "bob")
	anon := newPageBrowser(t, srv, "anon")
	alice := newPageBrowser(t, srv, "alice")
	alice.signIn("alice", "correct-horse-9")
	bob := newPageBrowser(t, srv, "bob")
	bob.signIn("bob", "correct-horse-9")

	login := func(orig string) string { return "/login?rd=" + url.QueryEscape(orig) }
	stepUp := func(orig string) string { return "/login/stepup?rd=" + url.QueryEscape(orig) }
	for _, tt := range []struct {
		name     string
		b        *pageBrowser
		method   string
		original string
		hdr      []string
		status   int
		user     string // Remote-User
		redirect string // X-Auth-Redirect
	}{
		{"bypass, anonymous: no user headers", anon, "GET", "http://public.test/", nil, 200, "", ""},
		{"bypass, signed in: the user", alice, "POST", "http://public.test/x", nil, 200, "alice", ""},
		{"admin, anonymous: sign in first", anon, "GET", "http://public.test/admin", nil, 401, "", login("http://public.test/admin")},
		{"admin, not named: refused", alice, "GET", "http://public.test/admin/", nil, 403, "", login("http://public.test/admin/")},
		{"admin, named with one factor: step up", bob, "GET", "http://public.test/admin?x=1", nil, 401, "", stepUp("http://public.test/admin?x=1")},
		{"admin spelled otherwise: still the admin path", alice, "GET", "http://public.test/a/../%61dmin", nil, 403, "", login("http://public.test/a/../%61dmin")},
		{"X-Original-URI", bob, "GET", "http://public.test/", []string{"X-Forwarded-Uri", "", "X-Original-URI", "/admin"}, 401, "", stepUp("http://public.test/admin")},
		{"a named user's app", alice, "GET", "http://alice.test/", nil, 200, "alice", ""},
		{"another user: default deny", bob, "GET", "http://alice.test/", nil, 403, "", login("http://alice.test/")},
		{"a method not listed", alice, "DELETE", "http://alice.test/", nil, 403, "", login("http://alice.test/")},
		{"X-Original-Method", alice, "", "http://alice.test/", []string{"X-Forwarded-Method", "", "X-Original-Method", "PUT"}, 403, "", login("http://alice.test/")},
		{"inside the network", alice, "GET", "http://a.net.test/", []string{"X-Forwarded-For", "10.9.8.7"}, 200, "alice", ""},
		{"outside the network", alice, "GET", "http://a.net.test/", []string{"X-Forwarded-For", "192.0.2.7"}, 403, "", login("http://a.net.test/")},
		{"no host from the proxy: refused", alice, "GET", "http://public.test/", []string{"X-Forwarded-Host", ""}, 403, "", login("/")},
		{"no method from the proxy: refused, not taken as GET", alice, "", "http://alice.test/", nil, 403, "", login("http://alice.test/")},
		{"the client's X-Forwarded-Uri beside the proxy's X-Original-URI: refused", alice, "GET", "http://public.test/",
			[]string{"X-Original-URI", "/admin"}, 403, "", login("http://public.test/")},
		{"an unreadable URI: refused", anon, "GET", "http://public.test/", []string{"X-Forwarded-Uri", "/%zz"}, 403, "", login("http://public.test/%zz")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.t = t
			a := tt.b.verifyAs(tt.method, tt.original, tt.hdr...)
			if a.status != tt.status || a.header.Get("Remote-User") != tt.user || a.header.Get("X-Auth-Redirect") != tt.redirect || a.body != "" {
				t.Errorf("got %d, user %q, redirect %q, body %q; want %d, %q, %q", a.status, a.header.Get("Remote-User"),
					a.header.Get("X-Auth-Redirect"), a.body, tt.status, tt.user, tt.redirect)
			}
			if tt.user == "" && a.header.Get("X-Auth-Subject") != "" {
				t.Errorf("X-Auth-Subject %q without a user", a.header.Get("X-Auth-Subject"))
			}
		})
	}

	// Traefik's and Caddy's ?redirect=1: a browser is sent straight on, to the step-up or to
	// the login page, which says "not allowed".
	redirect := func(b *pageBrowser, orig string) string {
		u, _ := url.Parse(orig)
		a := b.do("GET", "/verify?redirect=1", nil, "X-Forwarded-Proto", "http", "X-Forwarded-Host", u.Host, "X-Forwarded-Uri", u.RequestURI(), "X-Forwarded-Method", "GET")
		if a.status != 302 {
			t.Errorf("redirect=1 for %s: %d", orig, a.status)
		}
		return a.header.Get("Location")
	}
	if got := redirect(bob, "http://public.test/admin"); got != stepUp("http://public.test/admin") {
		t.Errorf("bob sent to %q", got)
	}
	if got := redirect(alice, "http://public.test/admin"); got != login("http://public.test/admin") {
		t.Errorf("alice sent to %q", got)
	}

	// A bearer token with one factor: RFC 9470's answer, no redirect to follow.
	tok := bearerToken(t, srv.URL, "bob")
	a := anon.verifyAs("GET", "http://public.test/admin", "Authorization", "Bearer "+tok)
	if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
		t.Errorf("bob's bearer token on the admin path: %d %q", a.status, a.header.Get("WWW-Authenticate"))
	}
	if a := anon.verifyAs("GET", "http://public.test/", "Authorization", "Bearer "+tok); a.status != 200 || a.header.Get("Remote-User") != "bob" {
		t.Errorf("bob's bearer token on a bypass path: %d %q", a.status, a.header.Get("Remote-User"))
	}
}

// bearerToken signs user in at /auth (more: further JSON members) and returns the access token.
func bearerToken(t *testing.T, base, user string, more ...string) string {
	t.Helper()
	resp, err := http.Post(base+"/auth", "application/json", strings.NewReader(`{"username":"`+user+`","password":"correct-horse-9"`+strings.Join(more, "")+`}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("/auth as %s: %d %v", user, resp.StatusCode, err)
	}
	return body.AccessToken
}

// Only a trusted proxy is believed: with rules, anyone else is refused — even under a default
// one_factor, which judging /verify's own request (to the IdP's host, named by no rule) let
// every signed-in user through. Without rules, /verify is what it always was.
func TestVerifyBelievesOnlyTrustedProxies(t *testing.T) {
	srv, deps := edgeIdP(t, time.Now, &edgeRules)
	signUp(t, srv.URL, "alice")
	alice := newPageBrowser(t, srv, "alice")
	alice.signIn("alice", "correct-horse-9")
	cookie := alice.c.Jar.Cookies(mustURL(t, srv.URL))[0]
	ask := func(peer string, d Deps) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/verify", nil)
		r.RemoteAddr = peer
		r.AddCookie(cookie)
		r.Header.Set("X-Forwarded-Host", "alice.test")
		r.Header.Set("X-Forwarded-Uri", "/")
		r.Header.Set("X-Forwarded-Method", "GET")
		w := httptest.NewRecorder()
		d.Registry = prometheus.NewRegistry()
		NewServer(d).ServeHTTP(w, r)
		return w
	}
	if w := ask("127.0.0.1:5000", *deps); w.Code != 200 {
		t.Errorf("from the trusted proxy: %d", w.Code)
	}
	if w := ask("192.0.2.1:5000", *deps); w.Code != 403 {
		t.Errorf("from elsewhere: %d, want 403", w.Code)
	}
	lenient, probs := access.Compile(access.Config{DefaultPolicy: access.OneFactor, Rules: []access.Rule{
		{Domain: []string{"alice.test"}, Policy: access.Deny},
	}})
	if probs != nil {
		t.Fatal(probs)
	}
	open := *deps
	open.Access = func() *access.Policy { return lenient }
	if w := ask("127.0.0.1:5000", open); w.Code != 403 {
		t.Errorf("a deny rule from the trusted proxy: %d", w.Code)
	}
	if w := ask("192.0.2.1:5000", open); w.Code != 403 || w.Header().Get("Remote-User") != "" {
		t.Errorf("a deny rule from elsewhere, under a default one_factor: %d %q, want 403", w.Code, w.Header().Get("Remote-User"))
	}
	none := *deps
	none.Access = func() *access.Policy { return nil }
	if w := ask("192.0.2.1:5000", none); w.Code != 200 || w.Header().Get("Remote-User") != "alice" {
		t.Errorf("without rules: %d %q", w.Code, w.Header().Get("Remote-User"))
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A browser a 403 sent to the login page sees "not allowed", decided from its session and the
// rules, not from the link: no session, a page the user may open, or an rd the login would not
// follow all get the login form.
func TestLoginSaysNotAllowed(t *testing.T) {
	srv, _ := edgeIdP(t, time.Now, &edgeRules)
	signUp(t, srv.URL, "alice")
	anon := newPageBrowser(t, srv, "anon")
	alice := newPageBrowser(t, srv, "alice")
	alice.signIn("alice", "correct-horse-9")
	for _, tt := range []struct {
		name   string
		b      *pageBrowser
		rd     string
		denied bool
	}{
		{"refused page, signed in", alice, "http://public.test/admin", true},
		{"refused page, not signed in", anon, "http://public.test/admin", false},
		{"a page the user may open", alice, "http://alice.test/", false},
		{"a host the login would not go to", alice, "http://evil.test/", false},
		{"no rd", alice, "", false},
		{"a path on the IdP", alice, "/admin", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.t = t
			a := tt.b.do("GET", "/login?rd="+url.QueryEscape(tt.rd), nil)
			denied := a.status == 403 && strings.Contains(a.body, `id="denied"`) && strings.Contains(a.body, "<strong>alice</strong>")
			form := a.status == 200 && strings.Contains(a.body, `name="password"`)
			if denied != tt.denied || denied == form {
				t.Errorf("%d, not allowed %v (want %v), login form %v", a.status, denied, tt.denied, form)
			}
		})
	}
}

// The step-up: bob, signed in with a password, reaches the admin path only after adding a
// code; before he has a second factor he is told to set one up; a wrong code or a stale form
// changes nothing; the right one makes a session with two factors and ends the first.
func TestStepUpWithTOTP(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	srv, deps := edgeIdP(t, clk.Now, &edgeRules)
	signUp(t, srv.URL, "bob")
	bob := newPageBrowser(t, srv, "bob")
	bob.signIn("bob", "correct-horse-9")
	const admin = "http://public.test/admin"
	a := bob.verifyAs("GET", admin)
	if a.status != 401 {
		t.Fatalf("before the step-up: %d", a.status)
	}
	to := a.header.Get("X-Auth-Redirect")
	if a = bob.do("GET", to, nil); a.status != 200 || !strings.Contains(a.body, `id="setup"`) || !strings.Contains(a.body, `href="`+deps.Issuer+`/account/passkeys"`) {
		t.Fatalf("no second factor yet: %d %s", a.status, a.body)
	}

	// bob turns TOTP on, keeping this session (one factor).
	ctx := context.Background()
	first := bob.c.Jar.Cookies(mustURL(t, srv.URL))
	s, err := deps.Sessions.Resolve(ctx, cookieValue(first, "jwtidp_session"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := deps.Auth.Account.EnrollTOTP(ctx, s.UserID, auth.Reauth{AuthTime: s.AuthTime})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(e.Secret, clk.Now())
	if _, err := deps.Auth.Account.ConfirmTOTP(ctx, s.UserID, code, s.SessionID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)

	a = bob.do("GET", to, nil)
	m := csrfInPage.FindStringSubmatch(a.body)
	if a.status != 200 || m == nil {
		t.Fatalf("the code's form: %d %s", a.status, a.body)
	}
	post := func(csrf, otp string) pageAnswer {
		return bob.do("POST", "/login/stepup", url.Values{"csrf": {csrf}, "otp": {otp}, "rd": {admin}})
	}
	if a = post("forged", code); a.status != 403 {
		t.Errorf("a forged form: %d", a.status)
	}
	if a = post(m[1], "12345"); a.status != 401 || !strings.Contains(a.body, "That code is not valid") {
		t.Errorf("a wrong code: %d", a.status)
	}
	if a = bob.verifyAs("GET", admin); a.status != 401 {
		t.Fatalf("after refused codes: %d", a.status)
	}
	code, _ = totp.GenerateCode(e.Secret, clk.Now())
	if a = post(m[1], code); a.status != 303 || a.header.Get("Location") != admin {
		t.Fatalf("the right code: %d → %q %s", a.status, a.header.Get("Location"), a.body)
	}
	if a = bob.verifyAs("GET", admin); a.status != 200 || a.header.Get("Remote-User") != "bob" {
		t.Errorf("after the step-up: %d %q", a.status, a.header.Get("Remote-User"))
	}
	if _, err := deps.Sessions.Resolve(ctx, cookieValue(first, "jwtidp_session")); err == nil {
		t.Errorf("the one-factor session outlived the step-up")
	}
	// The new session ends when the one it replaced would have: a step-up renews no sign-in.
	if up, err := deps.Sessions.Resolve(ctx, cookieValue(bob.c.Jar.Cookies(mustURL(t, srv.URL)), "jwtidp_session")); err != nil || !up.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("the stepped-up session ends at %v (%v), the one it replaced at %v", up.ExpiresAt, err, s.ExpiresAt)
	}
	// Stepped up already: the page goes straight on.
	if a = bob.do("GET", to, nil); a.status != 303 || a.header.Get("Location") != admin {
		t.Errorf("the step-up page with two factors: %d %q", a.status, a.header.Get("Location"))
	}
	// A bearer token from a sign-in with the code passes too: its amr says so.
	clk.Advance(30 * time.Second)
	code, _ = totp.GenerateCode(e.Secret, clk.Now())
	tok := bearerToken(t, srv.URL, "bob", `,"otp":"`+code+`"`)
	if a = newPageBrowser(t, srv, "api").verifyAs("GET", admin, "Authorization", "Bearer "+tok); a.status != 200 || a.header.Get("Remote-User") != "bob" {
		t.Errorf("a two-factor bearer token: %d %q", a.status, a.header.Get("Remote-User"))
	}
	// Without a session: to the login, coming back to the same place.
	anon := newPageBrowser(t, srv, "anon")
	if a = anon.do("GET", to, nil); a.status != 303 || a.header.Get("Location") != "/login?rd="+url.QueryEscape(admin) {
		t.Errorf("the step-up page without a session: %d %q", a.status, a.header.Get("Location"))
	}
}

func cookieValue(cs []*http.Cookie, name string) string {
	for _, c := range cs {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
