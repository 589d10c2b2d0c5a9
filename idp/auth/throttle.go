package auth

import (
	"slices"
	"sync"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// ThrottlePolicy is the brute-force rule: after Failures failed attempts for one account within
// Window, attempts are refused for Wait; each further lockout doubles the wait, up to MaxWait.
// A success resets the account.
type ThrottlePolicy struct {
	Failures int
	Window   time.Duration
	Wait     time.Duration
	MaxWait  time.Duration
}

// DefaultThrottle: 5 failures in 15 minutes, then 1 minute, doubling up to 15 minutes.
var DefaultThrottle = ThrottlePolicy{Failures: 5, Window: 15 * time.Minute, Wait: time.Minute, MaxWait: 15 * time.Minute}

// maxThrottled bounds the accounts tracked at once, so a flood of made-up usernames cannot
// grow memory without limit; past it the oldest entries are dropped.
const maxThrottled = 100_000

// Throttle counts failed logins per account — by normalized username, so "Alice" and "alice"
// share a counter, and unknown usernames are counted exactly like real ones (throttling must
// not reveal which accounts exist).
type Throttle struct {
	pol ThrottlePolicy
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	first     time.Time // start of the current window of failures
	failures  int
	lockouts  int       // lockouts since the last success, for the doubling
	until     time.Time // locked until
	touchedAt time.Time
}

// NewThrottle returns a Throttle; a zero Failures turns throttling off.
func NewThrottle(pol ThrottlePolicy, now func() time.Time) *Throttle {
	return &Throttle{pol: pol, now: now, entries: map[string]*throttleEntry{}}
}

// Allow returns ETHROTTLED, with the time to wait, while the account is locked.
func (t *Throttle) Allow(username string) error {
	if t == nil || t.pol.Failures <= 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[identity.NormalizeUsername(username)]
	if e == nil {
		return nil
	}
	if wait := e.until.Sub(t.now()); wait > 0 {
		return &apperr.Error{Code: apperr.ETHROTTLED, Message: "Too many failed attempts; try again later", RetryAfter: wait}
	}
	return nil
}

// Failure records a failed attempt.
func (t *Throttle) Failure(username string) {
	if t == nil || t.pol.Failures <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	key := identity.NormalizeUsername(username)
	e := t.entries[key]
	if e == nil {
		t.evict(now)
		e = &throttleEntry{}
		t.entries[key] = e
	}
	e.touchedAt = now
	if e.failures == 0 || now.Sub(e.first) > t.pol.Window {
		e.first, e.failures = now, 0
	}
	e.failures++
	if e.failures >= t.pol.Failures {
		wait := t.pol.Wait << e.lockouts
		if wait > t.pol.MaxWait || wait <= 0 {
			wait = t.pol.MaxWait
		}
		e.until = now.Add(wait)
		e.lockouts++
		e.failures = 0
	}
}

// Success resets the account.
func (t *Throttle) Success(username string) {
	if t == nil || t.pol.Failures <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, identity.NormalizeUsername(username))
}

// Len is how many accounts are tracked.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// evict makes room when the table is full: entries that no longer matter go first (not
// locked, window over), then the least recently touched, down to 90% so that the sweep runs
// once per many inserts rather than on each.
func (t *Throttle) evict(now time.Time) {
	if len(t.entries) < maxThrottled {
		return
	}
	for k, e := range t.entries {
		if !now.Before(e.until) && now.Sub(e.first) > t.pol.Window {
			delete(t.entries, k)
		}
	}
	target := maxThrottled * 9 / 10
	if len(t.entries) <= target {
		return
	}
	stamps := make([]time.Time, 0, len(t.entries))
	for _, e := range t.entries {
		stamps = append(stamps, e.touchedAt)
	}
	slices.SortFunc(stamps, func(a, b time.Time) int { return a.Compare(b) })
	cutoff := stamps[len(stamps)-target]
	for k, e := range t.entries {
		if !e.touchedAt.After(cutoff) && len(t.entries) > target {
			delete(t.entries, k)
		}
	}
}
