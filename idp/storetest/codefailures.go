package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
)

// RunCodeFailureTests holds a CodeFailureStore that is not a whole Store (auth's in-memory
// fallback) to the contract RunTests holds the backends to. newStore returns a fresh, empty
// one for each subtest.
func RunCodeFailureTests(t *testing.T, newStore func(t *testing.T) identity.CodeFailureStore) {
	t.Run("RoundTrip", func(t *testing.T) { testCodeFailuresRoundTrip(t, newStore(t)) })
	t.Run("ConcurrentUpdatesAllCounted", func(t *testing.T) { s := newStore(t); testCodeFailuresConcurrent(t, s, s) })
	t.Run("DeleteStale", func(t *testing.T) { testCodeFailuresStale(t, newStore(t)) })
}

// testCodeFailuresRoundTrip: every field reads back as stored, per user; the zero counter
// deletes; the updater sees the zero counter for a user without one.
func testCodeFailuresRoundTrip(t *testing.T, s identity.CodeFailureStore) {
	ctx := context.Background()
	want := identity.ThrottleCounter{First: t0, Until: t0.Add(15 * time.Minute), Last: t0.Add(time.Second),
		Touched: t0.Add(2 * time.Second), Failures: 7, Lockouts: 2}
	got, err := s.UpdateCodeFailures(ctx, "u1", func(c identity.ThrottleCounter) identity.ThrottleCounter {
		if c != (identity.ThrottleCounter{}) {
			t.Errorf("a user without a counter: updater got %+v, want the zero counter", c)
		}
		return want
	})
	if err != nil || got != want {
		t.Fatalf("UpdateCodeFailures = %+v, %v; want %+v", got, err, want)
	}
	read := func(user string) identity.ThrottleCounter {
		t.Helper()
		var seen identity.ThrottleCounter
		if _, err := s.UpdateCodeFailures(ctx, user, func(c identity.ThrottleCounter) identity.ThrottleCounter { seen = c; return c }); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	if c := read("u1"); c != want {
		t.Fatalf("read back %+v, want %+v (times in UTC, to the microsecond)", c, want)
	}
	if c := read("u2"); c != (identity.ThrottleCounter{}) {
		t.Fatalf("another user's counter: %+v, want none", c)
	}
	// Times given in another zone come back as the same instants in UTC.
	inZone := identity.ThrottleCounter{First: t0.In(zone), Touched: t0.In(zone), Failures: 1}
	if _, err := s.UpdateCodeFailures(ctx, "u2", func(identity.ThrottleCounter) identity.ThrottleCounter { return inZone }); err != nil {
		t.Fatal(err)
	}
	if c := read("u2"); !c.First.Equal(t0) || c.First.Location() != time.UTC || c.Failures != 1 {
		t.Fatalf("a counter stored with times in %v read back as %+v", zone, c)
	}
	if _, err := s.UpdateCodeFailures(ctx, "u1", func(identity.ThrottleCounter) identity.ThrottleCounter { return identity.ThrottleCounter{} }); err != nil {
		t.Fatal(err)
	}
	if c := read("u1"); c != (identity.ThrottleCounter{}) {
		t.Fatalf("after storing the zero counter: %+v, want none", c)
	}
	if c := read("u2"); c.Failures != 1 {
		t.Fatalf("deleting u1's counter touched u2's: %+v", c)
	}
}

// testCodeFailuresConcurrent: updates of one user's counter through a and b (one store, or two
// processes on one database) at once lose nothing — the per-account count that distributed
// guessing is measured by.
func testCodeFailuresConcurrent(t *testing.T, a, b identity.CodeFailureStore) {
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, err := s.UpdateCodeFailures(ctx, "shared", func(c identity.ThrottleCounter) identity.ThrottleCounter {
				c.Failures++
				c.First, c.Touched = t0, t0
				return c
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.UpdateCodeFailures(ctx, "shared", func(c identity.ThrottleCounter) identity.ThrottleCounter { return c })
	if err != nil || got.Failures != n {
		t.Fatalf("counted %d of %d concurrent failures (%v)", got.Failures, n, err)
	}
}

func testCodeFailuresStale(t *testing.T, s identity.CodeFailureStore) {
	ctx := context.Background()
	for i := range 5 {
		touched := t0.Add(time.Duration(i) * time.Hour)
		if _, err := s.UpdateCodeFailures(ctx, fmt.Sprint("user", i), func(identity.ThrottleCounter) identity.ThrottleCounter {
			return identity.ThrottleCounter{Failures: 1, First: touched, Touched: touched}
		}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteStaleCodeFailures(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteStaleCodeFailures = %d, %v; want the 2 touched before the cut", n, err)
	}
	for i := range 5 {
		c, err := s.UpdateCodeFailures(ctx, fmt.Sprint("user", i), func(c identity.ThrottleCounter) identity.ThrottleCounter { return c })
		if err != nil {
			t.Fatal(err)
		}
		if kept := c.Failures == 1; kept != (i >= 2) {
			t.Fatalf("user%d: counter %+v after the collection; want only user2..user4 kept", i, c)
		}
	}
}
