package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"jwtidp/shared/web"
)

// addRoutes lists every route of the IdP.
func addRoutes(mux *http.ServeMux, d Deps) {
	limit := func(h http.Handler) http.Handler { return d.Limiter.Limit(h, web.RefuseEnvelope) }
	mux.Handle("POST /signup", limit(handleSignup(d.Logger, d.Auth)))
	mux.Handle("POST /auth", limit(handleAuth(d.Logger, d.Auth, d.Clients)))
	mux.Handle("POST /token", d.Limiter.Limit(handleToken(d.Logger, d.Auth), refuseOAuth))
	mux.Handle("POST /revoke", handleRevoke(d.Logger, d.Auth))
	mux.Handle("POST /account/password", d.Verifier.Require("idp", "")(handlePassword(d.Logger, d.Auth)))
	mux.Handle("GET /.well-known/jwks.json", handleJWKS(d.Keys, d.JWKSMaxAge))
	mux.Handle("GET /.well-known/openid-configuration", handleDiscovery(d.Issuer))
	mux.Handle("GET /userinfo", d.Verifier.Require("idp", "")(handleUserinfo()))
	sess := newSessions(d.Session, d.Auth, d.Verifier, d.Logger, d.Now)
	mux.Handle("/verify", handleVerify(sess, d.LoginURL))
	mux.Handle("GET /login", handleLoginForm(sess, d.Redirects))
	mux.Handle("POST /login", d.Limiter.Limit(handleLogin(d.Logger, d.Auth, sess, d.Redirects, d.Clients), refuseLogin(sess)))
	mux.Handle("POST /logout", handleLogout(d.Logger, d.Auth, sess, d.Redirects, d.LoginURL))
	admin := web.RequireAdmin(d.AdminToken)
	mux.Handle("GET /admin/keys", admin(handleKeysList(d.Keys)))
	mux.Handle("POST /admin/keys/rotate", admin(handleKeysRotate(d.Logger, d.Keys)))
	mux.Handle("GET /admin/backup", admin(web.HandleBackup(d.Store, "idp")))
	mux.Handle("GET /healthz", web.HandleHealthz())
	mux.Handle("GET /readyz", web.HandleReadyz(d.Ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/", web.NotFound())
}
