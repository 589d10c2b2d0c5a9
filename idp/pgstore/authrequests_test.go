package pgstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/pgstore"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb/pgtest"
)

// warmPool opens n connections of db's pool beforehand, so that goroutines started together
// run their transactions together instead of one after another as connections come up.
func warmPool(t *testing.T, db *pgstore.DB, n int) {
	t.Helper()
	for range n {
		c, err := db.Pool().Acquire(ctx)
		check(t, err)
		defer c.Release()
	}
}

// Concurrent answers to one authorization request whose updaters overlap in time (each takes a
// while) have one winner: the row is locked from the read to the commit, so a consent posted
// twice, or a continue racing it, issues one code. (The suite's race rarely overlaps updaters
// on a fast database.)
func TestSlowConcurrentAnswerOneWinner(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url)
	t0 := time.Now()
	check(t, db.CreateAuthRequest(ctx, identity.AuthRequest{ID: "r1", ClientID: "grafana", RedirectURI: "https://grafana.example/cb",
		Scopes: []string{"openid"}, CreatedAt: t0, ExpiresAt: t0.Add(identity.AuthRequestTTL)}))
	const n = 8
	warmPool(t, db, n)
	hold := queued(t, url, n)
	errAnswered := errors.New("answered")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range n {
		wg.Go(func() {
			_, err := db.UpdateAuthRequest(ctx, "r1", func(r identity.AuthRequest) (identity.AuthRequest, error) {
				hold() // the row's lock, while the others queue on it
				if r.Answered {
					return identity.AuthRequest{}, errAnswered
				}
				r.Answered = true
				return r, nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if !errors.Is(err, errAnswered) {
				t.Errorf("answer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d answers won, want 1", won)
	}
}

// A request's free text that PostgreSQL cannot hold is stored as the bbolt store's JSON keeps
// it (invalid UTF-8 as U+FFFD), NUL too; an id it cannot hold was never stored.
func TestUnstorableAuthRequest(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	t0 := time.Now()
	check(t, db.CreateAuthRequest(ctx, identity.AuthRequest{ID: "r1", ClientID: "grafana", RedirectURI: "https://grafana.example/cb",
		Scopes: []string{"openid"}, State: "s\xff\x00t", LoginHint: "al\xffice", ACRValues: []string{"m\x00fa"}, ExpiresAt: t0.Add(time.Hour)}))
	got, err := db.GetAuthRequest(ctx, "r1")
	check(t, err)
	if got.State != "s\uFFFD\uFFFDt" || got.LoginHint != "al\uFFFDice" || got.ACRValues[0] != "m\uFFFDfa" {
		t.Fatalf("stored %q %q %q", got.State, got.LoginHint, got.ACRValues)
	}
	_, err = db.GetAuthRequest(ctx, "r\x00")
	wantCode(t, "GetAuthRequest", err, apperr.ENOTFOUND)
	_, err = db.UpdateAuthRequest(ctx, "\xff", nil)
	wantCode(t, "UpdateAuthRequest", err, apperr.ENOTFOUND)
}
