package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// regToken is a valid initial access token of uses uses, expiring an hour after t0.
func regToken(id string, uses int) identity.RegistrationToken {
	return identity.RegistrationToken{ID: id, Hash: "h-" + id, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), UsesLeft: uses}
}

func wantSpent(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, identity.ErrRegistrationToken) {
		t.Fatalf("%s: %v, want ErrRegistrationToken", what, err)
	}
}

func testRegistrationTokenUses(t *testing.T, s Store) {
	tok := regToken("r1", 2)
	tok.CreatedAt, tok.ExpiresAt = tok.CreatedAt.In(zone), tok.ExpiresAt.In(zone)
	create(t, s.CreateRegistrationToken, tok)
	wantCode(t, "the same hash again", s.CreateRegistrationToken(ctx, regToken("r1", 1)), apperr.ECONFLICT)
	got, err := s.SpendRegistrationToken(ctx, "h-r1", t0)
	check(t, err)
	want := regToken("r1", 1)
	equal(t, "the first use", got, want)
	got, err = s.SpendRegistrationToken(ctx, "h-r1", t0.Add(time.Minute))
	check(t, err)
	want.UsesLeft = 0
	equal(t, "the last use", got, want)
	_, err = s.SpendRegistrationToken(ctx, "h-r1", t0.Add(2*time.Minute))
	wantSpent(t, "a third use", err)
	_, err = s.SpendRegistrationToken(ctx, "r1", t0)
	wantSpent(t, "by id, not hash", err)
	_, err = s.SpendRegistrationToken(ctx, "h-\x00\xff", t0)
	wantSpent(t, "a hash no store holds", err)

	create(t, s.CreateRegistrationToken, regToken("r2", 5))
	_, err = s.SpendRegistrationToken(ctx, "h-r2", t0.Add(time.Hour))
	wantSpent(t, "at its expiry", err)
	got, err = s.SpendRegistrationToken(ctx, "h-r2", t0.Add(time.Hour-time.Second))
	check(t, err)
	if got.UsesLeft != 4 {
		t.Fatalf("after the refused use and one more: %d uses left, want 4 (a refusal spends nothing)", got.UsesLeft)
	}
}

func testCreateRegistrationTokenRefusals(t *testing.T, s Store) {
	for name, change := range map[string]func(*identity.RegistrationToken){
		"no hash":           func(r *identity.RegistrationToken) { r.Hash = "" },
		"no id":             func(r *identity.RegistrationToken) { r.ID = "" },
		"no use":            func(r *identity.RegistrationToken) { r.UsesLeft = 0 },
		"expired when made": func(r *identity.RegistrationToken) { r.ExpiresAt = r.CreatedAt },
	} {
		r := regToken("bad", 1)
		change(&r)
		wantCode(t, name, s.CreateRegistrationToken(ctx, r), apperr.EINVALID)
	}
	_, err := s.SpendRegistrationToken(ctx, "h-bad", t0)
	wantSpent(t, "a refused token", err)
}

// Two replicas spending the last uses of a token: exactly as many win as it had uses.
func testConcurrentSpendRegistrationToken(t *testing.T, s Store) {
	create(t, s.CreateRegistrationToken, regToken("r1", 3))
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	for i := range 20 {
		wg.Go(func() {
			_, err := s.SpendRegistrationToken(ctx, "h-r1", t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, identity.ErrRegistrationToken):
				refused++
			default:
				t.Errorf("use %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 3 || refused != 17 {
		t.Errorf("%d uses won and %d were refused, want 3 and 17", won, refused)
	}
}

func testDeleteDeadRegistrationTokens(t *testing.T, s Store) {
	old, live := regToken("r1", 1), regToken("r2", 1)
	old.ExpiresAt = t0.Add(time.Minute)
	create(t, s.CreateRegistrationToken, old, live)
	n, err := s.DeleteDeadRegistrationTokens(ctx, t0.Add(time.Minute))
	check(t, err)
	if n != 1 {
		t.Fatalf("DeleteDeadRegistrationTokens = %d, want 1", n)
	}
	_, err = s.SpendRegistrationToken(ctx, "h-r2", t0)
	check(t, err)
}
