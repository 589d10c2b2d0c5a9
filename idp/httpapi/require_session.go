package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

// signedIn is the browser session a request resolved to, and its cookie's secret (which the
// session's CSRF tokens are derived from).
type signedIn struct {
	auth.Resolved
	secret string
}

type sessionKey struct{}

// requireSession is the browser's counterpart of jwtauth.Require: it resolves the session
// cookie once and puts the session in the request's context (sessionOf) for next. Without a
// live session, or when the store cannot say, refuse answers in the shape of the route: a page
// (toLogin), a form post (formRefusal), a script's fetch (jsonRefusal).
func (b *browser) requireSession(refuse func(http.ResponseWriter, *http.Request, error), next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := b.cfg.secret(r)
		s, err := b.sessions.Resolve(r.Context(), secret)
		if err != nil {
			if !errors.Is(err, auth.ErrNoSession) {
				b.logger.ErrorContext(r.Context(), "resolve session", "route", r.Pattern, "err", err)
				err = apperr.Errorf(apperr.EUNAVAILABLE, "Please try again.")
			}
			refuse(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, signedIn{s, secret})))
	})
}

// sessionOf is the session requireSession put in the request's context.
func sessionOf(r *http.Request) signedIn {
	s, _ := r.Context().Value(sessionKey{}).(signedIn)
	return s
}

// toLogin refuses a page: no session is a 303 to the login page, which comes back to rd (the
// page's own URL when rd is ""); a store failure is 503.
func toLogin(loginURL, rd string) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		noStore(w)
		if !errors.Is(err, auth.ErrNoSession) {
			http.Error(w, "Please try again.", http.StatusServiceUnavailable)
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
// so it is answered as a stale form (403); a store failure is 503.
func formRefusal(w http.ResponseWriter, _ *http.Request, err error) {
	noStore(w)
	if !errors.Is(err, auth.ErrNoSession) {
		http.Error(w, "Please try again.", http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "Please reload the page and try again.", http.StatusForbidden)
}

// jsonRefusal refuses a script's fetch with the app envelope: 401 without a session, 503 when
// the store fails.
func (b *browser) jsonRefusal(w http.ResponseWriter, r *http.Request, err error) {
	web.Error(w, r, b.logger, err)
}
