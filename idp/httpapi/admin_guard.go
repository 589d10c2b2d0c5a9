package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// AdminCheck is what the admin guard needs of the use cases: whether a user may use an admin
// credential now.
type AdminCheck interface {
	IsAdmin(ctx context.Context, sub string) (bool, error)
}

// newAdminGuard lets a request through with an admin credential and names its actor for the
// audit trail: an access token of the IdP's own sign-in with the idp:admin scope, of a user
// flagged admin and not disabled as stored now (actor "user:<sub>"); or the static
// --admin-token (actor "admin-token"), guarded as web.NewAdminGuard guards it — 404 when none
// is configured, 401 and a limit on guesses otherwise. A valid access token that is not an admin
// credential is 403.
func newAdminGuard(d Deps, users AdminCheck) func(http.Handler) http.Handler {
	static := web.NewAdminGuard(d.AdminToken, d.RemoteAddrs, d.Now)
	return func(next http.Handler) http.Handler {
		byStatic := static(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(auth.WithActor(r.Context(), auth.ActorAdminToken)))
		}))
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := bearerJWT(r)
			if !ok || d.Verifier == nil {
				byStatic.ServeHTTP(w, r)
				return
			}
			c, err := d.Verifier.Verify(r.Context(), raw)
			if err != nil {
				byStatic.ServeHTTP(w, r) // not one of ours: judged (and counted) as a wrong admin token
				return
			}
			// An admin credential is for the IdP itself (aud: the issuer) and has the scope: a
			// login's ordinary token does not become one by a scope configured by mistake.
			if c.ClientID != identity.FirstPartyClientID || !c.HasScope(auth.AdminScope) || !slices.Contains(c.Audience, d.Issuer) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="admin", error="insufficient_scope", scope="`+auth.AdminScope+`"`)
				web.WriteJSON(w, http.StatusForbidden, web.Envelope{Status: "Error", Result: "An admin credential is required: a token with the " + auth.AdminScope + " scope"})
				return
			}
			admin, err := users.IsAdmin(r.Context(), c.Subject)
			if err != nil {
				web.Error(w, r, d.Logger, err)
				return
			}
			if !admin {
				web.WriteJSON(w, http.StatusForbidden, web.Envelope{Status: "Error", Result: "Not an administrator"})
				return
			}
			ctx := jwtauth.WithClaims(auth.WithActor(r.Context(), auth.UserActor(c.Subject)), c)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// bearerJWT is the Bearer credential when it has the shape of a JWT (three dot-separated parts).
func bearerJWT(r *http.Request) (string, bool) {
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.Count(raw, ".") != 2 {
		return "", false
	}
	return raw, true
}
