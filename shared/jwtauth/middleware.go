package jwtauth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"jwtidp/shared/web"
)

type ctxKey struct{}

// FromContext returns the verified claims the middleware stored.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok
}

// WithClaims returns ctx carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// TokenFromHeader extracts the token from "Authorization: Bearer <t>" or "JWT <t>" (the
// scheme in any case). ok is false when there is no such header; an over-long value yields
// ok with a token that Verify refuses.
func TokenFromHeader(r *http.Request) (string, bool) {
	h := web.Header(r.Header, "Authorization")
	if h == "" {
		return "", false
	}
	if len(h) > MaxTokenBytes+16 {
		return h[:MaxTokenBytes+1], true
	}
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "JWT")) {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Require returns middleware that lets a request through only with a valid token that grants
// scope, answering as RFC 6750 says otherwise: 401 with a challenge when the token is missing
// or invalid, 403 insufficient_scope when the scope is missing, 503 while the issuer's keys are
// unavailable. Bodies use the app envelope and never echo a claim.
func (v *Verifier) Require(realm, scope string) func(http.Handler) http.Handler {
	return v.RequireAMR(realm, scope, "")
}

// RequireAMR is Require that also demands a sign-in method (an RFC 8176 amr value, e.g. "mfa"
// for a second factor): a valid token without it is 401 with RFC 9470's
// error="insufficient_user_authentication", so the client can send the user to sign in again
// with it. "" demands nothing.
func (v *Verifier) RequireAMR(realm, scope, amr string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := TokenFromHeader(r)
			if !ok {
				challenge(w, realm, "", "")
				writeErr(w, http.StatusUnauthorized, "Missing access token")
				return
			}
			claims, err := v.Verify(r.Context(), raw)
			switch {
			case errors.Is(err, ErrKeysUnavailable):
				w.Header().Set("Retry-After", "1")
				writeErr(w, http.StatusServiceUnavailable, "identity provider unavailable")
				return
			case err != nil:
				challenge(w, realm, "invalid_token", "")
				writeErr(w, http.StatusUnauthorized, "Invalid access token")
				return
			case scope != "" && !claims.HasScope(scope):
				challenge(w, realm, "insufficient_scope", scope)
				writeErr(w, http.StatusForbidden, "Insufficient scope")
				return
			case amr != "" && !claims.HasAMR(amr):
				challenge(w, realm, "insufficient_user_authentication", "")
				writeErr(w, http.StatusUnauthorized, "A stronger sign-in is required ("+amr+")")
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
		})
	}
}

func challenge(w http.ResponseWriter, realm, code, scope string) {
	v := `Bearer realm="` + realm + `"`
	if code != "" {
		v += `, error="` + code + `"`
	}
	if scope != "" {
		v += `, scope="` + scope + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	web.WriteJSON(w, status, web.Envelope{Status: "Error", Result: msg})
}
