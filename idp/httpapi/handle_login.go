package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

//go:embed templates/login.html templates/login_otp.html templates/logout.html templates/consent.html templates/error.html templates/stepup.html templates/password.html
var templates embed.FS

var (
	loginPage  = template.Must(template.ParseFS(templates, "templates/login.html"))
	otpPage    = template.Must(template.ParseFS(templates, "templates/login_otp.html"))
	logoutPage = template.Must(template.ParseFS(templates, "templates/logout.html"))
)

// The page's only style is inline; the CSP allows exactly it by hash, and scripts (the passkey
// button's) and their requests from the IdP itself.
const loginStyle = `body{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}` +
	`label{display:block;margin-bottom:.25rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}` +
	`button{padding:.5rem 1.5rem;font-size:1rem}.error{color:#a00;font-weight:bold}`

// pageCSP is every page's policy: its one inline style by hash, nothing else. scriptCSP adds
// what the pages with the passkey script need (the script from this origin, its fetches to it,
// and the TOTP QR code as a data: image) — only those pages get it.
var (
	pageCSP   = csp("")
	scriptCSP = csp("script-src 'self'; connect-src 'self'; img-src data:; ")
)

func csp(extra string) string {
	sum := sha256.Sum256([]byte(loginStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; " + extra + "frame-ancestors 'none'; base-uri 'none'"
}

type loginView struct {
	Style    template.CSS
	Action   string
	CSRF     string
	RD       string
	Username string
	Error    string
	Base     string // the way from the page's path to the root: the passkey script and routes
	Forgot   string // the IdP's forgotten-password page, absolute (a proxy serves only /login on an app's host); "" without mail
	// Upstreams are the "Sign in with NAME" buttons, one per oidc connector.
	Upstreams []upstreamButton
}

// browser is what the login and logout pages need.
type browser struct {
	cfg       SessionConfig
	keys      browserKeys
	sessions  Sessions
	auth      Authenticator
	rv        Redirects
	loginURL  string
	logger    *slog.Logger
	clients   Clients                                  // for RP-initiated logout; nil: none
	forgot    string                                   // the forgotten-password page's URL; "" when mail is off
	hints     func(raw string) (token.IDClaims, error) // checks an id_token_hint; nil: none
	access    func() *access.Policy                    // the edge's rules, for the "not allowed" page; nil: none
	addrs     web.ClientAddrs
	upstreams []upstreamButton // the oidc connectors' buttons
}

// Sessions is what the browser pages need of the session use cases.
type Sessions interface {
	Pending(ctx context.Context, secret string) (identity.Session, identity.User, error)
	Resolve(ctx context.Context, secret string) (auth.Resolved, error)
	End(ctx context.Context, secret string) error
	// ForgetSession drops this process's cached resolution of a session ended elsewhere;
	// ForgetUser, of every session of the user (their credentials or groups changed);
	// ForgetGroup, of every session of the group's members (it was deleted).
	ForgetSession(id string)
	ForgetUser(userID string)
	ForgetGroup(name string)
}

// Authenticator is what the browser login needs of the use cases: the password step, the
// second step, and the one finisher every sign-in ends in.
type Authenticator interface {
	Authenticate(ctx context.Context, c auth.Credentials) (auth.Authentication, error)
	SecondFactor(ctx context.Context, pre identity.Session, u identity.User, code string, device auth.Device) (auth.Authentication, error)
	Complete(ctx context.Context, a auth.Authentication, t auth.Target) (auth.Signed, error)
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func pageHeaders(w http.ResponseWriter, status int) { pageHeadersCSP(w, status, pageCSP) }

func pageHeadersCSP(w http.ResponseWriter, status int, policy string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", policy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// Not no-referrer: under it a browser sends "Origin: null" on the page's own forms, and over
	// plain http to a host name, with no Sec-Fetch-Site either, the origin check refuses them.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// renderLogin writes the form with a CSRF token bound to this browser: the browser's random
// secret lives in a cookie, and the form carries its HMAC under the IdP's key.
func (b *browser) renderLogin(w http.ResponseWriter, r *http.Request, status int, v loginView) {
	v.CSRF, v.Style, v.Action = b.loginCSRF(w, r), template.CSS(loginStyle), "login"
	if strings.HasSuffix(r.URL.Path, "/otp") {
		v.Action = "../login" // shown by the second step, at /login/otp
	}
	v.Base = strings.TrimSuffix(v.Action, "login")
	v.Forgot = b.forgot
	for _, u := range b.upstreams {
		u.Href = v.Base + "login/upstream/" + u.ID
		if v.RD != "" {
			u.Href += "?" + url.Values{"rd": {v.RD}}.Encode()
		}
		v.Upstreams = append(v.Upstreams, u)
	}
	pageHeadersCSP(w, status, scriptCSP) // the passkey button's script
	loginPage.Execute(w, v)
}

// loginCSRF is a login form's CSRF token, bound to the browser's CSRF cookie (set here when
// the browser has none).
func (b *browser) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	name := b.cfg.csrfCookieName()
	secret, ok := single(r, name)
	if !ok || !auth.ValidSecret(secret) {
		secret = randomID(32)
	}
	// Over http, scoped to the login path, so the apps behind the proxy never see it; over https
	// the __Host- prefix demands Path=/.
	path := loginPath(r)
	if b.cfg.Secure {
		path = "/"
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: secret, Path: path, HttpOnly: true, Secure: b.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Hour.Seconds())})
	return b.keys.csrfToken("login", secret)
}

// loginCSRFOK checks the posted token against the browser's one CSRF cookie, and that the
// browser does not say the post came from elsewhere.
func (b *browser) loginCSRFOK(r *http.Request, token string) bool {
	secret, ok := single(r, b.cfg.csrfCookieName())
	return ok && auth.ValidSecret(secret) && b.keys.csrfOK(r, token, "login", secret)
}

// postedLogin reads a post of the login's pages (the password step, the code step) and checks
// its CSRF token; it returns the form and its way on (rd, checked). false (with the login form
// shown again) when the form cannot be read or its token is not this browser's.
func (b *browser) postedLogin(w http.ResponseWriter, r *http.Request) (url.Values, string, bool) {
	form, err := web.DecodeForm(w, r)
	if err != nil {
		b.renderLogin(w, r, web.Status(apperr.Code(err)), loginView{Error: "The form could not be read. Please try again."})
		return nil, "", false
	}
	rd := b.rv.Safe(form.Get("rd"))
	if !b.loginCSRFOK(r, form.Get("csrf")) {
		b.renderLogin(w, r, http.StatusForbidden, loginView{RD: rd, Username: form.Get("username"), Error: "Your sign-in form expired. Please try again."})
		return nil, "", false
	}
	return form, rd, true
}

func handleLoginForm(b *browser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// login_hint: the authorization endpoint passes OpenID Connect's on, checked as a username.
		hint := r.URL.Query().Get("login_hint")
		if identity.ValidateUsername(hint) != nil {
			hint = ""
		}
		rd := b.rv.Safe(r.URL.Query().Get("rd"))
		if s, ok := b.notAllowed(r, r.URL.Query().Get("rd")); ok {
			b.writeEdgePage(w, http.StatusForbidden, stepUpView{Denied: true, Username: s.Username})
			return
		}
		b.renderLogin(w, r, http.StatusOK, loginView{RD: rd, Username: hint})
	})
}

func handleLogin(b *browser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, rd, ok := b.postedLogin(w, r)
		if !ok {
			return
		}
		username := form.Get("username")
		view := loginView{RD: rd, Username: username}
		a, err := b.auth.Authenticate(r.Context(), auth.Credentials{
			Username: username, Password: form.Get("password"), Device: b.keys.device(r, username), Deferred: true,
		})
		var signed auth.Signed
		if err == nil {
			signed, err = b.auth.Complete(r.Context(), a, auth.Target{Browser: true, UserAgent: r.UserAgent()})
		}
		if err != nil {
			status, msg := b.loginRefusal(w, r, "browser login", err, "Invalid username or password.")
			view.Error = msg
			b.renderLogin(w, r, status, view)
			return
		}
		if signed.Pending {
			// The password was right; the second factor is the next page's. What is owed lives in
			// a pre-session in the store: the browser holds only its random id.
			http.SetCookie(w, b.pendingCookie(r, signed.Secret, auth.PendingTTL))
			b.renderOTP(w, r, http.StatusOK, loginView{RD: rd})
			return
		}
		b.signedIn(w, r, signed, rd)
	})
}

// signedIn answers a completed browser sign-in: the device cookie (on the login form's path,
// where the password step reads it), the session cookie, and the way on.
func (b *browser) signedIn(w http.ResponseWriter, r *http.Request, signed auth.Signed, rd string) {
	onLogin := r.Clone(r.Context())
	onLogin.URL.Path = loginPath(r)
	http.SetCookie(w, b.keys.deviceCookieFor(onLogin, signed.User, b.cfg.Secure, func() string { return randomID(16) }))
	http.SetCookie(w, b.cfg.cookie(signed.Secret, b.cfg.TTL))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, rd, http.StatusSeeOther)
}

// loginRefusal is what a login page says to err, and with which status: invalid for what the
// user can mend (a 401, with Retry-After when the account's code step is locked), a wait for a throttled attempt or a busy store (with Retry-After), and
// for anything else an apology (the error is logged as what).
func (b *browser) loginRefusal(w http.ResponseWriter, r *http.Request, what string, err error, invalid string) (int, string) {
	switch apperr.Code(err) {
	case apperr.EUNAUTHORIZED, apperr.EINVALID:
		web.SetRetryAfter(w, apperr.RetryAfter(err)) // an account's locked code step says how long
		return http.StatusUnauthorized, invalid
	case apperr.ETHROTTLED, apperr.EUNAVAILABLE:
		web.SetRetryAfter(w, apperr.RetryAfter(err))
		return web.Status(apperr.Code(err)), "Too many attempts or the server is busy. Please wait a moment and try again."
	default:
		b.logger.ErrorContext(r.Context(), what, "err", err)
		return web.Status(apperr.Code(err)), "Something went wrong. Please try again."
	}
}

// pendingCookieName holds a pre-session's id between the login's two steps: __Host- on https.
func (c SessionConfig) pendingCookieName() string {
	if c.Secure {
		return "__Host-jwtidp_pending"
	}
	return "jwtidp_pending"
}

func (b *browser) pendingCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	path := loginPath(r) // /login: the second step posts to /login/otp under it
	if b.cfg.Secure {
		path = "/"
	}
	ck := &http.Cookie{Name: b.cfg.pendingCookieName(), Value: value, Path: path, HttpOnly: true, Secure: b.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge.Seconds())}
	if maxAge <= 0 {
		ck.MaxAge = -1
	}
	return ck
}

// renderOTP writes the second step's form, with the login's CSRF token.
func (b *browser) renderOTP(w http.ResponseWriter, r *http.Request, status int, v loginView) {
	secret, ok := single(r, b.cfg.csrfCookieName())
	if !ok || !auth.ValidSecret(secret) {
		b.renderLogin(w, r, http.StatusForbidden, loginView{RD: v.RD, Error: "Your sign-in form expired. Please try again."})
		return
	}
	v.CSRF, v.Style, v.Action = b.keys.csrfToken("login", secret), template.CSS(loginStyle), "login/otp"
	if strings.HasSuffix(r.URL.Path, "/otp") {
		v.Action = "otp"
	}
	pageHeaders(w, status)
	otpPage.Execute(w, v)
}

// handleLoginOTP is the login's second step: the pre-session's user gives a one-time code (TOTP
// or recovery), throttled on its own counter; success turns the pre-session into a session.
func handleLoginOTP(b *browser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, rd, ok := b.postedLogin(w, r)
		if !ok {
			return
		}
		pendingSecret, _ := single(r, b.cfg.pendingCookieName())
		pre, u, err := b.sessions.Pending(r.Context(), pendingSecret)
		if err != nil {
			if !errors.Is(err, auth.ErrNoSession) {
				b.logger.ErrorContext(r.Context(), "browser login: second step", "err", err)
			}
			http.SetCookie(w, b.pendingCookie(r, "", 0))
			b.renderLogin(w, r, http.StatusUnauthorized, loginView{RD: rd, Error: "Your sign-in expired. Please sign in again."})
			return
		}
		a, err := b.auth.SecondFactor(r.Context(), pre, u, form.Get("otp"), b.keys.device(r, u.Username))
		if err != nil {
			status, msg := b.loginRefusal(w, r, "browser login: second factor", err, "That code is not valid. Please try again.")
			b.renderOTP(w, r, status, loginView{RD: rd, Error: msg})
			return
		}
		signed, err := b.auth.Complete(r.Context(), a, auth.Target{Browser: true, UserAgent: r.UserAgent(), Completes: pre.ID})
		http.SetCookie(w, b.pendingCookie(r, "", 0))
		if err != nil {
			b.renderLogin(w, r, web.Status(apperr.Code(err)), loginView{RD: rd, Error: "Your sign-in expired. Please sign in again."})
			return
		}
		b.signedIn(w, r, signed, rd)
	})
}

// loginPath is the login form's path, from its own request, its second step's or the step-up's.
func loginPath(r *http.Request) string {
	return strings.TrimSuffix(strings.TrimSuffix(r.URL.Path, "/otp"), "/stepup")
}
