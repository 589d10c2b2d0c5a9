package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"time"

	"jwtidp/idp/keys"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// requireAdmin lets a request through only with "Authorization: Bearer <admin token>". With no
// admin token configured the routes do not exist (404). The comparison is constant-time over
// hashes, so neither the token's content nor its length leaks through timing.
func requireAdmin(adminToken string) func(http.Handler) http.Handler {
	want := sha256.Sum256([]byte(adminToken))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if adminToken == "" {
				web.NotFound().ServeHTTP(w, r)
				return
			}
			given, _ := jwtauth.TokenFromHeader(r)
			got := sha256.Sum256([]byte(given))
			if given == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="idp-admin"`)
				web.WriteJSON(w, http.StatusUnauthorized, web.Envelope{Status: "Error", Result: "Invalid admin token"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

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
