package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
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
	v, _ := single(r, c.CookieName)
	return v
}

// csrfCookieName is the login form's CSRF cookie: __Host- on https, so no sibling host can
// plant one (it then lives on Path=/, which the proxies keep from the apps with the rest).
func (c SessionConfig) csrfCookieName() string {
	if c.Secure {
		return "__Host-jwtidp_csrf"
	}
	return "jwtidp_csrf"
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

// csrfToken is the one CSRF token of every form the IdP serves: an HMAC under the browser key of
// the form's name, the hash of the secret of the cookie it is bound to — the login's CSRF cookie
// before sign-in, the session cookie after — and whatever else it must not be replayed for (the
// consent's client and scopes). A form whose token does not match its cookie is refused, and
// nobody but the IdP can make a matching pair: a cookie and a field that merely agree do not pass.
func (k browserKeys) csrfToken(form, cookieSecret string, bound ...string) string {
	return k.mac(form+"-csrf", append([]string{auth.HashSecret(cookieSecret)}, bound...)...)
}

// csrfOK is the one CSRF check: the post is not cross-origin (sameOrigin) and carries the token
// csrfToken makes for it.
func (k browserKeys) csrfOK(r *http.Request, token, form, cookieSecret string, bound ...string) bool {
	return sameOrigin(r) && token != "" && cookieSecret != "" && k.equal(token, k.csrfToken(form, cookieSecret, bound...))
}

const deviceCookie = "jwtidp_device"

// device returns the request's device cookie when it is validly signed for username: a browser
// that has logged in to that account before (OWASP's device cookie), which others' failed logins
// cannot lock out. The cookie names the account's sub too, so it does not carry over to another
// user who later holds the same username (a deleted one's, released). Whether it is still good
// (the user's id and credential epoch) is auth's to decide.
func (k browserKeys) device(r *http.Request, username string) auth.Device {
	v, ok := single(r, deviceCookie)
	if !ok {
		return auth.Device{}
	}
	parts := strings.Split(v, ".")
	if len(parts) != 5 || len(parts[2]) != 22 {
		return auth.Device{}
	}
	name, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || string(name) != identity.NormalizeUsername(username) {
		return auth.Device{}
	}
	epoch, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || strconv.FormatInt(epoch, 10) != parts[1] {
		return auth.Device{}
	}
	sub, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || len(sub) == 0 {
		return auth.Device{}
	}
	if !k.equal(parts[4], k.mac("device", string(name), parts[1], parts[2], string(sub))) {
		return auth.Device{}
	}
	return auth.Device{ID: parts[2], Epoch: epoch, Sub: string(sub)}
}

// deviceCookieFor makes the device cookie for u under its current credentials, keeping the
// browser's id when it already had a valid one. It lives a year, on the path it was set on.
func (k browserKeys) deviceCookieFor(r *http.Request, u identity.User, secure bool, newID func() string) *http.Cookie {
	name := identity.NormalizeUsername(u.Username)
	id := k.device(r, u.Username).ID
	if id == "" {
		id = newID()
	}
	epoch := strconv.FormatInt(u.Epoch, 10)
	value := base64.RawURLEncoding.EncodeToString([]byte(name)) + "." + epoch + "." + id + "." +
		base64.RawURLEncoding.EncodeToString([]byte(u.ID)) + "." + k.mac("device", name, epoch, id, u.ID)
	return &http.Cookie{Name: deviceCookie, Value: value, Path: r.URL.Path, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int((365 * 24 * time.Hour).Seconds())}
}

// single returns the value of the request's one cookie named name; false when there is none or
// more than one (a sibling host may have planted a second).
func single(r *http.Request, name string) (string, bool) {
	v, n := "", 0
	for _, ck := range r.Cookies() {
		if ck.Name == name {
			v, n = ck.Value, n+1
		}
	}
	if n != 1 {
		return "", false
	}
	return v, true
}

// crossOrigin is Go's cross-origin request protection (Sec-Fetch-Site, else Origin against
// Host): it refuses a state-changing request a browser says came from another origin. Clients
// that send neither header (curl, old browsers) pass it and rely on the CSRF token alone.
var crossOrigin = http.NewCrossOriginProtection()

// sameOrigin reports whether crossOrigin lets r through.
func sameOrigin(r *http.Request) bool { return crossOrigin.Check(r) == nil }
