// Package httpapi is the IdP's HTTP layer: it translates requests into the use cases of package
// auth and their results back into the responses of API.md, nothing more.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/idp/keys"
	"jwtidp/idp/token"
	"jwtidp/idp/upstream"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// Keys is what the HTTP layer needs of the key manager.
type Keys interface {
	JWKS() ([]byte, string)
	Keys() []identity.SigningKey
	Rotate(ctx context.Context) error
	Revoke(ctx context.Context, kid string) error
	Policy() keys.Policy
}

// Deps are the server's dependencies.
type Deps struct {
	Logger       *slog.Logger
	Registry     *prometheus.Registry
	Auth         *auth.Service
	Keys         Keys
	Verifier     *jwtauth.Verifier // the IdP's own tokens, for /userinfo
	Ready        *web.Readiness
	Issuer       string
	Scopes       []string // the scopes the IdP grants beyond OpenID Connect's, for discovery
	JWKSMaxAge   time.Duration
	AdminToken   string // "" disables the admin routes
	Store        web.Snapshotter
	Session      SessionConfig
	Sessions     *auth.Sessions
	BrowserKey   []byte // signs CSRF tokens and device cookies; from the store, shared by every process
	Redirects    Redirects
	LoginURL     string           // where /verify sends a browser without a session
	Limiter      *web.RateLimiter // per client, on /signup, /auth and POST /login
	TokenLimiter *web.RateLimiter // per client, on /token: looser
	RemoteAddrs  web.ClientAddrs  // who a request comes from (trusted proxies' X-Forwarded-For)
	Now          func() time.Time
	IDTokenHints func(raw string) (token.IDClaims, error) // RP-initiated logout's id_token_hint check
	// Access is the access rules /verify applies, as last loaded; nil (or a nil result): none,
	// every signed-in user passes as before.
	Access func() *access.Policy
	// Reload re-reads the configuration file (clients, scopes, access rules): POST /admin/reload
	// and SIGHUP. nil: there is no file to reload.
	Reload    func(ctx context.Context) error
	ScopeText map[string]string // how the consent page names Scopes (others by name)
	// Upstreams are the oidc connectors by id, UpstreamConfigs every connector in the file's
	// order (the login page's buttons), UpstreamStatuses what each last did (issue 29).
	Upstreams        map[string]upstream.RedirectConnector
	UpstreamConfigs  []upstream.Config
	UpstreamStatuses *upstream.Statuses
}

// NewServer returns the IdP's handler with every route and the common middleware.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, d)
	// The client's address goes into the context (auth.WithClientIP) from the common middleware,
	// which resolves it once for the access log too.
	return web.MiddlewareWithClient(mux, d.Logger, web.NewHTTPMetrics(d.Registry), d.RemoteAddrs, auth.WithClientIP)
}
