package upstream

import (
	"log/slog"
	"net/http"

	"jwtidp/shared/apperr"
)

// NewOIDC makes an oidc connector. It must not fail because the upstream is down: discovery
// happens on first use and is retried, so the IdP starts and local sign-in works without it.
func NewOIDC(c Config, redirectURL string, client *http.Client, logger *slog.Logger) (RedirectConnector, error) {
	return nil, apperr.Errorf(apperr.EUNSUPPORTED, "connector %q: oidc connectors are not built yet", c.ID)
}
