package storetest

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func assertion(client, jti string, exp time.Time) identity.UsedAssertion {
	return identity.UsedAssertion{ClientID: client, JTI: jti, ExpiresAt: exp}
}

// testUseAssertion: a jti is taken once per client until it expires; another client's same
// jti is its own; an expired use is replaced; a bad one is EINVALID and takes nothing.
func testUseAssertion(t *testing.T, s Store) {
	exp := t0.Add(5 * time.Minute).In(zone)
	check(t, s.UseAssertion(ctx, assertion("c1", "j1", exp), t0))
	wantIs(t, "the same jti again", s.UseAssertion(ctx, assertion("c1", "j1", exp.Add(time.Hour)), t0.Add(time.Minute)), identity.ErrAssertionReplayed)
	wantCode(t, "the same jti again", s.UseAssertion(ctx, assertion("c1", "j1", exp), t0), apperr.ECONFLICT)
	check(t, s.UseAssertion(ctx, assertion("c2", "j1", exp), t0))
	check(t, s.UseAssertion(ctx, assertion("c1", "j2", exp), t0))
	// A microsecond before the expiry it is still live; at it, free again, until the new expiry.
	wantIs(t, "just before expiry", s.UseAssertion(ctx, assertion("c1", "j1", exp.Add(time.Hour)), exp.Add(-time.Microsecond)), identity.ErrAssertionReplayed)
	check(t, s.UseAssertion(ctx, assertion("c1", "j1", exp.Add(time.Hour)), exp))
	wantIs(t, "after the renewal", s.UseAssertion(ctx, assertion("c1", "j1", exp.Add(2*time.Hour)), exp.Add(30*time.Minute)), identity.ErrAssertionReplayed)

	for name, bad := range map[string]identity.UsedAssertion{
		"no client":    assertion("", "j9", exp),
		"no jti":       assertion("c1", "", exp),
		"long jti":     assertion("c1", strings.Repeat("x", identity.MaxJTI+1), exp),
		"control char": assertion("c1", "j\x009", exp),
		"no expiry":    {ClientID: "c1", JTI: "j9"},
	} {
		wantCode(t, name, s.UseAssertion(ctx, bad, t0), apperr.EINVALID)
	}
	check(t, s.UseAssertion(ctx, assertion("c1", "j9", exp), t0)) // the refusals took nothing
}

// testConcurrentUseAssertionOneWinner: of many uses of one jti at once, exactly one is
// accepted (two replicas cannot both accept a replay).
func testConcurrentUseAssertionOneWinner(t *testing.T, s Store) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	for i := range 20 {
		wg.Go(func() {
			err := s.UseAssertion(ctx, assertion("c1", "j1", t0.Add(time.Minute)), t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, identity.ErrAssertionReplayed):
				refused++
			default:
				t.Errorf("use %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 1 || refused != 19 {
		t.Errorf("%d uses won and %d were refused, want 1 and 19", won, refused)
	}
}

// testDeleteExpiredAssertions: the collector removes exactly the uses expired at now, and
// those jtis are free again.
func testDeleteExpiredAssertions(t *testing.T, s Store) {
	check(t, s.UseAssertion(ctx, assertion("c1", "old", t0.Add(time.Minute)), t0))
	check(t, s.UseAssertion(ctx, assertion("c2", "old", t0.Add(2*time.Minute)), t0))
	check(t, s.UseAssertion(ctx, assertion("c1", "live", t0.Add(time.Hour)), t0))
	n, err := s.DeleteExpiredAssertions(ctx, t0.Add(2*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredAssertions = %d, %v; want the 2 expired", n, err)
	}
	if n, err := s.DeleteExpiredAssertions(ctx, t0.Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("DeleteExpiredAssertions again = %d, %v; want 0", n, err)
	}
	wantIs(t, "the live one", s.UseAssertion(ctx, assertion("c1", "live", t0.Add(2*time.Hour)), t0.Add(3*time.Minute)), identity.ErrAssertionReplayed)
}
