package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
)

// RunThrottleTests holds a ThrottleStore to its contract; newStore returns a fresh, empty one
// for each subtest. A store that several processes share must pass it too: its updates are
// read-modify-write in one transaction, so concurrent failures are all counted.
func RunThrottleTests(t *testing.T, newStore func(t *testing.T) identity.ThrottleStore) {
	t.Run("RoundTripAndDelete", func(t *testing.T) { testThrottleRoundTrip(t, newStore(t)) })
	t.Run("ConcurrentUpdatesAllCounted", func(t *testing.T) { testThrottleConcurrent(t, newStore(t)) })
	t.Run("DeleteStale", func(t *testing.T) { testThrottleStale(t, newStore(t)) })
}

func testThrottleRoundTrip(t *testing.T, s identity.ThrottleStore) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	want := identity.ThrottleCounter{First: t0, Until: t0.Add(time.Minute), Last: t0.Add(2 * time.Second), Touched: t0.Add(3 * time.Second), Failures: 4, Lockouts: 2}
	keys := []string{"p:alice\x00c192.0.2.1", "a:alice"}
	var seen []string
	err := s.UpdateThrottle(ctx, keys, func(key string, c identity.ThrottleCounter) identity.ThrottleCounter {
		if c != (identity.ThrottleCounter{}) {
			t.Errorf("a new key %q starts at %+v, want the zero counter", key, c)
		}
		seen = append(seen, key)
		return want
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seen[len(seen)-2:], keys) && !reflect.DeepEqual(seen[len(seen)-2:], []string{keys[1], keys[0]}) {
		t.Fatalf("fn saw keys %q, want %q", seen, keys)
	}
	got, err := s.ThrottleCounters(ctx, append(keys, "r:nobody")...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("ThrottleCounters returned %d counters, want 2 (a key without one is absent): %v", len(got), got)
	}
	for _, k := range keys {
		if g := got[k]; !g.First.Equal(want.First) || !g.Until.Equal(want.Until) || !g.Last.Equal(want.Last) ||
			!g.Touched.Equal(want.Touched) || g.Failures != want.Failures || g.Lockouts != want.Lockouts || g.First.Location() != time.UTC {
			t.Fatalf("%q read back %+v, want %+v (UTC)", k, g, want)
		}
	}
	// The zero counter deletes; the other key is untouched.
	if err := s.UpdateThrottle(ctx, keys[:1], func(string, identity.ThrottleCounter) identity.ThrottleCounter {
		return identity.ThrottleCounter{}
	}); err != nil {
		t.Fatal(err)
	}
	got, err = s.ThrottleCounters(ctx, keys...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[keys[0]]; ok || got[keys[1]].Failures != 4 {
		t.Fatalf("after deleting %q: %v", keys[0], got)
	}
}

func testThrottleConcurrent(t *testing.T, s identity.ThrottleStore) {
	ctx := context.Background()
	keys := []string{"a:shared", "r:198.51.100.7"}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			ks := keys
			if i%2 == 1 {
				ks = []string{keys[1], keys[0]} // the other order: no deadlock survives the retry
			}
			errs <- s.UpdateThrottle(ctx, ks, func(_ string, c identity.ThrottleCounter) identity.ThrottleCounter {
				c.Failures++
				c.Touched = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				return c
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ThrottleCounters(ctx, keys...)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if got[k].Failures != 20 {
			t.Fatalf("%q counted %d of 20 concurrent failures", k, got[k].Failures)
		}
	}
}

func testThrottleStale(t *testing.T, s identity.ThrottleStore) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		touched := t0.Add(time.Duration(i) * time.Hour)
		if err := s.UpdateThrottle(ctx, []string{fmt.Sprint("a:user", i)}, func(string, identity.ThrottleCounter) identity.ThrottleCounter {
			return identity.ThrottleCounter{Failures: 1, First: touched, Touched: touched}
		}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteStaleThrottles(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteStaleThrottles = %d, %v; want the 2 touched before the cut", n, err)
	}
	got, err := s.ThrottleCounters(ctx, "a:user0", "a:user1", "a:user2", "a:user3", "a:user4")
	if err != nil || len(got) != 3 || got["a:user2"].Failures != 1 {
		t.Fatalf("left %v (%v), want user2..user4", got, err)
	}
}
