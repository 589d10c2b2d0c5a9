package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
)

var validSecretShape = auth.ValidSecret

// FuzzRedirectsSafe: whatever rd is, the login sends the browser either to the default or to a
// same-host path or an allowed host — never anywhere else.
func FuzzRedirectsSafe(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil", "https:evil", "javascript:alert(1)", "/\\evil",
		"https://app.example.com/x", "https://app.example.com@evil", "http://sub.corp.example/", "%2f%2fevil", "/\t/evil"} {
		f.Add(s)
	}
	rv := Redirects{Hosts: []string{"app.example.com", ".corp.example"}, Default: "/home"}
	f.Fuzz(func(t *testing.T, rd string) {
		got := rv.Safe(rd)
		if got == rv.Default {
			return
		}
		if got != rd || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n ") {
			t.Fatalf("Safe(%q) = %q", rd, got)
		}
		u, err := url.Parse(got)
		if err != nil || u.User != nil {
			t.Fatalf("Safe(%q) = %q: not a clean URL", rd, got)
		}
		if u.Host != "" {
			h := strings.ToLower(u.Hostname())
			if h != "app.example.com" && h != "corp.example" && !strings.HasSuffix(h, ".corp.example") {
				t.Fatalf("Safe(%q) = %q: host %q is not allowed", rd, got, h)
			}
		} else if !strings.HasPrefix(got, "/") {
			t.Fatalf("Safe(%q) = %q: neither a path nor an allowed URL", rd, got)
		}
	})
}

// FuzzSessionCookie: whatever Cookie header a request carries, the session secret read from it
// is the value of the one cookie of that name, or nothing when there is none or more than one.
func FuzzSessionCookie(f *testing.F) {
	for _, s := range []string{"", "jwtidp_session=abc", "a=1; jwtidp_session=x; b=2", "jwtidp_session=x; jwtidp_session=y",
		"jwtidp_session=x;jwtidp_session=x", `jwtidp_session="q"`, "__Host-jwtidp_session=z", "JWTIDP_SESSION=x"} {
		f.Add(s)
	}
	cfg := SessionConfig{CookieName: "jwtidp_session"}
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		got := cfg.secret(r)
		n, val := 0, ""
		for _, c := range r.Cookies() {
			if c.Name == cfg.CookieName {
				n, val = n+1, c.Value
			}
		}
		if (n == 1 && got != val) || (n != 1 && got != "") {
			t.Fatalf("Cookie %q: secret %q, with %d session cookies", header, got, n)
		}
	})
}

var fuzzKeys = browserKeys{key: []byte("0123456789abcdef0123456789abcdef")}

// FuzzDeviceCookie: a device cookie is accepted for a username only if it is, byte for byte, the
// cookie the IdP itself makes for that username, epoch, id and sub — it cannot be forged or bent
// to another account, another user of the same name or another credential epoch.
func FuzzDeviceCookie(f *testing.F) {
	good := func(user string, epoch int64) string {
		r := httptest.NewRequest("POST", "/login", nil)
		return fuzzKeys.deviceCookieFor(r, identity.User{ID: "sub-of-" + user, Username: user, Epoch: epoch}, false, func() string { return "AAAAAAAAAAAAAAAAAAAAAA" }).Value
	}
	f.Add(good("alice", 0), "alice")
	f.Add(good("alice", 3), "ALICE")
	f.Add(good("alice", 0), "bob")
	f.Add("YWxpY2U.0.AAAAAAAAAAAAAAAAAAAAAA.x", "alice")
	f.Add("YWxpY2U.0.AAAAAAAAAAAAAAAAAAAAAA.c3Vi.x", "alice")
	f.Add("YWxpY2U.+0.AAAAAAAAAAAAAAAAAAAAAA.x", "alice")
	f.Add("...", "")
	f.Fuzz(func(t *testing.T, value, user string) {
		r := httptest.NewRequest("POST", "/login", nil)
		r.Header.Set("Cookie", deviceCookie+"="+value)
		d := fuzzKeys.device(r, user)
		if d.ID == "" {
			return
		}
		c, err := r.Cookie(deviceCookie)
		if err != nil {
			t.Fatalf("accepted %q without a cookie", value)
		}
		u := identity.User{ID: d.Sub, Username: user, Epoch: d.Epoch}
		want := fuzzKeys.deviceCookieFor(httptest.NewRequest("POST", "/login", nil), u, false, func() string { return d.ID }).Value
		if c.Value != want {
			t.Fatalf("device cookie %q accepted for %q (%+v); the IdP makes %q", c.Value, user, d, want)
		}
	})
}

// FuzzLoginCSRF: a login form passes only with the token the IdP derives from the browser's own
// CSRF cookie; a cookie and a field that merely agree do not.
func FuzzLoginCSRF(f *testing.F) {
	secret := strings.Repeat("A", 43)
	f.Add(secret, fuzzKeys.csrfToken("login", secret))
	f.Add(secret, secret)
	f.Add("x", "x")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, cookie, token string) {
		r := httptest.NewRequest("POST", "/login", nil)
		b := &browser{keys: fuzzKeys}
		r.AddCookie(&http.Cookie{Name: b.cfg.csrfCookieName(), Value: cookie})
		c, err := r.Cookie(b.cfg.csrfCookieName())
		ok := b.loginCSRFOK(r, token)
		if ok && (err != nil || token != fuzzKeys.csrfToken("login", c.Value) || len(c.Value) != 43) {
			t.Fatalf("cookie %q and token %q passed the CSRF check", cookie, token)
		}
		if !ok && err == nil && c.Value == cookie && len(cookie) == 43 && token == fuzzKeys.csrfToken("login", cookie) && validSecretShape(cookie) {
			t.Fatalf("the IdP's own pair (%q, %q) was refused", cookie, token)
		}
	})
}

// FuzzClientAuth: a client's credentials sent as client_secret_basic, each part
// form-urlencoded as RFC 6749 §2.3.1 says (what golang.org/x/oauth2 does), come back exactly;
// and whatever an Authorization header holds, reading it never panics, and a header that is
// read names the Basic method.
func FuzzClientAuth(f *testing.F) {
	for _, s := range [][3]string{{"reporter", "s3cret", "Basic cmVwb3J0ZXI6czNjcmV0"}, {"a:b", "c d+e%", "Basic Og=="},
		{"", "", "Bearer x"}, {"ü", "\x00", "basic !!!"}, {"id", "x:y", "Basic " + strings.Repeat("A", 300)}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, id, secret, header string) {
		r := httptest.NewRequest("POST", "/token", nil)
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		got, bad, problem := readClientAuth(r, url.Values{})
		if bad || problem != "" || got.id != id || got.secret != secret || !got.basic {
			t.Fatalf("Basic with (%q, %q) read as %+v, bad %v, %q", id, secret, got, bad, problem)
		}
		r = httptest.NewRequest("POST", "/token", nil)
		r.Header.Set("Authorization", header)
		got, bad, problem = readClientAuth(r, url.Values{"client_id": {id}})
		if !bad && problem == "" && !got.basic {
			t.Fatalf("header %q read as %+v without the Basic method", header, got)
		}
	})
}
