package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

//go:embed templates/login.html
var templates embed.FS

var loginPage = template.Must(template.ParseFS(templates, "templates/login.html"))

// The page's only style is inline; the CSP allows exactly it by hash and nothing else.
const loginStyle = `body{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}` +
	`label{display:block;margin-bottom:.25rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}` +
	`button{padding:.5rem 1.5rem;font-size:1rem}.error{color:#a00;font-weight:bold}`

var loginCSP = func() string {
	sum := sha256.Sum256([]byte(loginStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; frame-ancestors 'none'; base-uri 'none'"
}()

const csrfCookie = "jwtidp_csrf"

type loginView struct {
	Style    template.CSS
	Action   string
	CSRF     string
	RD       string
	Username string
	Error    string
}

// renderLogin writes the form with a CSRF token bound to a cookie (double submit): a login
// form posted from another site lacks the cookie's value, so nobody can log a victim into the
// attacker's account (login CSRF).
func renderLogin(w http.ResponseWriter, r *http.Request, secure bool, status int, v loginView) {
	token := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		token = c.Value
	} else {
		var b [32]byte
		rand.Read(b[:])
		token = base64.RawURLEncoding.EncodeToString(b[:])
	}
	// Scoped to the login path: the apps behind the proxy never see it.
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: token, Path: r.URL.Path, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Hour.Seconds())})
	v.CSRF, v.Style, v.Action = token, template.CSS(loginStyle), "login"
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", loginCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	loginPage.Execute(w, v)
}

func handleLoginForm(sess *sessions, rv Redirects) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		renderLogin(w, r, sess.cfg.Secure, http.StatusOK, loginView{RD: rv.Safe(r.URL.Query().Get("rd"))})
	})
}

// refuseLogin answers a browser over the per-client limit with the form and a message.
func refuseLogin(sess *sessions) func(http.ResponseWriter, *http.Request, time.Duration) {
	return func(w http.ResponseWriter, r *http.Request, wait time.Duration) {
		web.SetRetryAfter(w, wait)
		renderLogin(w, r, sess.cfg.Secure, http.StatusTooManyRequests, loginView{Error: "Too many attempts. Please wait a moment and try again."})
	}
}

func handleLogin(logger *slog.Logger, svc *auth.Service, sess *sessions, rv Redirects, clients web.ClientAddrs) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, problem := readForm(w, r)
		if problem != "" {
			renderLogin(w, r, sess.cfg.Secure, http.StatusBadRequest, loginView{Error: "The form could not be read. Please try again."})
			return
		}
		rd := rv.Safe(form.Get("rd"))
		view := loginView{RD: rd, Username: form.Get("username")}
		c, err := r.Cookie(csrfCookie)
		if err != nil || form.Get("csrf") == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form.Get("csrf"))) != 1 {
			view.Error = "Your sign-in form expired. Please try again."
			renderLogin(w, r, sess.cfg.Secure, http.StatusForbidden, view)
			return
		}
		t, err := svc.LoginFor(r.Context(), form.Get("username"), form.Get("password"), clients.Of(r), sess.cfg.TTL)
		if err != nil {
			code := apperr.Code(err)
			switch code {
			case apperr.EUNAUTHORIZED, apperr.EINVALID:
				view.Error = "Invalid username or password."
				code = apperr.EUNAUTHORIZED
			case apperr.ETHROTTLED, apperr.EUNAVAILABLE:
				view.Error = "Too many attempts or the server is busy. Please wait a moment and try again."
				web.SetRetryAfter(w, apperr.RetryAfter(err))
			default:
				logger.ErrorContext(r.Context(), "browser login", "request_id", web.RequestID(r.Context()), "err", err)
				view.Error = "Something went wrong. Please try again."
			}
			renderLogin(w, r, sess.cfg.Secure, web.Status(code), view)
			return
		}
		value := t.AccessToken
		if t.RefreshToken != "" {
			value += cookieSep + t.RefreshToken
		}
		http.SetCookie(w, sess.cfg.cookie(value, time.Until(t.SessionEnds)))
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, rd, http.StatusSeeOther)
	})
}

// handleLogout revokes the session's refresh family and clears the cookie. Its cookie is
// SameSite=Lax, so another site's form cannot log a user out.
func handleLogout(logger *slog.Logger, svc *auth.Service, sess *sessions, rv Redirects, loginURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(sess.cfg.CookieName); err == nil {
			if _, refresh := splitSession(c.Value); refresh != "" {
				if err := svc.Revoke(r.Context(), refresh); err != nil {
					logger.ErrorContext(r.Context(), "logout", "request_id", web.RequestID(r.Context()), "err", err)
				}
			}
		}
		http.SetCookie(w, sess.cfg.cookie("", 0))
		w.Header().Set("Cache-Control", "no-store")
		to := loginURL
		if rd := r.URL.Query().Get("rd"); rd != "" {
			to = rv.Safe(rd)
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	})
}
