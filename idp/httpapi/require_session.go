package httpapi

import (
	"context"
	"errors"
	"net/http"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
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
// (toLogin), a form post (formRefusal), a script's fetch (envelopeRefusal): refusals.go.
func (b *browser) requireSession(refuse refusal, next http.HandlerFunc) http.Handler {
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
