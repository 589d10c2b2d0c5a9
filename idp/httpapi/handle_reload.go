package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

// handleReload is POST /admin/reload: the configuration file re-read (Deps.Reload). A file
// that does not check is refused with its mistakes (400) and the running configuration stays;
// without a file (no --config) there is nothing to reload (404).
func handleReload(logger *slog.Logger, reload func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reload == nil {
			web.Error(w, r, logger, apperr.Errorf(apperr.ENOTFOUND, "There is no configuration file to reload: the IdP was started without --config"))
			return
		}
		if err := reload(r.Context()); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusOK, map[string]bool{"reloaded": true})
	})
}
