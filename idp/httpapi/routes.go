package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"jwtidp/shared/web"
)

// addRoutes lists every route of the IdP.
func addRoutes(mux *http.ServeMux, d Deps) {
	limit := func(h http.Handler) http.Handler { return d.Limiter.Limit(h, web.RefuseEnvelope) }
	keys := browserKeys{key: d.BrowserKey}
	b := &browser{cfg: d.Session, keys: keys, sessions: d.Sessions, auth: d.Auth, rv: d.Redirects,
		remotes: d.RemoteAddrs, loginURL: d.LoginURL, logger: d.Logger, clients: d.Auth, hints: d.IDTokenHints}
	mux.Handle("POST /signup", limit(handleSignup(d.Logger, d.Auth)))
	mux.Handle("POST /auth", limit(handleAuth(d.Logger, d.Auth, d.RemoteAddrs, keys, d.Session.Secure)))
	// Its own, looser limit: a server refreshing for many users from one address is normal.
	mux.Handle("POST /token", d.TokenLimiter.Limit(handleToken(d.Logger, d.Auth), refuseOAuth))
	mux.Handle("POST /revoke", handleRevoke(d.Logger, d.Auth))
	mux.Handle("POST /account/password", d.Verifier.Require("idp", "")(firstPartyOnly(d.Auth, d.Logger, "password", handlePassword(d.Logger, d.Auth, d.RemoteAddrs))))
	mux.Handle("GET /.well-known/jwks.json", handleJWKS(d.Keys, d.JWKSMaxAge))
	mux.Handle("GET /.well-known/openid-configuration", handleDiscovery(d.Issuer, d.Scopes))
	mux.Handle("/verify", handleVerify(d.Logger, d.Verifier, d.Sessions, d.Sessions, d.Session, d.LoginURL))
	mux.Handle("GET /login", handleLoginForm(b))
	mux.Handle("POST /login", d.Limiter.Limit(handleLogin(b), refuseLogin(b)))
	mux.Handle("POST /login/otp", d.Limiter.Limit(handleLoginOTP(b), refuseLogin(b)))
	addPasskeyRoutes(mux, d, b)
	addAccountPageRoutes(mux, d, b)
	authorize := newAuthorizeEndpoint(b, d.Auth, d.Issuer, d.Now, d.Logger)
	mux.Handle("GET /authorize", authorize)
	mux.Handle("POST /authorize", authorize)
	mux.Handle("GET /logout", handleLogout(b))
	mux.Handle("POST /logout", handleLogout(b))
	admin := newAdminGuard(d, d.Auth)
	mux.Handle("GET /admin/keys", admin(handleKeysList(d.Keys)))
	mux.Handle("POST /admin/keys/rotate", admin(handleKeysRotate(d.Logger, d.Keys)))
	mux.Handle("POST /admin/keys/{kid}/revoke", admin(handleKeysRevoke(d.Logger, d.Keys)))
	mux.Handle("POST /admin/clients", admin(handleClientsCreate(d.Logger, d.Auth)))
	mux.Handle("GET /admin/clients", admin(handleClientsList(d.Logger, d.Auth)))
	mux.Handle("GET /admin/clients/{id}", admin(handleClientsGet(d.Logger, d.Auth)))
	mux.Handle("DELETE /admin/clients/{id}", admin(handleClientsDelete(d.Logger, d.Auth, d.Sessions)))
	// The backup holds every secret of the store (the signing keys, password hashes, TOTP seeds):
	// only the static admin token, the operator's own credential, may take it.
	mux.Handle("GET /admin/backup", web.NewAdminGuard(d.AdminToken, d.RemoteAddrs, d.Now)(web.HandleBackup(d.Store, "idp")))
	mux.Handle("GET /admin/audit", admin(handleAudit(d.Logger, d.Auth, d.Now)))
	addAccountRoutes(mux, d, admin)
	addAdminUserRoutes(mux, d, admin)
	addAccountSessionRoutes(mux, d)
	mux.Handle("GET /healthz", web.HandleHealthz())
	mux.Handle("GET /readyz", web.HandleReadyz(d.Ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/", web.NotFound())
}
