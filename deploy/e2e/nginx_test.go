package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"

	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// noRedirect is a client that shows redirects instead of following them.
func client(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func signupAndToken(t *testing.T, idpURL, user string) (access, refresh string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": "correct-horse-9"})
	if r, err := http.Post(idpURL+"/signup", "application/json", bytes.NewReader(body)); err != nil || r.StatusCode != 201 {
		t.Fatalf("signup: %v %v", err, r)
	}
	r, err := http.Post(idpURL+"/auth", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var tok struct{ AccessToken, RefreshToken string }
	var raw map[string]any
	json.NewDecoder(r.Body).Decode(&raw)
	tok.AccessToken, _ = raw["access_token"].(string)
	tok.RefreshToken, _ = raw["refresh_token"].(string)
	proctest.Secret("correct-horse-9", tok.AccessToken, tok.RefreshToken)
	return tok.AccessToken, tok.RefreshToken
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// browserLogin logs in through the proxy's login page as a browser would, and returns the
// answer to the form's POST.
func browserLogin(t *testing.T, c *http.Client, proxy, user, pw, rd string) *http.Response {
	t.Helper()
	_, page := get(t, c, proxy+"/login?rd="+url.QueryEscape(rd))
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page has no CSRF field:\n%s", page)
	}
	resp, err := c.PostForm(proxy+"/login", url.Values{"csrf": {m[1]}, "rd": {rd}, "username": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestNginxForwardAuth(t *testing.T) {
	s := startStack(t)
	c := client(nil)

	// No session: a browser is sent to the login page with the original URL to return to.
	resp, _ := get(t, c, s.proxy+"/reports/q3?year=2026&view=full")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 302 || !strings.Contains(loc, "/login?rd=") {
		t.Fatalf("no session: %d %q", resp.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	if rd := u.Query().Get("rd"); rd != s.proxy+"/reports/q3?year=2026&view=full" {
		t.Fatalf("rd = %q", rd)
	}
	if n := len(s.app.requests()); n != 0 {
		t.Fatalf("the app was reached %d times without a session", n)
	}

	// A bearer token gets through; the app sees the identity, not the client's forgeries.
	access, _ := signupAndToken(t, s.idp.URL, "alice")
	for _, scheme := range []string{"Bearer ", "JWT "} {
		resp, body := get(t, c, s.proxy+"/hello", "Authorization", scheme+access,
			"X-Auth-User", "root", "Remote-User", "root", "X-Auth-Subject", "0")
		if resp.StatusCode != 200 || !strings.Contains(body, ">alice<") {
			t.Fatalf("%s token: %d %s", scheme, resp.StatusCode, body)
		}
	}
	for _, h := range s.app.requests() {
		if h.Get("X-Auth-User") != "alice" || h.Get("Remote-User") != "alice" || h.Get("X-Auth-Subject") == "0" || len(h.Values("X-Auth-User")) != 1 {
			t.Fatalf("the app saw identity headers %v", h)
		}
	}
	// Forged and expired tokens: API clients get the 401, not a redirect, and the app is not reached.
	before := len(s.app.requests())
	parts := strings.Split(access, ".")
	for name, tok := range map[string]string{
		"garbage":      "abc.def.ghi",
		"tampered":     parts[0] + "." + parts[1] + "x." + parts[2],
		"no signature": parts[0] + "." + parts[1] + ".",
		"alg none":     "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + parts[1] + ".",
	} {
		if resp, _ := get(t, c, s.proxy+"/hello", "Authorization", "Bearer "+tok); resp.StatusCode != 401 {
			t.Errorf("%s token: %d, want 401", name, resp.StatusCode)
		}
	}
	if len(s.app.requests()) != before {
		t.Fatal("a refused token reached the app")
	}
}

func TestNginxExpiredTokenRefused(t *testing.T) {
	s := startStack(t, "--token-ttl", "1s", "--leeway", "0s")
	access, _ := signupAndToken(t, s.idp.URL, "bob")
	// Wall time is the subject: the 1s token must expire on the clock of the verifier behind
	// nginx, another process, with no leeway.
	time.Sleep(2100 * time.Millisecond)
	if resp, _ := get(t, client(nil), s.proxy+"/x", "Authorization", "Bearer "+access); resp.StatusCode != 401 {
		t.Fatalf("expired token: %d, want 401", resp.StatusCode)
	}
}

func TestNginxBrowserSessionAndOpenRedirects(t *testing.T) {
	s := startStack(t)
	signupAndToken(t, s.idp.URL, "carol")
	jar, _ := cookiejar.New(nil)
	c := client(jar)
	resp := browserLogin(t, c, s.proxy, "carol", "correct-horse-9", s.proxy+"/dashboard?tab=1")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != s.proxy+"/dashboard?tab=1" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "jwtidp_session" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" {
		t.Fatalf("session cookie %+v", session)
	}
	resp, body := get(t, c, s.proxy+"/dashboard?tab=1", "Cookie", "theme=dark")
	if resp.StatusCode != 200 || !strings.Contains(body, ">carol<") {
		t.Fatalf("with the session: %d %s", resp.StatusCode, body)
	}
	// The session cookie never reaches the app (hygiene: it is only an id); other cookies do.
	for _, h := range s.app.requests() {
		if strings.Contains(h.Get("Cookie"), "jwtidp_session") || strings.Contains(h.Get("Cookie"), "jwtidp_csrf") {
			t.Fatalf("the app saw the session cookie: %q", h.Get("Cookie"))
		}
	}
	if !strings.Contains(s.app.requests()[0].Get("Cookie"), "theme=dark") {
		t.Fatalf("the app lost its own cookie: %q", s.app.requests()[0].Get("Cookie"))
	}
	// A failed login re-renders the form with a generic message.
	_, page := get(t, c, s.proxy+"/login")
	m := csrfField.FindStringSubmatch(page)
	r, _ := c.PostForm(s.proxy+"/login", url.Values{"csrf": {m[1]}, "username": {"carol"}, "password": {"wrong-password"}})
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 401 || !strings.Contains(string(b), "Invalid username or password") || !strings.Contains(string(b), `name="password"`) {
		t.Fatalf("failed login: %d %s", r.StatusCode, b)
	}
	// Login CSRF: a post without the cookie's token is refused.
	r, _ = client(nil).PostForm(s.proxy+"/login", url.Values{"csrf": {m[1]}, "username": {"carol"}, "password": {"correct-horse-9"}})
	r.Body.Close()
	if r.StatusCode != 403 {
		t.Fatalf("login without the CSRF cookie: %d, want 403", r.StatusCode)
	}
	// Open redirects: every one lands on the safe default.
	for _, rd := range []string{"//evil.example/", "https:evil.example", "javascript:alert(1)", "/\\evil.example",
		"https://evil.example/", "http://" + strings.TrimPrefix(s.proxy, "http://") + "@evil.example/",
		"https://user@evil.example", "\\\\evil.example"} {
		j, _ := cookiejar.New(nil)
		resp := browserLogin(t, client(j), s.proxy, "carol", "correct-horse-9", rd)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" {
			t.Errorf("rd=%q: %d → %q, want the default /", rd, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// Login CSRF: a cookie and a field that merely agree are refused; only the IdP can make a pair.
	forged := url.Values{"csrf": {strings.Repeat("x", 43)}, "username": {"carol"}, "password": {"correct-horse-9"}}
	req, _ := http.NewRequest("POST", s.proxy+"/login", strings.NewReader(forged.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "jwtidp_csrf="+strings.Repeat("x", 43))
	if r, err := client(nil).Do(req); err != nil || r.StatusCode != 403 {
		t.Fatalf("login with a forged cookie/field pair: %v %v, want 403", r, err)
	}
	// Logout: the confirmation page, then the cookie is cleared and the session ended.
	if r := logout(t, c, s.proxy); r.StatusCode != 303 {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if resp, _ := get(t, c, s.proxy+"/dashboard"); resp.StatusCode != 302 {
		t.Fatalf("after logout: %d, want a redirect to login", resp.StatusCode)
	}
}

// logout signs out through the proxy as a browser does: the app's plain form gets the IdP's
// confirmation page, whose form carries the session's CSRF token.
func logout(t *testing.T, c *http.Client, proxy string) *http.Response {
	t.Helper()
	r, err := c.Post(proxy+"/logout", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	m := csrfField.FindStringSubmatch(string(b))
	if r.StatusCode != 200 || m == nil {
		t.Fatalf("logout without a token: %d, want the confirmation page:\n%s", r.StatusCode, b)
	}
	if resp, _ := get(t, c, proxy+"/page"); resp.StatusCode != 200 {
		t.Fatalf("the confirmation page signed out already: %d", resp.StatusCode)
	}
	r, err = c.PostForm(proxy+"/logout", url.Values{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r
}

// The session lives in the IdP: logging out, or changing the password from an API client, ends
// it for every copy of the cookie at once; the cookie holds nothing but an opaque id; and a
// request carrying two session cookies (one may be planted by a sibling host) has none.
func TestNginxSessionEndsEverywhere(t *testing.T) {
	s := startStack(t, "--session-cache-ttl", "0s")
	access, _ := signupAndToken(t, s.idp.URL, "dave")
	for _, step := range []string{"logout", "password change"} {
		jar, _ := cookiejar.New(nil)
		c := client(jar)
		if resp := browserLogin(t, c, s.proxy, "dave", "correct-horse-9", "/"); resp.StatusCode != 303 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		pu, _ := url.Parse(s.proxy)
		copied := jar.Cookies(pu)
		var session *http.Cookie
		for _, ck := range copied {
			if ck.Name == "jwtidp_session" {
				session = ck
			}
		}
		if session == nil || len(session.Value) != 43 || strings.Contains(session.Value, ".") {
			t.Fatalf("the session cookie is not an opaque id: %+v", session)
		}
		withCookies := func(cks ...*http.Cookie) int {
			req, _ := http.NewRequest("GET", s.proxy+"/page", nil)
			for _, ck := range cks {
				req.AddCookie(ck)
			}
			resp, err := client(nil).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := withCookies(session); code != 200 {
			t.Fatalf("a copy of the cookie: %d", code)
		}
		if code := withCookies(session, &http.Cookie{Name: "jwtidp_session", Value: session.Value}); code != 302 {
			t.Fatalf("two session cookies: %d, want the login redirect", code)
		}
		// With a bearer token beside two session cookies the app is reached, and sees neither.
		req, _ := http.NewRequest("GET", s.proxy+"/page", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		req.Header.Set("Cookie", "jwtidp_session="+session.Value+"; a=1; jwtidp_session="+session.Value+"; b=2")
		if resp, err := client(nil).Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("bearer with two session cookies: %v %v", resp, err)
		}
		for _, h := range s.app.requests() {
			if ck := h.Get("Cookie"); strings.Contains(ck, session.Value) {
				t.Fatalf("the app saw a session cookie: %q", ck)
			}
		}
		switch step {
		case "logout":
			if r := logout(t, c, s.proxy); r.StatusCode != 303 {
				t.Fatalf("logout: %d", r.StatusCode)
			}
		case "password change":
			req, _ := http.NewRequest("POST", s.idp.URL+"/account/password",
				strings.NewReader(`{"current_password":"correct-horse-9","new_password":"battery-staple-77"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+access)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 204 {
				t.Fatalf("password change: %d", resp.StatusCode)
			}
		}
		if code := withCookies(session); code != 302 {
			t.Fatalf("after the %s, a copy of the old cookie: %d, want the login redirect", step, code)
		}
	}
}
