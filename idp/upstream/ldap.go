package upstream

import (
	"log/slog"

	"jwtidp/shared/apperr"
)

// NewLDAP makes an ldap connector (its secret files read by Config.Load). It does not connect:
// a directory that is down at start fails its sign-ins, not the IdP.
func NewLDAP(c Config, logger *slog.Logger) (PasswordConnector, error) {
	return nil, apperr.Errorf(apperr.EUNSUPPORTED, "connector %q: ldap connectors are not built yet", c.ID)
}
