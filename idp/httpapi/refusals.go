package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

// A refusal answers a request that a middleware stops before its handler — over the per-client
// limit (web.SlowDown: ETHROTTLED with Retry-After), without a browser session
// (auth.ErrNoSession), or because the store cannot say (EUNAVAILABLE) — in the shape of the
// route: routes.go picks one per route, and the limiter and requireSession both answer through
// it. The shapes are the contracts' own: the app's JSON envelope, RFC 6749 §5.2's error, a
// page, a page's form post, and the login form.
type refusal = func(w http.ResponseWriter, r *http.Request, err error)

// envelopeRefusal answers in the app envelope (web.Error): 429 with Retry-After, 401, 503.
func envelopeRefusal(logger *slog.Logger) refusal {
	return func(w http.ResponseWriter, r *http.Request, err error) { web.Error(w, r, logger, err) }
}

// oauthRefusal answers in RFC 6749 §5.2's shape: temporarily_unavailable, with Retry-After.
func oauthRefusal(logger *slog.Logger) refusal {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if apperr.Code(err) == apperr.ETHROTTLED {
			web.SetRetryAfter(w, apperr.RetryAfter(err))
			writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable", "too many requests; slow down")
			return
		}
		tokenFailure(w, r, logger, "refused", err)
	}
}

// toLogin refuses a page: no session is a 303 to the login page, which comes back to rd (the
// page's own URL when rd is ""); anything else is pageError's.
func toLogin(loginURL, rd string) refusal {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		noStore(w)
		if !errors.Is(err, auth.ErrNoSession) {
			pageError(w, err)
			return
		}
		back := rd
		if back == "" {
			back = r.URL.RequestURI()
		}
		http.Redirect(w, r, loginURL+"?rd="+url.QueryEscape(back), http.StatusSeeOther)
	}
}

// formRefusal refuses a page's form post: without a session its token cannot be right either,
// so it is answered as a stale form (403); anything else is pageError's.
func formRefusal(w http.ResponseWriter, _ *http.Request, err error) {
	noStore(w)
	if !errors.Is(err, auth.ErrNoSession) {
		pageError(w, err)
		return
	}
	http.Error(w, "Please reload the page and try again.", http.StatusForbidden)
}

// pageError is a page's answer to a wait: 429 when the client is over the limit, else 503
// (the store cannot say), with Retry-After when known.
func pageError(w http.ResponseWriter, err error) {
	web.SetRetryAfter(w, apperr.RetryAfter(err))
	if apperr.Code(err) == apperr.ETHROTTLED {
		http.Error(w, "Too many requests. Please wait a moment and try again.", http.StatusTooManyRequests)
		return
	}
	web.ShedConnection(w)
	http.Error(w, "Please try again.", http.StatusServiceUnavailable)
}

// loginRefused answers on the login form itself, with loginRefusal's message.
func (b *browser) loginRefused(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := b.loginRefusal(w, r, "browser login", err, "")
	if apperr.Code(err) == apperr.ETHROTTLED {
		msg = "Too many attempts. Please wait a moment and try again." // the limiter's, as before
	}
	b.renderLogin(w, r, status, loginView{Error: msg})
}
