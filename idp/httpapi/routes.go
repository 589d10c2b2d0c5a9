package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"jwtidp/idp/identity"
	"jwtidp/shared/web"
)

// addRoutes lists every route of the IdP, each with its middleware in view: the rate limits
// (limit: the per-client limit answered in the app envelope; tokenLimit: /token's looser one,
// answered as OAuth errors; the browser's routes with their page's refusal — one refusal per
// route, refusals.go), bearer (an IdP access token, jwtauth), firstParty (only the IdP's own sign-in's
// token, of a user still active), admin (an admin credential).
func addRoutes(mux *http.ServeMux, d Deps) {
	envelope := envelopeRefusal(d.Logger)
	limit := func(h http.Handler) http.Handler { return d.Limiter.Limit(h, envelope) }
	// Its own, looser limit: a server refreshing for many users from one address is normal; the
	// routes that check a client secret share it.
	tokenLimit := func(h http.Handler) http.Handler { return d.TokenLimiter.Limit(h, oauthRefusal(d.Logger)) }
	bearer := d.Verifier.Require("idp", "")
	firstParty := func(what string, h http.Handler) http.Handler {
		return bearer(firstPartyOnly(d.Auth.Account, d.Logger, what, h))
	}
	admin := newAdminGuard(d, d.Auth.Admin)
	keys := browserKeys{key: d.BrowserKey}
	b := &browser{cfg: d.Session, keys: keys, sessions: d.Sessions, auth: d.Auth.SignIn, rv: d.Redirects,
		loginURL: d.LoginURL, logger: d.Logger, clients: d.Auth.Grants, hints: d.IDTokenHints, access: d.Access, addrs: d.RemoteAddrs}
	if d.Auth.Mail != nil {
		b.forgot = strings.TrimSuffix(d.Issuer, "/") + "/password/forgot"
	}
	b.upstreams = upstreamButtons(d.UpstreamConfigs)
	upstreams := newUpstreamPages(b, d)
	passkeys := &passkeyPages{browser: b, signIn: d.Auth.SignIn, svc: d.Auth.Account, now: d.Now}
	account := &accountPages{browser: b, svc: d.Auth.Account}
	authorize := newAuthorizeEndpoint(b, d.Auth.Grants, d.Issuer, d.Now, d.Logger, d.Limiter, d.ScopeText)

	// Accounts and tokens for API clients.
	mux.Handle("POST /signup", limit(handleSignup(d.Logger, d.Auth.SignIn)))
	mux.Handle("GET /signup", http.HandlerFunc(handleSignupPage))
	mux.Handle("POST /auth", limit(handleAuth(d.Logger, d.Auth.SignIn, keys, d.Session.Secure)))
	// A forgotten password: a link by mail, then a new password (issue 28).
	mux.Handle("GET /password/forgot", http.HandlerFunc(handleForgotPage))
	mux.Handle("GET /password/reset", http.HandlerFunc(handleResetPage))
	mux.Handle("POST /password/forgot", limit(handleForgotPassword(d.Logger, d.Auth.SignIn)))
	mux.Handle("POST /password/reset", limit(handleResetPassword(b, strings.TrimSuffix(d.Issuer, "/")+"/account", d.Auth.SignIn)))
	mux.Handle("GET /email/verify", http.HandlerFunc(handleVerifyEmailPage))
	mux.Handle("POST /email/verify", limit(handleVerifyEmailLink(d.Logger, d.Auth.Account)))
	mux.Handle("POST /token", tokenLimit(handleToken(d.Logger, d.Auth.Grants)))
	mux.Handle("POST /revoke", handleRevoke(d.Logger, d.Auth.Grants))
	mux.Handle("POST /introspect", tokenLimit(handleIntrospect(d.Logger, d.Auth.Grants, d.Verifier)))
	// Dynamic client registration (RFC 7591/7592), limited as /token is.
	mux.Handle("POST /register", tokenLimit(handleRegister(d.Logger, d.Auth.Grants, d.Issuer)))
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		mux.Handle(m+" /register/{id}", tokenLimit(handleRegistration(d.Logger, d.Auth.Grants, d.Issuer)))
	}
	mux.Handle("GET /.well-known/jwks.json", handleJWKS(d.Keys, d.JWKSMaxAge))
	mux.Handle("GET /.well-known/openid-configuration", handleDiscovery(d.Issuer, d.Scopes))
	userinfo := bearer(handleUserinfo(d.Logger, d.Auth.Account))
	mux.Handle("GET /userinfo", userinfo)
	mux.Handle("POST /userinfo", userinfo) // OpenID Connect Core §5.3.1

	// The account, over the API: the routes that check the current password are limited as the
	// login is.
	mux.Handle("POST /account/password", firstParty("password", handlePassword(d.Logger, d.Auth.Account)))
	mux.Handle("PUT /account/email", limit(firstParty("email", handleSetEmail(d.Logger, d.Auth.Account))))
	mux.Handle("POST /account/totp", limit(firstParty("second factors", handleTOTPEnroll(d.Logger, d.Auth.Account))))
	mux.Handle("POST /account/totp/confirm", limit(firstParty("second factors", handleTOTPConfirm(d.Logger, d.Auth.Account, d.Sessions))))
	mux.Handle("DELETE /account/totp", limit(firstParty("second factors", handleTOTPDisable(d.Logger, d.Auth.Account))))
	mux.Handle("GET /account/sessions", firstParty("sessions", handleAccountSessions(d.Logger, d.Auth.Account)))
	// Limited per client like the login: each end is a store write and an audit event.
	mux.Handle("DELETE /account/sessions/{id}", firstParty("sessions", limit(handleEndAccountSession(d.Logger, d.Auth.Account, d.Sessions))))
	mux.Handle("DELETE /account/passkeys/{id}", firstParty("passkeys", http.HandlerFunc(passkeys.removeBearer)))

	// The browser: forward auth, login, OpenID Connect's pages, the account's pages.
	mux.Handle("/verify", handleVerify(verifyDeps{logger: d.Logger, verifier: d.Verifier, sessions: d.Sessions, edge: d.Sessions,
		cfg: d.Session, loginURL: d.LoginURL, access: d.Access, addrs: d.RemoteAddrs}))
	mux.Handle("GET /login", handleLoginForm(b))
	mux.Handle("POST /login", d.Limiter.Limit(handleLogin(b), b.loginRefused))
	mux.Handle("POST /login/otp", d.Limiter.Limit(handleLoginOTP(b), b.loginRefused))
	// The step-up: a second factor for a one-factor session, for an access rule that asks for two.
	stepUp := &stepUpPages{browser: b, factors: d.Auth.Account, stepUp: d.Auth.SignIn, account: strings.TrimSuffix(d.Issuer, "/") + "/account/passkeys"}
	mux.Handle("GET /login/stepup", http.HandlerFunc(stepUp.page))
	mux.Handle("POST /login/stepup", d.Limiter.Limit(http.HandlerFunc(stepUp.post), b.loginRefused))
	// Sign-in through an upstream OpenID provider (issue 29): the start and the link form are
	// limited as the login is; the callback's state is single use.
	mux.Handle("GET /login/upstream/{id}", d.Limiter.Limit(http.HandlerFunc(upstreams.start), b.loginRefused))
	mux.Handle("GET /login/upstream/{id}/callback", d.Limiter.Limit(http.HandlerFunc(upstreams.callback), b.loginRefused))
	mux.Handle("POST /login/upstream/link", d.Limiter.Limit(http.HandlerFunc(upstreams.link), b.loginRefused))
	mux.Handle("GET /login/passkey.js", http.HandlerFunc(servePasskeyJS))
	mux.Handle("POST /login/passkey/begin", limit(http.HandlerFunc(passkeys.loginBegin)))
	mux.Handle("POST /login/passkey/finish", limit(http.HandlerFunc(passkeys.loginFinish)))
	// The authorization endpoint checks a request; when a page is needed it keeps the request,
	// under the per-client limit, and the pages come back to continue with its id alone.
	mux.Handle("GET /authorize", http.HandlerFunc(authorize.start))
	mux.Handle("POST /authorize", http.HandlerFunc(authorize.start)) // OpenID Connect Core §3.1.2.1
	mux.Handle("GET /authorize/continue", http.HandlerFunc(authorize.resume))
	mux.Handle("POST /authorize/continue", http.HandlerFunc(authorize.consent))
	// The device grant (RFC 8628, issue 30): the device's request, limited as /token is; the
	// person's page, limited per client, each code looked up counted per address (auth).
	device := &devicePages{b: b, svc: d.Auth.Grants, path: strings.TrimSuffix(d.Issuer, "/") + "/device", scopeText: d.ScopeText}
	mux.Handle("POST /device/authorize", tokenLimit(handleDeviceAuthorize(d.Logger, d.Auth.Grants, d.Issuer)))
	mux.Handle("GET /device", d.Limiter.Limit(http.HandlerFunc(device.page), toLogin(d.LoginURL, "")))
	mux.Handle("POST /device", d.Limiter.Limit(b.requireSession(formRefusal, device.answer), formRefusal))
	mux.Handle("GET /logout", handleLogout(b))
	mux.Handle("POST /logout", handleLogout(b))
	// The signed-in person's pages: requireSession resolves the session once and refuses in the
	// route's shape (a page: to the login; a form: 403; a script's fetch: the JSON envelope).
	accountRefusal := toLogin(d.LoginURL, accountPath)
	mux.Handle("GET "+accountPath, b.requireSession(accountRefusal, account.page))
	mux.Handle("POST "+accountPath, d.Limiter.Limit(b.requireSession(accountRefusal, account.form), accountRefusal))
	mux.Handle("GET /account/passkeys", b.requireSession(toLogin(d.LoginURL, ""), passkeys.page))
	mux.Handle("POST /account/passkeys", limit(b.requireSession(formRefusal, passkeys.totpForm)))
	mux.Handle("POST /account/passkeys/register/begin", limit(b.requireSession(envelope, passkeys.registerBegin)))
	mux.Handle("POST /account/passkeys/register/finish", limit(b.requireSession(envelope, passkeys.registerFinish)))
	mux.Handle("POST /account/passkeys/remove", b.requireSession(formRefusal, passkeys.removeForm))

	// Administration.
	mux.Handle("GET /admin/keys", admin(handleKeysList(d.Keys)))
	mux.Handle("POST /admin/keys/rotate", admin(handleKeysRotate(d.Logger, d.Keys)))
	mux.Handle("POST /admin/keys/{kid}/revoke", admin(handleKeysRevoke(d.Logger, d.Keys)))
	mux.Handle("POST /admin/clients", admin(handleClientsCreate(d.Logger, d.Auth.Admin)))
	mux.Handle("GET /admin/clients", admin(handleClientsList(d.Logger, d.Auth.Admin)))
	mux.Handle("GET /admin/clients/{id}", admin(handleClientsGet(d.Logger, d.Auth.Admin)))
	mux.Handle("DELETE /admin/clients/{id}", admin(handleClientsDelete(d.Logger, d.Auth.Admin, d.Sessions)))
	mux.Handle("POST /admin/registration-tokens", admin(handleRegistrationTokenCreate(d.Logger, d.Auth.Admin)))
	mux.Handle("GET /admin/users", admin(handleAdminUsers(d.Logger, d.Auth.Admin)))
	mux.Handle("GET /admin/users/{user}", admin(handleAdminUser(d.Logger, d.Auth.Admin)))
	// Disable, enable, logout and delete change what the edge lets in: this process's caches
	// forget the user at once (forgetting); grant- and revoke-admin are read at every request.
	mux.Handle("POST /admin/users/{user}/disable", admin(handleAdminUserAction(d.Logger, forgetting(d, d.Auth.Admin.DisableUser))))
	mux.Handle("POST /admin/users/{user}/enable", admin(handleAdminUserAction(d.Logger, forgetting(d, d.Auth.Admin.EnableUser))))
	mux.Handle("POST /admin/users/{user}/logout", admin(handleAdminUserAction(d.Logger, forgetting(d, d.Auth.Admin.LogoutUser))))
	mux.Handle("DELETE /admin/users/{user}", admin(handleAdminUserAction(d.Logger, forgetting(d, d.Auth.Admin.DeleteUser))))
	mux.Handle("POST /admin/users/{user}/grant-admin", admin(handleAdminUserAction(d.Logger, setAdmin(d.Auth.Admin, true))))
	mux.Handle("POST /admin/users/{user}/revoke-admin", admin(handleAdminUserAction(d.Logger, setAdmin(d.Auth.Admin, false))))
	mux.Handle("POST /admin/users/{user}/verify-email", admin(handleVerifyEmail(d.Logger, d.Auth.Admin)))
	mux.Handle("POST /admin/users/{user}/reset-password", admin(handleAdminResetPassword(d.Logger, d.Auth.Admin)))
	mux.Handle("POST /admin/invitations", admin(handleInvite(d.Logger, d.Auth.Admin)))
	mux.Handle("GET /admin/invitations", admin(handleInvitations(d.Logger, d.Auth.Admin)))
	mux.Handle("DELETE /admin/invitations/{id}", admin(handleDeleteInvitation(d.Logger, d.Auth.Admin)))
	mux.Handle("POST /admin/users/{user}/reset-mfa", admin(handleResetMFA(d.Logger, d.Auth.Admin, d.Sessions)))
	mux.Handle("POST /admin/usernames/{name}/release", admin(handleReleaseUsername(d.Logger, d.Auth.Admin)))
	mux.Handle("POST /admin/groups", admin(handleGroupsCreate(d.Logger, d.Auth.Admin)))
	mux.Handle("GET /admin/groups", admin(handleGroupsList(d.Logger, d.Auth.Admin)))
	// A group's deletion or a membership changes users' groups: their cached sessions and
	// edge decisions are forgotten, as for the user actions below.
	mux.Handle("DELETE /admin/groups/{name}", admin(handleGroupsDelete(d.Logger, d.Auth.Admin, func(name string) {
		if d.Sessions != nil {
			d.Sessions.ForgetGroup(name)
		}
	})))
	mux.Handle("PUT /admin/groups/{name}/members/{user}", admin(handleGroupMember(d.Logger, forgettingMember(d, d.Auth.Admin.AddMember))))
	mux.Handle("DELETE /admin/groups/{name}/members/{user}", admin(handleGroupMember(d.Logger, forgettingMember(d, d.Auth.Admin.RemoveMember))))
	mux.Handle("GET /admin/audit", admin(handleAudit(d.Logger, d.Auth.Admin, d.Now)))
	mux.Handle("GET /admin/connectors", admin(handleConnectors(d.UpstreamStatuses)))
	mux.Handle("POST /admin/reload", admin(handleReload(d.Logger, d.Reload)))
	// The backup holds every secret of the store (the signing keys, password hashes, TOTP seeds):
	// only the static admin token, the operator's own credential, may take it.
	mux.Handle("GET /admin/backup", web.NewAdminGuard(d.AdminToken, d.RemoteAddrs, d.Now)(web.HandleBackup(d.Store, "idp")))

	// Operations.
	mux.Handle("GET /healthz", web.HandleHealthz())
	mux.Handle("GET /readyz", web.HandleReadyz(d.Ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/", web.NotFound())
}

// userAction is an admin action on the user a route names.
type userAction = func(ctx context.Context, user string) (identity.User, error)

// forgetting runs do and, when it changed the user, drops this process's cached sessions and
// edge decisions of them (d.Sessions may be nil in tests without one).
func forgetting(d Deps, do userAction) userAction {
	return func(ctx context.Context, user string) (identity.User, error) {
		u, err := do(ctx, user)
		if err == nil && d.Sessions != nil {
			d.Sessions.ForgetUser(u.ID)
		}
		return u, err
	}
}

// forgettingMember is forgetting for a change of the user's membership of a group.
func forgettingMember(d Deps, change func(ctx context.Context, group, user string) (identity.User, error)) func(ctx context.Context, group, user string) (identity.User, error) {
	return func(ctx context.Context, group, user string) (identity.User, error) {
		return forgetting(d, func(ctx context.Context, user string) (identity.User, error) { return change(ctx, group, user) })(ctx, user)
	}
}

func setAdmin(svc AdminUsers, admin bool) userAction {
	return func(ctx context.Context, user string) (identity.User, error) { return svc.SetAdmin(ctx, user, admin) }
}
