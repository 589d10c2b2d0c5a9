package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"jwtidp/idp/keys"
	"jwtidp/shared/web"
)

// KeyInfo is a signing key as the admin routes show it: never its private part.
type KeyInfo struct {
	KID       string     `json:"kid"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	SignsFrom *time.Time `json:"signs_from,omitempty"`
	RetiresAt *time.Time `json:"retires_at,omitempty"`
	DeleteAt  *time.Time `json:"delete_at,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func keyInfos(k Keys) []KeyInfo {
	pol := k.Policy()
	var out []KeyInfo
	for _, key := range k.Keys() {
		retires, deletes := keys.Plan(key, pol)
		out = append(out, KeyInfo{
			KID: key.ID, State: string(key.State), CreatedAt: key.CreatedAt,
			SignsFrom: optTime(key.SignsFrom), RetiresAt: optTime(retires), DeleteAt: optTime(deletes),
		})
	}
	return out
}

func handleKeysList(k Keys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.Success(w, http.StatusOK, keyInfos(k))
	})
}

func handleKeysRotate(logger *slog.Logger, k Keys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := k.Rotate(r.Context()); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusOK, keyInfos(k))
	})
}

// handleKeysRevoke removes a compromised key from the JWKS at once (keys.Revoke) and answers
// with the key list after it; an unknown kid is a 404.
func handleKeysRevoke(logger *slog.Logger, k Keys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := k.Revoke(r.Context(), r.PathValue("kid")); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusOK, keyInfos(k))
	})
}
