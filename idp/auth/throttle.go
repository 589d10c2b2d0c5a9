package auth

import (
	"slices"
	"sync"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// ThrottlePolicy is the brute-force rule, after OWASP's "device cookie" pattern, so that an
// attacker can neither guess fast nor lock a real user out cheaply:
//
//   - Failures within Window for one account from one client (or from one browser that holds
//     a device cookie for the account) lock that pair for Wait, doubling per lockout up to
//     MaxWait. Others' failures never lock out a browser that has logged in to the account
//     before: its device cookie puts it in a pair of its own.
//   - AccountFailures within Window for one account (distributed guessing) do not block: from
//     then on each client without the account's device cookie may try that account once per
//     AccountDelay. Spacing per client, not one slot for the account, so an attacker polling
//     the account cannot crowd its owner out.
//   - RemoteFailures within Window from one address across all accounts (password spraying)
//     lock that address out of every account it has no device cookie for.
//
// A success resets its pair.
type ThrottlePolicy struct {
	Failures        int
	Window          time.Duration
	Wait            time.Duration
	MaxWait         time.Duration
	AccountFailures int
	AccountDelay    time.Duration
	RemoteFailures  int
}

// DefaultThrottle: 5 failures in 15 minutes lock a client out of an account for 1 minute,
// doubling up to 15; 100 failures for one account space attempts 10 s apart; 30 failures from
// one client lock that client out.
var DefaultThrottle = ThrottlePolicy{
	Failures: 5, Window: 15 * time.Minute, Wait: time.Minute, MaxWait: 15 * time.Minute,
	AccountFailures: 100, AccountDelay: 10 * time.Second, RemoteFailures: 30,
}

// Validate checks the policy; a zero Failures turns throttling off.
func (p ThrottlePolicy) Validate() error {
	if p.Failures < 0 || p.AccountFailures < 0 || p.RemoteFailures < 0 {
		return apperr.Errorf(apperr.EINVALID, "throttle failure counts must be 0 or more")
	}
	if p.Failures > 0 && (p.Window <= 0 || p.Wait <= 0 || p.MaxWait < p.Wait || p.AccountDelay < 0) {
		return apperr.Errorf(apperr.EINVALID, "throttle window and wait must be positive, max wait at least the wait")
	}
	return nil
}

// Attempt is one login attempt as the throttle sees it.
type Attempt struct {
	Account string // the username as sent; compared normalized
	Remote  string // the throttling key of the address it came from (web.ClientKey)
	Device  string // id of a valid device cookie for this account, "" if none
}

// maxThrottled bounds each table, so a flood of made-up usernames or addresses cannot grow
// memory without limit; past it the oldest entries are dropped.
const maxThrottled = 100_000

// Throttle counts failed logins. Usernames are normalized, so "Alice" and "alice" share
// counters, and unknown usernames are counted exactly like real ones (throttling must not
// reveal which accounts exist).
type Throttle struct {
	pol      ThrottlePolicy
	now      func() time.Time
	pairs    *lockTable // account × client or device
	remotes  *lockTable // one address across accounts
	accounts *lockTable // failures per account, from every client: counted, never locked
	spacing  *lockTable // account × client, once the account is over its count: last attempt
}

// NewThrottle returns a Throttle; a zero Failures turns throttling off.
func NewThrottle(pol ThrottlePolicy, now func() time.Time) *Throttle {
	return &Throttle{
		pol: pol, now: now,
		pairs:    newLockTable(pol.Failures, pol),
		remotes:  newLockTable(pol.RemoteFailures, pol),
		accounts: &lockTable{limit: pol.AccountFailures, pol: pol, countOnly: true, entries: map[string]*throttleEntry{}},
		spacing:  &lockTable{limit: 1, pol: pol, countOnly: true, entries: map[string]*throttleEntry{}},
	}
}

func (t *Throttle) off() bool { return t == nil || t.pol.Failures <= 0 }

func pairKey(a Attempt) string {
	acct := identity.NormalizeUsername(a.Account)
	if a.Device != "" {
		return acct + "\x00d" + a.Device
	}
	return acct + "\x00c" + a.Remote
}

func throttled(wait time.Duration) error {
	return &apperr.Error{Code: apperr.ETHROTTLED, Message: "Too many failed attempts; try again later", RetryAfter: wait}
}

// Allow returns ETHROTTLED, with the time to wait, when the attempt may not be made now. It
// is called before any password is hashed, so a refused attempt costs nothing.
func (t *Throttle) Allow(a Attempt) error {
	if t.off() {
		return nil
	}
	now := t.now()
	if wait := t.pairs.locked(pairKey(a), now); wait > 0 {
		return throttled(wait)
	}
	if a.Device != "" {
		return nil // a browser that has logged in here before: only its own failures count
	}
	if wait := t.remotes.locked(a.Remote, now); wait > 0 {
		return throttled(wait)
	}
	if t.accounts.over(identity.NormalizeUsername(a.Account), now) {
		if wait := t.spacing.space(pairKey(a), now, t.pol.AccountDelay); wait > 0 {
			return throttled(wait)
		}
	}
	return nil
}

// Failure records a failed attempt.
func (t *Throttle) Failure(a Attempt) {
	if t.off() {
		return
	}
	now := t.now()
	t.pairs.fail(pairKey(a), now)
	t.accounts.fail(identity.NormalizeUsername(a.Account), now)
	if a.Device == "" {
		t.remotes.fail(a.Remote, now)
	}
}

// Success resets the attempt's pair. The account-wide and per-client counts stay: a success
// says nothing about the other clients.
func (t *Throttle) Success(a Attempt) {
	if t.off() {
		return
	}
	t.pairs.reset(pairKey(a))
}

// Len is how many entries are tracked, for tests of the bound.
func (t *Throttle) Len() int {
	return t.pairs.len() + t.remotes.len() + t.accounts.len() + t.spacing.len()
}

// lockTable counts failures per key within a window and locks a key for a doubling wait when
// they reach the limit (a zero limit: never; a count-only table: never, see over and space).
type lockTable struct {
	limit     int
	pol       ThrottlePolicy
	countOnly bool // count only (over, space): never lock

	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	first     time.Time // start of the current window of failures
	failures  int
	lockouts  int       // lockouts since the last success, for the doubling
	until     time.Time // locked until
	last      time.Time // the last spaced attempt (accounts table)
	touchedAt time.Time
}

func newLockTable(limit int, pol ThrottlePolicy) *lockTable {
	return &lockTable{limit: limit, pol: pol, entries: map[string]*throttleEntry{}}
}

func (l *lockTable) locked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil {
		return e.until.Sub(now)
	}
	return 0
}

// over reports whether the key's failures within the window have reached the limit.
func (l *lockTable) over(key string, now time.Time) bool {
	if l.limit <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	return e != nil && e.failures >= l.limit && now.Sub(e.first) <= l.pol.Window
}

// space lets the key through once per delay and returns how long it must wait otherwise.
func (l *lockTable) space(key string, now time.Time, delay time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		l.evict(now)
		e = &throttleEntry{}
		l.entries[key] = e
	} else if wait := e.last.Add(delay).Sub(now); wait > 0 {
		return wait
	}
	e.last, e.touchedAt, e.first = now, now, now
	return 0
}

func (l *lockTable) fail(key string, now time.Time) {
	if l.limit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		l.evict(now)
		e = &throttleEntry{}
		l.entries[key] = e
	}
	e.touchedAt = now
	if e.failures == 0 || now.Sub(e.first) > l.pol.Window {
		e.first, e.failures = now, 0
	}
	if e.lockouts > 0 && now.Sub(e.until) > l.pol.Window {
		// Quiet for a whole window since its last lockout ended: the doubling starts over, so
		// an address that was locked once (a NAT, a shared proxy) is not at the maximum forever.
		e.lockouts = 0
	}
	e.failures++
	if e.failures >= l.limit && !l.countOnly {
		wait := l.pol.Wait << e.lockouts
		if wait > l.pol.MaxWait || wait <= 0 {
			wait = l.pol.MaxWait
		}
		e.until = now.Add(wait)
		e.lockouts++
		e.failures = 0
	}
}

func (l *lockTable) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key)
}

func (l *lockTable) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// evict makes room when the table is full: entries that no longer matter go first (not
// locked, window over), then the least recently touched, down to 90% so that the sweep runs
// once per many inserts rather than on each.
func (l *lockTable) evict(now time.Time) {
	if len(l.entries) < maxThrottled {
		return
	}
	for k, e := range l.entries {
		if !now.Before(e.until) && now.Sub(e.first) > l.pol.Window {
			delete(l.entries, k)
		}
	}
	target := maxThrottled * 9 / 10
	if len(l.entries) <= target {
		return
	}
	stamps := make([]time.Time, 0, len(l.entries))
	for _, e := range l.entries {
		stamps = append(stamps, e.touchedAt)
	}
	slices.SortFunc(stamps, func(a, b time.Time) int { return a.Compare(b) })
	cutoff := stamps[len(stamps)-target]
	for k, e := range l.entries {
		if !e.touchedAt.After(cutoff) && len(l.entries) > target {
			delete(l.entries, k)
		}
	}
}
