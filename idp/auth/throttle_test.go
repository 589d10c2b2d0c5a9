package auth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/storetest"
	"jwtidp/shared/apperr"
)

var bg = context.Background()

// at is an attempt on account from one client without a device cookie.
func at(account string) Attempt { return Attempt{Account: account, Remote: "192.0.2.1"} }

func TestThrottleLocksDoublesAndResets(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	for i := range 4 {
		attempt(th, at("Alice"))
		if err := probe(th, at("alice")); err != nil {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	attempt(th, at("ALICE")) // the fifth, in another letter case: same account
	err := probe(th, at("alice"))
	if apperr.Code(err) != apperr.ETHROTTLED || apperr.RetryAfter(err) != time.Minute {
		t.Fatalf("after 5 failures: %v (retry after %s), want a 1-minute lockout", err, apperr.RetryAfter(err))
	}
	// The waits double: 1, 2, 4, 8 minutes, then stay at 15.
	for _, want := range []time.Duration{2, 4, 8, 15, 15} {
		c.add(apperr.RetryAfter(probe(th, at("alice"))))
		if err := probe(th, at("alice")); err != nil {
			t.Fatalf("still locked when the wait is over: %v", err)
		}
		for range 5 {
			attempt(th, at("alice"))
		}
		if got := apperr.RetryAfter(probe(th, at("alice"))); got != want*time.Minute {
			t.Fatalf("lockout wait %s, want %s", got, want*time.Minute)
		}
	}
	// A success resets the account.
	c.add(15 * time.Minute)
	th.Success(bg, at("alice"))
	for range 4 {
		attempt(th, at("alice"))
	}
	if err := probe(th, at("alice")); err != nil {
		t.Fatalf("a success did not reset the counter: %v", err)
	}
}

func TestThrottleWindowAndUnknownUsers(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	// Failures spread wider than the window never lock.
	for range 20 {
		attempt(th, at("bob"))
		c.add(4 * time.Minute)
	}
	if err := probe(th, at("bob")); err == nil {
		// 4 failures per 16 minutes: expected never to lock
	} else {
		t.Fatalf("failures spread over the window locked the account: %v", err)
	}
	// A username that does not exist is throttled exactly the same.
	for range 5 {
		attempt(th, at("nobody-by-that-name"))
	}
	if apperr.Code(probe(th, at("nobody-by-that-name"))) != apperr.ETHROTTLED {
		t.Fatal("unknown usernames are not throttled")
	}
}

func TestThrottleMemoryBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	for i := range maxThrottled + 5000 {
		attempt(th, at(fmt.Sprint("user", i)))
	}
	if n := th.store.(*MemoryThrottle).Len(); n > maxThrottled {
		t.Fatalf("%d counters kept, bound is %d", n, maxThrottled)
	}
}

func wantLocked(t *testing.T, th *Throttle, a Attempt, locked bool) {
	t.Helper()
	err := th.Allow(bg, a)
	if got := apperr.Code(err) == apperr.ETHROTTLED; got != locked {
		t.Fatalf("Allow(%+v) = %v; want locked=%v", a, err, locked)
	}
}

// Finding 2: an attacker's failures lock out the attacker's client, not the account. The owner,
// from another address or from a browser with the account's device cookie (even behind the
// attacker's address), still gets in.
func TestThrottleLocksTheClientNotTheAccount(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	attacker := Attempt{Account: "alice", Remote: "203.0.113.7"}
	for range 5 {
		attempt(th, attacker)
	}
	wantLocked(t, th, attacker, true)
	wantLocked(t, th, Attempt{Account: "alice", Remote: "198.51.100.1"}, false)
	wantLocked(t, th, Attempt{Account: "alice", Remote: "203.0.113.7", Device: "dev1"}, false)
	// The lock renews for the attacker only, however long it keeps trying.
	for range 10 {
		c.add(apperr.RetryAfter(probe(th, attacker)))
		for range 5 {
			attempt(th, attacker)
		}
	}
	wantLocked(t, th, Attempt{Account: "alice", Remote: "198.51.100.1"}, false)
	// A device's own failures lock that device.
	dev := Attempt{Account: "alice", Remote: "198.51.100.1", Device: "dev2"}
	for range 5 {
		attempt(th, dev)
	}
	wantLocked(t, th, dev, true)
}

// Distributed guessing, one failure per address: past AccountFailures the account spaces out
// each client's attempts (a delay, never a block). Spacing is per client, so an attacker
// polling the account cannot crowd out its owner; a device cookie goes straight through.
func TestThrottleDistributedGuessingIsSpacedOut(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	for i := range DefaultThrottle.AccountFailures {
		a := Attempt{Account: "alice", Remote: fmt.Sprint("10.0.", i/250, ".", i%250)}
		if err := th.Allow(bg, a); err != nil {
			t.Fatalf("attempt %d refused before the account count: %v", i, err)
		}
		attempt(th, a)
	}
	attacker, owner := Attempt{Account: "alice", Remote: "203.0.113.7"}, Attempt{Account: "alice", Remote: "198.51.100.1"}
	wantLocked(t, th, attacker, false) // one goes through…
	err := th.Allow(bg, attacker)
	if apperr.Code(err) != apperr.ETHROTTLED || apperr.RetryAfter(err) != DefaultThrottle.AccountDelay {
		t.Fatalf("the same client again at once: %v; want a %s delay", err, DefaultThrottle.AccountDelay)
	}
	wantLocked(t, th, owner, false) // the attacker's polling does not take the owner's turn
	wantLocked(t, th, Attempt{Account: "alice", Remote: "203.0.113.7", Device: "dev"}, false)
	wantLocked(t, th, Attempt{Account: "bob", Remote: "203.0.113.7"}, false) // other accounts untouched
	c.add(DefaultThrottle.AccountDelay)
	wantLocked(t, th, attacker, false) // …and one per delay
	c.add(DefaultThrottle.Window + time.Second)
	wantLocked(t, th, attacker, false)
	wantLocked(t, th, attacker, false) // the window has passed: no more spacing
}

// A client address locked once is not locked at the maximum forever: after a quiet window
// the doubling starts over.
func TestThrottleLockoutsDecay(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	a := at("alice")
	for range 4 { // four lockouts: 1, 2, 4, 8 minutes
		for range 5 {
			attempt(th, a)
		}
		c.add(apperr.RetryAfter(probe(th, a)))
	}
	c.add(DefaultThrottle.Window + time.Minute)
	for range 5 {
		attempt(th, a)
	}
	if got := apperr.RetryAfter(probe(th, a)); got != DefaultThrottle.Wait {
		t.Fatalf("after a quiet window the lockout is %s, want the first wait again", got)
	}
}

// Password spraying: one client failing across many accounts is locked out of all of them,
// except where it holds the account's device cookie.
func TestThrottleSprayingLocksTheClient(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	for i := range DefaultThrottle.RemoteFailures {
		attempt(th, Attempt{Account: fmt.Sprint("user", i), Remote: "203.0.113.7"})
	}
	wantLocked(t, th, Attempt{Account: "someone-new", Remote: "203.0.113.7"}, true)
	wantLocked(t, th, Attempt{Account: "someone-new", Remote: "203.0.113.8"}, false)
	wantLocked(t, th, Attempt{Account: "mine", Remote: "203.0.113.7", Device: "dev"}, false)
}

func TestMemoryThrottleConformance(t *testing.T) {
	storetest.RunThrottleTests(t, func(*testing.T) identity.ThrottleStore { return NewMemoryThrottle(time.Minute) })
}

// A store that fails (a database that is down) fails the check: no attempt is let through
// unthrottled, and the error says unavailable.
func TestThrottleStoreDown(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, downThrottle{})
	for name, err := range map[string]error{"Allow": th.Allow(bg, at("a")), "Failure": th.Failure(bg, at("a")), "Success": th.Success(bg, at("a"))} {
		if apperr.Code(err) != apperr.EUNAVAILABLE {
			t.Errorf("%s with the store down: %v", name, err)
		}
	}
}

type downThrottle struct{}

var errDown = apperr.Errorf(apperr.EUNAVAILABLE, "down")

func (downThrottle) ThrottleCounters(context.Context, ...string) (map[string]identity.ThrottleCounter, error) {
	return nil, errDown
}
func (downThrottle) UpdateThrottle(context.Context, []string, func(string, identity.ThrottleCounter) identity.ThrottleCounter) error {
	return errDown
}
func (downThrottle) DeleteStaleThrottles(context.Context, time.Time) (int, error) { return 0, errDown }

// attempt is a failed login as the service makes it: Allow (which counts it against its pair
// when it lets it through), then Failure.
func attempt(th *Throttle, a Attempt) {
	if th.Allow(bg, a) == nil {
		th.Failure(bg, a)
	}
}

// Attempts in flight at once are counted before any of them has failed: of twenty that pass
// the check together (twenty replicas, or twenty hash slots), only the pair's five get through.
func TestThrottleCountsAttemptsBeforeTheyFail(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := NewThrottle(DefaultThrottle, c.now, nil)
	allowed := 0
	for range 20 { // none has failed yet: all are still being hashed
		if th.Allow(bg, at("alice")) == nil {
			allowed++
		}
	}
	if allowed != DefaultThrottle.Failures {
		t.Fatalf("%d of 20 concurrent attempts let through, want %d", allowed, DefaultThrottle.Failures)
	}
	// A success among them takes the pair's count back.
	th.Success(bg, at("alice"))
	if err := th.Allow(bg, at("alice")); err != nil {
		t.Fatalf("after a success: %v", err)
	}
}

// probe asks whether an attempt would be refused now, without making one.
func probe(th *Throttle, a Attempt) error {
	_, err := th.locked(bg, a, th.now())
	return err
}
