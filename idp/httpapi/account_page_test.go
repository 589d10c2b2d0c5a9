package httpapi

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// accountPageIdP is the whole IdP (real use cases, a real store) on a test server. The session
// cache is off: a session ended by id (EndAccountSession) reaches Resolve within the cache's TTL
// by design, tested in package main; here its end shows at once. The use cases get the session
// store, as the real program gives them, to list and end sessions.
func accountPageIdP(t *testing.T) *httptest.Server {
	t.Helper()
	h := newIdPWith(t, func(d *Deps) { d.Sessions.CacheTTL, d.Auth.Sessions = 0, d.Sessions.Store })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// pageBrowser is a browser: a cookie jar, its user agent, redirects not followed.
type pageBrowser struct {
	t    *testing.T
	base string
	ua   string
	c    *http.Client
}

type pageAnswer struct {
	status int
	header http.Header
	body   string
}

func newPageBrowser(t *testing.T, srv *httptest.Server, ua string) *pageBrowser {
	jar, _ := cookiejar.New(nil)
	return &pageBrowser{t: t, base: srv.URL, ua: ua, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *pageBrowser) do(method, path string, form url.Values, hdr ...string) pageAnswer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set("User-Agent", b.ua)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(r)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return pageAnswer{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

// signIn signs the user in through the login form, as a browser does.
func (b *pageBrowser) signIn(user, pw string) {
	b.t.Helper()
	a := b.do("GET", "/login", nil)
	m := csrfInPage.FindStringSubmatch(a.body)
	if a.status != 200 || m == nil {
		b.t.Fatalf("login form: %d", a.status)
	}
	a = b.do("POST", "/login", url.Values{"csrf": {m[1]}, "username": {user}, "password": {pw}, "rd": {"/account"}})
	if a.status != 303 || a.header.Get("Location") != "/account" {
		b.t.Fatalf("sign in as %s: %d → %q %s", user, a.status, a.header.Get("Location"), a.body)
	}
}

// page fetches /account, which must be there.
func (b *pageBrowser) page() accountPageSeen {
	b.t.Helper()
	a := b.do("GET", "/account", nil)
	if a.status != 200 {
		b.t.Fatalf("GET /account: %d → %q", a.status, a.header.Get("Location"))
	}
	return seeAccountPage(b.t, a)
}

// signedOut reports whether /account sends this browser to the login page.
func (b *pageBrowser) signedOut() bool {
	b.t.Helper()
	a := b.do("GET", "/account", nil)
	return a.status == 303 && a.header.Get("Location") == "/login?rd=%2Faccount"
}

type accountPageSeen struct {
	body     string
	csrf     string   // the page's forms' token
	sessions []string // the listed ids, in order
	current  []string // those marked "this browser"
}

var (
	sessionInPage = regexp.MustCompile(`<li class="session" data-id="([^"]+)">(.*?)</li>`)
	accountCSRFIn = regexp.MustCompile(`name="csrf" value="([^"]+)">\s*<input type="hidden" name="action"`)
)

func seeAccountPage(t *testing.T, a pageAnswer) accountPageSeen {
	t.Helper()
	// No scripts at all: the strict policy, and nothing in the page that would need more.
	p := a.header.Get("Content-Security-Policy")
	if p != pageCSP || strings.Contains(p, "script-src") || !strings.HasPrefix(p, "default-src 'none'") {
		t.Errorf("the account page's CSP: %q", p)
	}
	if a.header.Get("Cache-Control") != "no-store" || strings.Contains(a.body, "<script") {
		t.Errorf("the account page: Cache-Control %q, or a script in it", a.header.Get("Cache-Control"))
	}
	s := accountPageSeen{body: a.body}
	if m := accountCSRFIn.FindStringSubmatch(a.body); m != nil {
		s.csrf = m[1]
	}
	for _, m := range sessionInPage.FindAllStringSubmatch(strings.ReplaceAll(a.body, "\n", " "), -1) {
		s.sessions = append(s.sessions, m[1])
		if strings.Contains(m[2], "(this browser)") {
			s.current = append(s.current, m[1])
		}
	}
	return s
}

func signupFor(t *testing.T, srv *httptest.Server, user, pw, email string) {
	t.Helper()
	body := `{"username":"` + user + `","password":"` + pw + `","email":"` + email + `"}`
	resp, err := http.Post(srv.URL+"/signup", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("signup %s: %v %v", user, resp, err)
	}
	resp.Body.Close()
}

// authStatus is POST /auth's status for the user and password.
func authStatus(t *testing.T, srv *httptest.Server, user, pw string) int {
	t.Helper()
	resp, err := http.Post(srv.URL+"/auth", "application/json", strings.NewReader(`{"username":"`+user+`","password":"`+pw+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Without a browser session the page and its forms send the browser to the login page, back to
// /account after.
func TestAccountPageNeedsASession(t *testing.T) {
	srv := accountPageIdP(t)
	b := newPageBrowser(t, srv, "test")
	if !b.signedOut() {
		t.Fatal("GET /account without a session: not a 303 to the login page")
	}
	a := b.do("POST", "/account", url.Values{"action": {"email"}, "email": {"x@example.com"}, "csrf": {"x"}})
	if a.status != 303 || a.header.Get("Location") != "/login?rd=%2Faccount" {
		t.Fatalf("POST /account without a session: %d → %q", a.status, a.header.Get("Location"))
	}
	// Back from the login page, the page is there.
	signupFor(t, srv, "alice", "correct-horse-9", "")
	b.signIn("alice", "correct-horse-9")
	if s := b.page(); !strings.Contains(s.body, `id="username">alice<`) || !strings.Contains(s.body, `id="no-email"`) {
		t.Fatalf("the page: %s", s.body)
	}
}

// The page lists the user's two browser sessions and refresh family, "this browser" on each
// browser's own; ending the other from the page leaves this one signed in and signs the other
// out, but only with the page's token from the page's origin; ending this one signs it out.
func TestAccountPageSessions(t *testing.T) {
	srv := accountPageIdP(t)
	signupFor(t, srv, "alice", "correct-horse-9", "alice@example.com")
	signupFor(t, srv, "bob", "correct-horse-8", "")
	a := newPageBrowser(t, srv, "Browser A")
	b := newPageBrowser(t, srv, `<script>alert("B")</script>`)
	bob := newPageBrowser(t, srv, "Bob's")
	a.signIn("alice", "correct-horse-9")
	b.signIn("alice", "correct-horse-9")
	bob.signIn("bob", "correct-horse-8")
	if authStatus(t, srv, "alice", "correct-horse-9") != 200 { // a refresh family
		t.Fatal("/auth")
	}
	pa, pb := a.page(), b.page()
	if len(pa.sessions) != 3 || len(pa.current) != 1 || len(pb.current) != 1 || pa.current[0] == pb.current[0] {
		t.Fatalf("A sees %v (current %v), B sees %v (current %v)", pa.sessions, pa.current, pb.sessions, pb.current)
	}
	if !strings.Contains(pa.body, "Browser A") || !strings.Contains(pa.body, "App (refresh token)") ||
		!strings.Contains(pa.body, "&lt;script&gt;alert(&#34;B&#34;)&lt;/script&gt;") || strings.Contains(pa.body, "<script>") {
		t.Fatalf("A's page does not show the sessions as expected: %s", pa.body)
	}
	if !strings.Contains(pa.body, `id="email">alice@example.com<`) || !strings.Contains(pa.body, "(not verified)") ||
		!strings.Contains(pa.body, `id="totp">off<`) || !strings.Contains(pa.body, `id="passkey-count">0<`) ||
		!strings.Contains(pa.body, `href="account/passkeys"`) || !strings.Contains(pa.body, `action="logout"`) {
		t.Fatalf("A's page lacks the email, the second factors or the logout form: %s", pa.body)
	}
	thisA, other := pa.current[0], pb.current[0]

	end := func(br *pageBrowser, id, csrf string, hdr ...string) pageAnswer {
		t.Helper()
		form := url.Values{"action": {"end-session"}, "id": {id}}
		if csrf != "" {
			form.Set("csrf", csrf)
		}
		return br.do("POST", "/account", form, hdr...)
	}
	// Forged: no token, another session's token, a token with a cross-site post. Nothing ends.
	for name, w := range map[string]pageAnswer{
		"no token":             end(a, other, ""),
		"B's token in A":       end(a, other, pb.csrf),
		"a made-up token":      end(a, other, "AAAA"),
		"cross-site":           end(a, other, pa.csrf, "Sec-Fetch-Site", "cross-site"),
		"from another origin":  end(a, other, pa.csrf, "Origin", "https://evil.example"),
		"A's token in bob's":   end(bob, other, pa.csrf),
		"the logout's as CSRF": end(a, other, csrfInPage.FindStringSubmatch(pa.body[strings.Index(pa.body, `action="logout"`):])[1]),
	} {
		if w.status != 403 {
			t.Errorf("%s: %d, want 403", name, w.status)
		}
	}
	if b.signedOut() || a.signedOut() || len(a.page().sessions) != 3 {
		t.Fatal("a forged post ended a session")
	}
	// Bob cannot end Alice's session with his own page's token: it is not his.
	if w := end(bob, other, bob.page().csrf); w.status != 404 || b.signedOut() {
		t.Fatalf("bob ending alice's session: %d", w.status)
	}

	// The real form, as a browser that hides its origin but says same-origin posts it.
	w := end(a, other, pa.csrf, "Origin", "null", "Sec-Fetch-Site", "same-origin")
	if w.status != 303 || w.header.Get("Location") != "/account?done=ended" || w.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("ending B from A: %d → %q", w.status, w.header.Get("Location"))
	}
	if !b.signedOut() {
		t.Fatal("B is still signed in after A ended its session")
	}
	pa = seeAccountPage(t, a.do("GET", w.header.Get("Location"), nil))
	if len(pa.sessions) != 2 || len(pa.current) != 1 || pa.current[0] != thisA || !strings.Contains(pa.body, "The session was ended.") {
		t.Fatalf("A after ending B: %v (current %v)", pa.sessions, pa.current)
	}
	// Ending this browser's own session signs it out.
	w = end(a, thisA, pa.csrf)
	if w.status != 303 || w.header.Get("Location") != "/login?rd=%2Faccount" || !a.signedOut() {
		t.Fatalf("ending A's own session: %d → %q", w.status, w.header.Get("Location"))
	}
	if bob.signedOut() {
		t.Fatal("bob was signed out")
	}
}

// The email form changes the email (unverified), refuses a malformed or taken one with the page
// and its error, and removes it when empty; a forged post changes nothing.
func TestAccountPageEmail(t *testing.T) {
	srv := accountPageIdP(t)
	signupFor(t, srv, "alice", "correct-horse-9", "alice@example.com")
	signupFor(t, srv, "bob", "correct-horse-8", "bob@example.com")
	a := newPageBrowser(t, srv, "A")
	a.signIn("alice", "correct-horse-9")
	csrf := a.page().csrf
	post := func(email, csrf string) pageAnswer {
		return a.do("POST", "/account", url.Values{"action": {"email"}, "email": {email}, "csrf": {csrf}})
	}
	if w := post("evil@example.com", "forged"); w.status != 403 || !strings.Contains(a.page().body, `id="email">alice@example.com<`) {
		t.Fatalf("a forged email change: %d", w.status)
	}
	w := post("Alice.New@example.com", csrf)
	if w.status != 303 || w.header.Get("Location") != "/account?done=email" {
		t.Fatalf("email change: %d → %q", w.status, w.header.Get("Location"))
	}
	if s := seeAccountPage(t, a.do("GET", "/account?done=email", nil)); !strings.Contains(s.body, `id="email">Alice.New@example.com<`) ||
		!strings.Contains(s.body, "(not verified)") || !strings.Contains(s.body, `id="flash" role="status">Your email was changed.<`) {
		t.Fatalf("the page after the change: %s", s.body)
	}
	for email, status := range map[string]int{"not an email": 400, "BOB@example.com": 409} {
		w := post(email, csrf)
		s := seeAccountPage(t, w)
		if w.status != status || !strings.Contains(s.body, `class="error"`) || !strings.Contains(s.body, `id="email">Alice.New@example.com<`) {
			t.Errorf("email %q: %d, want %d and the page with the error: %s", email, w.status, status, s.body)
		}
	}
	if w := post("", csrf); w.status != 303 || !strings.Contains(a.page().body, `id="no-email"`) {
		t.Fatalf("removing the email: %d", w.status)
	}
}

// The password form: a wrong current password is an error on the page and changes nothing; a
// new password outside the policy too; the right one changes it, which ends every session of the
// user, this browser's too, and the page says so.
func TestAccountPagePassword(t *testing.T) {
	srv := accountPageIdP(t)
	signupFor(t, srv, "alice", "correct-horse-9", "")
	a, b := newPageBrowser(t, srv, "A"), newPageBrowser(t, srv, "B")
	a.signIn("alice", "correct-horse-9")
	b.signIn("alice", "correct-horse-9")
	csrf := a.page().csrf
	post := func(current, next, csrf string) pageAnswer {
		return a.do("POST", "/account", url.Values{"action": {"password"}, "current_password": {current}, "new_password": {next}, "csrf": {csrf}})
	}
	if w := post("correct-horse-9", "battery-staple-7", ""); w.status != 403 {
		t.Fatalf("no token: %d", w.status)
	}
	w := post("wrong-horse-9", "battery-staple-7", csrf)
	if s := seeAccountPage(t, w); w.status != 401 || !strings.Contains(s.body, "Your current password is not right.") {
		t.Fatalf("a wrong current password: %d %s", w.status, s.body)
	}
	w = post("correct-horse-9", "password1", csrf)
	if s := seeAccountPage(t, w); w.status != 400 || !strings.Contains(s.body, `class="error"`) {
		t.Fatalf("a common new password: %d %s", w.status, s.body)
	}
	if a.signedOut() || b.signedOut() || authStatus(t, srv, "alice", "correct-horse-9") != 200 || authStatus(t, srv, "alice", "battery-staple-7") != 401 {
		t.Fatal("a refused change changed something")
	}
	w = post("correct-horse-9", "battery-staple-7", csrf)
	if w.status != 200 || !strings.Contains(w.body, `id="signed-out"`) || !strings.Contains(w.body, `href="/login?rd=%2Faccount"`) ||
		w.header.Get("Content-Security-Policy") != pageCSP || w.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the password change: %d %s", w.status, w.body)
	}
	if !a.signedOut() || !b.signedOut() {
		t.Fatal("a session outlived the password change")
	}
	if authStatus(t, srv, "alice", "correct-horse-9") != 401 || authStatus(t, srv, "alice", "battery-staple-7") != 200 {
		t.Fatal("the password did not change")
	}
}
