package pgstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/pgdb/pgtest"
)

// Concurrent uses of one link whose updaters overlap in time have one winner: the row is
// locked from the read to the commit, so a reset link followed twice at once sets one
// password. (The suite's race rarely overlaps updaters on a fast database.)
func TestSlowConcurrentUseLinkOneWinner(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url)
	t0 := time.Now()
	check(t, db.CreateLink(ctx, identity.Link{ID: "l1", Hash: "h1", Kind: identity.LinkResetPassword, UserID: "u1",
		CreatedAt: t0, ExpiresAt: t0.Add(identity.ResetPasswordTTL)}))
	const n = 8
	warmPool(t, db, n)
	hold := queued(t, url, n)
	errUsed := errors.New("used")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range n {
		wg.Go(func() {
			_, err := db.UseLink(ctx, "h1", func(l identity.Link) (identity.Link, error) {
				hold() // the row's lock, while the others queue on it
				if !l.UsedAt.IsZero() {
					return identity.Link{}, errUsed
				}
				l.UsedAt = t0
				return l, nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if !errors.Is(err, errUsed) {
				t.Errorf("use %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d uses won, want 1", won)
	}
}
