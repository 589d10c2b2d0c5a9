package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// fakeAuth accepts one password, counts the attempts that reached it and the sign-ins it
// completed.
type fakeAuth struct{ calls, completed int }

func (f *fakeAuth) Complete(context.Context, auth.Authentication, auth.Target) (auth.Signed, error) {
	f.completed++
	return auth.Signed{Secret: strings.Repeat("S", 42) + "A"}, nil
}

func (f *fakeAuth) SecondFactor(context.Context, identity.Session, identity.User, string, auth.Device) (auth.Authentication, error) {
	return auth.Authentication{}, auth.ErrOTPRequired
}

func (f *fakeAuth) Authenticate(_ context.Context, c auth.Credentials) (auth.Authentication, error) {
	f.calls++
	if c.Password != "right-password" {
		return auth.Authentication{}, auth.ErrInvalidCredentials
	}
	return auth.Authentication{User: identity.User{ID: "u1", Username: c.Username}, AMR: []string{"pwd"}}, nil
}

// fakeSessions knows one session secret, or fails like a broken store.
type fakeSessions struct {
	live   string
	broken bool
	ended  int
}

func (f *fakeSessions) Resolve(_ context.Context, secret string) (auth.Resolved, error) {
	switch {
	case f.broken:
		return auth.Resolved{}, apperr.Errorf(apperr.EUNAVAILABLE, "store down")
	case secret != "" && secret == f.live:
		return auth.Resolved{SessionID: "s1", UserID: "u1", Username: "alice"}, nil
	}
	return auth.Resolved{}, auth.ErrNoSession
}

func (f *fakeSessions) End(context.Context, string) error { f.ended++; return nil }
func (f *fakeSessions) ForgetSession(string)              {}
func (f *fakeSessions) ForgetGroup(string)                {}
func (f *fakeSessions) ForgetUser(string)                 {}

func (f *fakeSessions) Pending(context.Context, string) (identity.Session, identity.User, error) {
	return identity.Session{}, identity.User{}, auth.ErrNoSession
}

func newBrowser(secure bool) (*browser, *fakeAuth, *fakeSessions) {
	a, s := &fakeAuth{}, &fakeSessions{live: strings.Repeat("L", 42) + "A"}
	cfg := SessionConfig{CookieName: CookieNameFor(secure, ""), Secure: secure}
	return &browser{cfg: cfg, keys: fuzzKeys, sessions: s, auth: a, rv: Redirects{Default: "/"},
		loginURL: "/login", logger: slog.New(slog.DiscardHandler)}, a, s
}

var csrfInPage = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginForm fetches the login page and returns its CSRF cookie and token.
func loginForm(t *testing.T, b *browser) (*http.Cookie, string) {
	t.Helper()
	w := httptest.NewRecorder()
	handleLoginForm(b).ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	body, _ := io.ReadAll(w.Result().Body)
	m := csrfInPage.FindSubmatch(body)
	if w.Code != 200 || m == nil || len(w.Result().Cookies()) != 1 {
		t.Fatalf("login page: %d, cookies %v", w.Code, w.Result().Cookies())
	}
	return w.Result().Cookies()[0], string(m[1])
}

func postLogin(b *browser, form url.Values, cookies []*http.Cookie, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	handleLogin(b).ServeHTTP(w, r)
	return w
}

// Login CSRF, every way a forged post can come: each is 403 and reaches no password check.
func TestLoginCSRF(t *testing.T) {
	for _, secure := range []bool{false, true} {
		b, a, _ := newBrowser(secure)
		cookie, token := loginForm(t, b)
		if secure && (cookie.Name != "__Host-jwtidp_csrf" || cookie.Path != "/" || !cookie.Secure) {
			t.Fatalf("https CSRF cookie %+v, want __Host- on Path=/", cookie)
		}
		good := url.Values{"csrf": {token}, "username": {"alice"}, "password": {"right-password"}}
		other := &http.Cookie{Name: cookie.Name, Value: strings.Repeat("Q", 42) + "A"}
		for _, tt := range []struct {
			name    string
			form    url.Values
			cookies []*http.Cookie
			hdr     []string
		}{
			{"no cookie", good, nil, nil},
			{"no token", url.Values{"username": {"alice"}, "password": {"right-password"}}, []*http.Cookie{cookie}, nil},
			{"cookie and field that merely agree", url.Values{"csrf": {other.Value}, "username": {"a"}, "password": {"right-password"}}, []*http.Cookie{other}, nil},
			{"another browser's token", good, []*http.Cookie{other}, nil},
			{"two CSRF cookies", good, []*http.Cookie{cookie, other}, nil},
			{"cross-site", good, []*http.Cookie{cookie}, []string{"Sec-Fetch-Site", "cross-site"}},
			{"a sibling host", good, []*http.Cookie{cookie}, []string{"Sec-Fetch-Site", "same-site", "Origin", "https://evil.example.com"}},
			{"another origin", good, []*http.Cookie{cookie}, []string{"Origin", "https://evil.example"}},
			{"a hidden origin from another site", good, []*http.Cookie{cookie}, []string{"Origin", "null", "Sec-Fetch-Site", "cross-site"}},
			// Over plain http to a host name a browser sends no Sec-Fetch-Site; a hidden origin
			// is then a sandboxed frame's, never the page's own form (see TestLoginOverPlainHTTP).
			{"a hidden origin over plain http", good, []*http.Cookie{cookie}, []string{"Origin", "null"}},
		} {
			if w := postLogin(b, tt.form, tt.cookies, tt.hdr...); w.Code != 403 {
				t.Errorf("secure=%v, %s: %d, want 403", secure, tt.name, w.Code)
			}
		}
		if a.calls != 0 {
			t.Fatalf("secure=%v: %d forged posts reached the password check", secure, a.calls)
		}
		w := postLogin(b, good, []*http.Cookie{cookie}, "Origin", "http://example.com", "Sec-Fetch-Site", "same-origin")
		if w.Code != 303 || a.calls != 1 {
			t.Fatalf("secure=%v: the real form: %d", secure, w.Code)
		}
		// A browser that hides the origin but says the post is same-origin.
		w = postLogin(b, good, []*http.Cookie{cookie}, "Origin", "null", "Sec-Fetch-Site", "same-origin")
		if w.Code != 303 || a.calls != 2 {
			t.Fatalf("secure=%v: the real form with a hidden origin: %d", secure, w.Code)
		}
	}
}

// Over plain http to a host name (http://app.internal, not a potentially trustworthy origin)
// browsers send no Sec-Fetch-Site, so the origin check rests on Origin alone. Under
// Referrer-Policy: no-referrer a browser sends "Origin: null" on the page's own form, which
// Go's CrossOriginProtection refuses: no one could sign in there. The login's pages keep
// referrers within their origin (same-origin), so the browser names the page's origin on its
// own form, and a hidden one is refused (TestLoginCSRF).
func TestLoginOverPlainHTTP(t *testing.T) {
	b, a, _ := newBrowser(false)
	w := httptest.NewRecorder()
	handleLoginForm(b).ServeHTTP(w, httptest.NewRequest("GET", "http://app.internal/login", nil))
	if got := w.Header().Get("Referrer-Policy"); got != "same-origin" {
		t.Fatalf("Referrer-Policy %q: a browser would hide the page's origin from its own form", got)
	}
	cookie, token := loginForm(t, b)
	good := url.Values{"csrf": {token}, "username": {"alice"}, "password": {"right-password"}}
	r := httptest.NewRequest("POST", "http://app.internal/login", strings.NewReader(good.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "http://app.internal")
	r.AddCookie(cookie)
	w = httptest.NewRecorder()
	handleLogin(b).ServeHTTP(w, r)
	if w.Code != 303 || a.calls != 1 {
		t.Fatalf("the page's own form over plain http: %d, %d password checks", w.Code, a.calls)
	}
}

func postLogout(b *browser, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/logout", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	handleLogout(b).ServeHTTP(w, r)
	return w
}

func TestLogout(t *testing.T) {
	b, _, s := newBrowser(false)
	session := &http.Cookie{Name: b.cfg.CookieName, Value: s.live}
	// Without the session's token: the confirmation page, nothing ended.
	w := postLogout(b, nil, session)
	m := csrfInPage.FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil || s.ended != 0 {
		t.Fatalf("logout without a token: %d, ended %d", w.Code, s.ended)
	}
	// GET /logout (a link, RP-initiated logout without a hint) asks too, and ends nothing.
	r := httptest.NewRequest("GET", "/logout?csrf="+url.QueryEscape(m[1]), nil)
	r.AddCookie(session)
	g := httptest.NewRecorder()
	handleLogout(b).ServeHTTP(g, r)
	if g.Code != 200 || !csrfInPage.MatchString(g.Body.String()) || s.ended != 0 {
		t.Fatalf("GET /logout: %d, ended %d; want the confirmation page", g.Code, s.ended)
	}
	if w := postLogout(b, url.Values{"csrf": {"forged"}}, session); w.Code != 200 || s.ended != 0 {
		t.Fatalf("logout with a forged token: %d, ended %d", w.Code, s.ended)
	}
	if w := postLogout(b, url.Values{"csrf": {m[1]}, "rd": {"//evil.example"}}, session); w.Code != 303 || s.ended != 1 || w.Header().Get("Location") != "/" {
		t.Fatalf("logout with the token: %d → %q, ended %d", w.Code, w.Header().Get("Location"), s.ended)
	}
	// No live session: nothing to end, the cookie is cleared.
	if w := postLogout(b, nil); w.Code != 303 || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout without a session: %d %q", w.Code, w.Header().Get("Set-Cookie"))
	}
	// The store is down: the session may still be live, so it does not pretend to sign out.
	s.broken = true
	if w := postLogout(b, url.Values{"csrf": {m[1]}}, session); w.Code != 503 || w.Header().Get("Set-Cookie") != "" {
		t.Fatalf("logout with the store down: %d %q, want 503 and the cookie kept", w.Code, w.Header().Get("Set-Cookie"))
	}
}
