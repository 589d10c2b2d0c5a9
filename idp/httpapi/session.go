package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
)

// SessionConfig shapes the browser cookies.
type SessionConfig struct {
	CookieName string        // "jwtidp_session", or "__Host-jwtidp_session" (see CookieNameFor)
	Domain     string        // optional parent domain, so app.example.com and login.example.com share it
	Secure     bool          // set when the issuer is https
	TTL        time.Duration // the session's absolute lifetime
}

// CookieNameFor is the session cookie's name: with the __Host- prefix when the browser will
// enforce what it promises (https, no Domain, Path=/), so no sibling host can plant one.
func CookieNameFor(secure bool, domain string) string {
	if secure && domain == "" {
		return "__Host-jwtidp_session"
	}
	return "jwtidp_session"
}

func (c SessionConfig) cookie(value string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{
		Name: c.CookieName, Value: value, Path: "/", Domain: c.Domain,
		HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(maxAge.Seconds()),
	}
	if maxAge <= 0 {
		ck.MaxAge = -1
	}
	return ck
}

// secret returns the session cookie's value, or "" when the request carries none or more than
// one: with two, one may have been planted by a sibling host, and neither can be trusted.
func (c SessionConfig) secret(r *http.Request) string {
	v, n := "", 0
	for _, ck := range r.Cookies() {
		if ck.Name == c.CookieName {
			v, n = ck.Value, n+1
		}
	}
	if n != 1 {
		return ""
	}
	return v
}

// browserKeys sign what the IdP gives browsers to hand back: the login form's CSRF token, the
// logout form's, and device cookies. The key comes from the store, so every process agrees.
type browserKeys struct{ key []byte }

func (k browserKeys) mac(purpose string, parts ...string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (k browserKeys) equal(got, want string) bool { return hmac.Equal([]byte(got), []byte(want)) }

// loginCSRF is the login form's token for the browser whose CSRF cookie holds browserSecret:
// a form whose token does not match the cookie's is refused, and nobody but the IdP can make a
// matching pair — a cookie and field that merely agree ("x" and "x") do not pass.
func (k browserKeys) loginCSRF(browserSecret string) string {
	return k.mac("login-csrf", browserSecret)
}

// logoutCSRF is the logout form's token, bound to the session it ends.
func (k browserKeys) logoutCSRF(sessionSecret string) string {
	return k.mac("logout-csrf", auth.HashSecret(sessionSecret))
}

const deviceCookie = "jwtidp_device"

// device returns the id of the request's device cookie when it is valid for username: a
// browser that has logged in to that account before (OWASP's device cookie), which others'
// failed logins cannot lock out.
func (k browserKeys) device(r *http.Request, username string) string {
	c, err := r.Cookie(deviceCookie)
	if err != nil {
		return ""
	}
	user, rest, ok1 := strings.Cut(c.Value, ".")
	nonce, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || len(nonce) != 22 {
		return ""
	}
	name, err := base64.RawURLEncoding.DecodeString(user)
	if err != nil || string(name) != identity.NormalizeUsername(username) {
		return ""
	}
	if !k.equal(sig, k.mac("device", string(name), nonce)) {
		return ""
	}
	return nonce
}

// deviceCookieFor makes the device cookie for username, keeping the browser's id when it
// already had a valid one. It lives a year, on the path it was set on.
func (k browserKeys) deviceCookieFor(r *http.Request, username string, secure bool, newID func() string) *http.Cookie {
	name := identity.NormalizeUsername(username)
	nonce := k.device(r, username)
	if nonce == "" {
		nonce = newID()
	}
	value := base64.RawURLEncoding.EncodeToString([]byte(name)) + "." + nonce + "." + k.mac("device", name, nonce)
	return &http.Cookie{Name: deviceCookie, Value: value, Path: r.URL.Path, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int((365 * 24 * time.Hour).Seconds())}
}
