package httpapi

import (
	"net/http"

	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// addAccountRoutes adds the routes of a user's account and its claims: /userinfo, the email,
// introspection, and the admin's email verification.
func addAccountRoutes(mux *http.ServeMux, d Deps, admin func(http.Handler) http.Handler) {
	mux.Handle("GET /userinfo", d.Verifier.Require("idp", "")(handleUserinfo()))
}

func handleUserinfo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := jwtauth.FromContext(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		web.WriteJSON(w, http.StatusOK, map[string]string{"sub": c.Subject, "preferred_username": c.PreferredUsername})
	})
}
