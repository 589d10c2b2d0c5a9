package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"jwtidp/shared/apperr"
)

// RequireAdmin lets a request through only with "Authorization: Bearer <admin token>". With no
// admin token configured the routes do not exist (404). The comparison is constant-time over
// SHA-256 digests, so neither the token's content nor its length leaks through timing.
// It does not limit guesses: NewAdminGuard does.
func RequireAdmin(adminToken string) func(http.Handler) http.Handler {
	return adminGuard(adminToken, ClientAddrs{}, nil)
}

// adminFailureBurst failed admin-token attempts are allowed per client and minute.
const adminFailureBurst = 5

// NewAdminGuard is RequireAdmin that also limits guessing: each client (by ClientKey of
// clients.Of) may fail at most 5 times a minute (a token bucket of 5, refilled at one every
// 12 seconds). Beyond that it is answered 429 with Retry-After, without its token being looked
// at. Only failures count, and only against the client that made them, so the right token from
// another client is never refused because of them. The table of clients is bounded like
// RateLimiter's. A nil now is time.Now.
func NewAdminGuard(adminToken string, clients ClientAddrs, now func() time.Time) func(http.Handler) http.Handler {
	if now == nil {
		now = time.Now
	}
	return adminGuard(adminToken, clients, NewRateLimiter(float64(adminFailureBurst)/time.Minute.Seconds(), adminFailureBurst, clients, now))
}

func adminGuard(adminToken string, clients ClientAddrs, failures *RateLimiter) func(http.Handler) http.Handler {
	want := sha256.Sum256([]byte(adminToken))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if adminToken == "" {
				NotFound().ServeHTTP(w, r)
				return
			}
			ok, wait, settle := failures.attempt(ClientKey(clients.Of(r)))
			if !ok {
				SetRetryAfter(w, wait)
				WriteJSON(w, http.StatusTooManyRequests, Envelope{Status: "Error", Result: "Too many failed admin attempts; retry later"})
				return
			}
			scheme, given, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			got := sha256.Sum256([]byte(given))
			if !strings.EqualFold(scheme, "Bearer") || given == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				settle(true)
				w.Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
				WriteJSON(w, http.StatusUnauthorized, Envelope{Status: "Error", Result: "Invalid admin token"})
				return
			}
			settle(false)
			next.ServeHTTP(w, r)
		})
	}
}

// Snapshotter writes a consistent copy of a store while it runs.
type Snapshotter interface {
	Snapshot(w io.Writer) (int64, error)
}

// SnapshotterOf is store's online backup when it has one (bbolt), nil otherwise (PostgreSQL,
// which pg_dump backs up): what HandleBackup takes.
func SnapshotterOf(store any) Snapshotter {
	if s, ok := store.(Snapshotter); ok {
		return s
	}
	return nil
}

// HandleBackup streams a consistent snapshot of the store (bbolt's Tx.WriteTo inside a read
// transaction: writers carry on meanwhile) as a file download.
// A nil s is a store this route cannot copy (PostgreSQL, backed up with pg_dump): 404 saying so.
func HandleBackup(s Snapshotter, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s == nil {
			Error(w, r, nil, apperr.Errorf(apperr.ENOTFOUND, "This %s keeps its data in PostgreSQL: back it up with pg_dump (see the README)", name))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.db"`, name, time.Now().UTC().Format("20060102T150405Z")))
		w.Header().Set("Cache-Control", "no-store")
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Now().Add(10 * time.Minute)) // a large store takes longer than the server's write timeout
		if _, err := s.Snapshot(w); err != nil {
			// Headers are gone; cutting the connection tells the client the copy is incomplete.
			panic(http.ErrAbortHandler)
		}
	})
}
