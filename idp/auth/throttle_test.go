package auth

import (
	"fmt"
	"testing"
	"time"

	"jwtidp/shared/apperr"
)

func TestThrottleLocksDoublesAndResets(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now)
	for i := range 4 {
		th.Failure("Alice")
		if err := th.Allow("alice"); err != nil {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	th.Failure("ALICE") // the fifth, in another letter case: same account
	err := th.Allow("alice")
	if apperr.Code(err) != apperr.ETHROTTLED || apperr.RetryAfter(err) != time.Minute {
		t.Fatalf("after 5 failures: %v (retry after %s), want a 1-minute lockout", err, apperr.RetryAfter(err))
	}
	// The waits double: 1, 2, 4, 8 minutes, then stay at 15.
	for _, want := range []time.Duration{2, 4, 8, 15, 15} {
		c.add(apperr.RetryAfter(th.Allow("alice")))
		if err := th.Allow("alice"); err != nil {
			t.Fatalf("still locked when the wait is over: %v", err)
		}
		for range 5 {
			th.Failure("alice")
		}
		if got := apperr.RetryAfter(th.Allow("alice")); got != want*time.Minute {
			t.Fatalf("lockout wait %s, want %s", got, want*time.Minute)
		}
	}
	// A success resets the account.
	c.add(15 * time.Minute)
	th.Success("alice")
	for range 4 {
		th.Failure("alice")
	}
	if err := th.Allow("alice"); err != nil {
		t.Fatalf("a success did not reset the counter: %v", err)
	}
}

func TestThrottleWindowAndUnknownUsers(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now)
	// Failures spread wider than the window never lock.
	for range 20 {
		th.Failure("bob")
		c.add(4 * time.Minute)
	}
	if err := th.Allow("bob"); err == nil {
		// 4 failures per 16 minutes: expected never to lock
	} else {
		t.Fatalf("failures spread over the window locked the account: %v", err)
	}
	// A username that does not exist is throttled exactly the same.
	for range 5 {
		th.Failure("nobody-by-that-name")
	}
	if apperr.Code(th.Allow("nobody-by-that-name")) != apperr.ETHROTTLED {
		t.Fatal("unknown usernames are not throttled")
	}
}

func TestThrottleMemoryBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now)
	for i := range maxThrottled + 5000 {
		th.Failure(fmt.Sprint("user", i))
	}
	if n := th.Len(); n > maxThrottled {
		t.Fatalf("%d accounts tracked, bound is %d", n, maxThrottled)
	}
}
