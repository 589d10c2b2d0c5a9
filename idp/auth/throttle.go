package auth

import (
	"context"
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
//
// One-time codes (the second step after a right password) are counted by the same rules on
// counters of their own, and besides per account in the store: CodeFailures codes refused for
// one account within CodeWindow — from any number of addresses, on any replica — lock the
// account's code step for CodeLock, for everyone but a browser with the account's device
// cookie. A code has far fewer possibilities than a password, so the account-wide count locks
// rather than spaces.
type ThrottlePolicy struct {
	Failures        int
	Window          time.Duration
	Wait            time.Duration
	MaxWait         time.Duration
	AccountFailures int
	AccountDelay    time.Duration
	RemoteFailures  int
	CodeFailures    int
	CodeWindow      time.Duration
	CodeLock        time.Duration
}

// DefaultThrottle: 5 failures in 15 minutes lock a client out of an account for 1 minute,
// doubling up to 15; 100 failures for one account space attempts 10 s apart; 30 failures from
// one client lock that client out; 10 refused codes for one account in 15 minutes lock its
// code step for 15 minutes.
var DefaultThrottle = ThrottlePolicy{
	Failures: 5, Window: 15 * time.Minute, Wait: time.Minute, MaxWait: 15 * time.Minute,
	AccountFailures: 100, AccountDelay: 10 * time.Second, RemoteFailures: 30,
	CodeFailures: 10, CodeWindow: 15 * time.Minute, CodeLock: 15 * time.Minute,
}

// Validate checks the policy; a zero Failures turns throttling off (the code-step lock too), a
// zero CodeFailures the code-step lock alone.
func (p ThrottlePolicy) Validate() error {
	if p.Failures < 0 || p.AccountFailures < 0 || p.RemoteFailures < 0 || p.CodeFailures < 0 {
		return apperr.Errorf(apperr.EINVALID, "throttle failure counts must be 0 or more")
	}
	if p.Failures > 0 && (p.Window <= 0 || p.Wait <= 0 || p.MaxWait < p.Wait || p.AccountDelay < 0) {
		return apperr.Errorf(apperr.EINVALID, "throttle window and wait must be positive, max wait at least the wait")
	}
	if p.Failures > 0 && p.CodeFailures > 0 && (p.CodeWindow <= 0 || p.CodeLock <= 0) {
		return apperr.Errorf(apperr.EINVALID, "one-time-code window and lock must be positive")
	}
	return nil
}

// Attempt is one login attempt as the throttle sees it.
type Attempt struct {
	Account string // the username as sent; compared normalized
	Remote  string // the throttling key of the address it came from (web.ClientKey)
	Device  string // id of a valid device cookie for this account, "" if none
}

// Throttle counts failed logins in a ThrottleStore: in memory for a store only one process
// opens, in the database when replicas share it. Usernames are normalized, so "Alice" and
// "alice" share counters, and unknown usernames are counted exactly like real ones (throttling
// must not reveal which accounts exist).
type Throttle struct {
	pol   ThrottlePolicy
	now   func() time.Time
	store identity.ThrottleStore
	// OnLockout, when set, is called for each attempt Allow refuses (ETHROTTLED), and for each
	// code refused by a code-step lockout: metrics.
	OnLockout func()
	// Codes keeps the per-account one-time-code counters (CodeFailures): the store every
	// process serving the accounts shares. NewThrottle sets one in this process's memory; the
	// server replaces it with its store.
	Codes identity.CodeFailureStore

	refusals lockoutLog // which lockouts have their audit event already
}

// firstRefusal reports whether the refusal err is the first of its lockout for key (a user and
// an address), for the audit trail: one event per lockout, not per refused attempt.
func (t *Throttle) firstRefusal(key string, now time.Time, err error) bool {
	if t == nil {
		return true
	}
	return t.refusals.first(key, now, err)
}

// NewThrottle returns a Throttle keeping its counters in store (nil: in this process's
// memory); a zero Failures turns throttling off.
func NewThrottle(pol ThrottlePolicy, now func() time.Time, store identity.ThrottleStore) *Throttle {
	if store == nil {
		store = NewMemoryThrottle(pol.Window)
	}
	return &Throttle{pol: pol, now: now, store: store, Codes: NewMemoryThrottle(pol.CodeWindow)}
}

func (t *Throttle) off() bool { return t == nil || t.pol.Failures <= 0 }

// The four kinds of counter, by key prefix.
const (
	kindPair    = "p:" // account × client or device: locked at Failures
	kindRemote  = "r:" // one address across accounts: locked at RemoteFailures
	kindAccount = "a:" // one account from every client: counted, never locked
	kindSpacing = "s:" // account × client once the account is over its count: last attempt
)

func pairKey(a Attempt) string {
	acct := identity.NormalizeUsername(a.Account)
	if a.Device != "" {
		return kindPair + acct + "\x00d" + a.Device
	}
	return kindPair + acct + "\x00c" + a.Remote
}

func accountKey(a Attempt) string { return kindAccount + identity.NormalizeUsername(a.Account) }
func spacingKey(a Attempt) string { return kindSpacing + pairKey(a)[len(kindPair):] }

func throttled(wait time.Duration) error {
	return &apperr.Error{Code: apperr.ETHROTTLED, Message: "Too many failed attempts; try again later", RetryAfter: wait}
}

// Allow returns ETHROTTLED, with the time to wait, when the attempt may not be made now, and
// otherwise counts it against its pair (account × client or device) before any password is
// hashed — in one step of the store, so that attempts in flight at once, on any number of
// replicas, cannot all pass a check none of them has counted yet. Success takes the count
// back; Failure counts the account-wide and per-address failures.
func (t *Throttle) Allow(ctx context.Context, a Attempt) error {
	if t.off() {
		return nil
	}
	err := t.allow(ctx, a)
	if apperr.Code(err) == apperr.ETHROTTLED && t.OnLockout != nil {
		t.OnLockout()
	}
	return err
}

func (t *Throttle) allow(ctx context.Context, a Attempt) error {
	now := t.now()
	cs, err := t.locked(ctx, a, now)
	if err != nil {
		return err
	}
	if a.Device == "" {
		if t.over(cs[accountKey(a)], t.pol.AccountFailures, now) {
			if err := t.space(ctx, a, now); err != nil {
				return err
			}
		}
	}
	var wait time.Duration
	err = t.store.UpdateThrottle(ctx, []string{pairKey(a)}, func(_ string, c identity.ThrottleCounter) identity.ThrottleCounter {
		if wait = c.Until.Sub(now); wait > 0 {
			return c // locked meanwhile by an attempt counted before this one
		}
		return t.fail(c, now, t.pol.Failures, true)
	})
	if err != nil {
		return err
	}
	if wait > 0 {
		return throttled(wait)
	}
	return nil
}

// locked returns ETHROTTLED when the attempt's pair or (without a device cookie) its address
// is locked out, and otherwise the counters it read: Allow's check, counting nothing.
func (t *Throttle) locked(ctx context.Context, a Attempt, now time.Time) (map[string]identity.ThrottleCounter, error) {
	keys := []string{pairKey(a)}
	if a.Device == "" {
		keys = append(keys, kindRemote+a.Remote, accountKey(a))
	}
	cs, err := t.store.ThrottleCounters(ctx, keys...)
	if err != nil {
		return nil, err
	}
	if wait := cs[pairKey(a)].Until.Sub(now); wait > 0 {
		return nil, throttled(wait)
	}
	if wait := cs[kindRemote+a.Remote].Until.Sub(now); wait > 0 && a.Device == "" {
		return nil, throttled(wait)
	}
	return cs, nil
}

// space lets a client without the account's device cookie try an account over its count
// once per AccountDelay, decided in the store's transaction so that replicas share it.
func (t *Throttle) space(ctx context.Context, a Attempt, now time.Time) error {
	var wait time.Duration
	err := t.store.UpdateThrottle(ctx, []string{spacingKey(a)}, func(_ string, c identity.ThrottleCounter) identity.ThrottleCounter {
		if wait = c.Last.Add(t.pol.AccountDelay).Sub(now); !c.Last.IsZero() && wait > 0 {
			return c
		}
		wait = 0
		return identity.ThrottleCounter{First: now, Last: now, Touched: now}
	})
	if err != nil {
		return err
	}
	if wait > 0 {
		return throttled(wait)
	}
	return nil
}

// over reports whether a counter's failures within the window have reached limit.
func (t *Throttle) over(c identity.ThrottleCounter, limit int, now time.Time) bool {
	return limit > 0 && c.Failures >= limit && now.Sub(c.First) <= t.pol.Window
}

// Failure records that an attempt Allow let through failed: against the account from every
// client and, without a device cookie, against the address across accounts. (Allow has
// counted it against its pair already.)
func (t *Throttle) Failure(ctx context.Context, a Attempt) error {
	if t.off() {
		return nil
	}
	now := t.now()
	keys := []string{accountKey(a)}
	if a.Device == "" {
		keys = append(keys, kindRemote+a.Remote)
	}
	return t.store.UpdateThrottle(ctx, keys, func(key string, c identity.ThrottleCounter) identity.ThrottleCounter {
		switch key[:len(kindPair)] {
		case kindRemote:
			return t.fail(c, now, t.pol.RemoteFailures, true)
		default:
			return t.fail(c, now, t.pol.AccountFailures, false)
		}
	})
}

// fail counts one failure on c; reaching limit locks the key for a doubling wait when lock is
// set. A zero limit counts nothing.
func (t *Throttle) fail(c identity.ThrottleCounter, now time.Time, limit int, lock bool) identity.ThrottleCounter {
	if limit <= 0 {
		return c
	}
	c.Touched = now
	if c.Failures == 0 || now.Sub(c.First) > t.pol.Window {
		c.First, c.Failures = now, 0
	}
	if c.Lockouts > 0 && now.Sub(c.Until) > t.pol.Window {
		// Quiet for a whole window since its last lockout ended: the doubling starts over, so
		// an address that was locked once (a NAT, a shared proxy) is not at the maximum forever.
		c.Lockouts = 0
	}
	c.Failures++
	if c.Failures >= limit && lock {
		wait := t.pol.Wait << c.Lockouts
		if wait > t.pol.MaxWait || wait <= 0 {
			wait = t.pol.MaxWait
		}
		c.Until = now.Add(wait)
		c.Lockouts++
		c.Failures = 0
	}
	return c
}

// Success resets the attempt's pair, the count Allow made included. The account-wide and
// per-client counts stay: a success says nothing about the other clients.
func (t *Throttle) Success(ctx context.Context, a Attempt) error {
	if t.off() {
		return nil
	}
	return t.store.UpdateThrottle(ctx, []string{pairKey(a)}, func(string, identity.ThrottleCounter) identity.ThrottleCounter {
		return identity.ThrottleCounter{}
	})
}

// CollectStale removes the counters untouched for longer than a window and the longest wait:
// they no longer lock or count anything.
func (t *Throttle) CollectStale(ctx context.Context) (int, error) {
	if t.off() {
		return 0, nil
	}
	n, err := t.store.DeleteStaleThrottles(ctx, t.now().Add(-t.pol.Window-t.pol.MaxWait))
	if err != nil || t.codeOff() {
		return n, err
	}
	m, err := t.Codes.DeleteStaleCodeFailures(ctx, t.now().Add(-t.pol.CodeWindow-t.pol.CodeLock))
	return n + m, err
}

// maxThrottled bounds the memory store, so a flood of made-up usernames or addresses cannot
// grow memory without limit; past it the oldest entries are dropped.
const maxThrottled = 400_000

// MemoryThrottle is a ThrottleStore in this process's memory: right for a store that only one
// process opens (bbolt), and bounded.
type MemoryThrottle struct {
	window  time.Duration
	mu      sync.Mutex
	entries map[string]identity.ThrottleCounter
}

// NewMemoryThrottle returns an empty store; entries quiet for window and not locked are the
// first to go when it is full.
func NewMemoryThrottle(window time.Duration) *MemoryThrottle {
	return &MemoryThrottle{window: window, entries: map[string]identity.ThrottleCounter{}}
}

func (m *MemoryThrottle) ThrottleCounters(_ context.Context, keys ...string) (map[string]identity.ThrottleCounter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]identity.ThrottleCounter, len(keys))
	for _, k := range keys {
		if c, ok := m.entries[k]; ok {
			out[k] = c
		}
	}
	return out, nil
}

func (m *MemoryThrottle) UpdateThrottle(_ context.Context, keys []string, fn func(string, identity.ThrottleCounter) identity.ThrottleCounter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		c := fn(k, m.entries[k])
		if c == (identity.ThrottleCounter{}) {
			delete(m.entries, k)
			continue
		}
		if _, ok := m.entries[k]; !ok {
			m.evict(c.Touched)
		}
		m.entries[k] = c
	}
	return nil
}

func (m *MemoryThrottle) DeleteStaleThrottles(_ context.Context, before time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, c := range m.entries {
		if c.Touched.Before(before) {
			delete(m.entries, k)
			n++
		}
	}
	return n, nil
}

// Len is how many counters are kept, for tests of the bound.
func (m *MemoryThrottle) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// evict makes room when the store is full: entries that no longer matter go first (not
// locked, window over), then the least recently touched, down to 90% so that the sweep runs
// once per many inserts rather than on each.
func (m *MemoryThrottle) evict(now time.Time) {
	if len(m.entries) < maxThrottled {
		return
	}
	for k, c := range m.entries {
		if !now.Before(c.Until) && now.Sub(c.First) > m.window {
			delete(m.entries, k)
		}
	}
	target := maxThrottled * 9 / 10
	if len(m.entries) <= target {
		return
	}
	stamps := make([]time.Time, 0, len(m.entries))
	for _, c := range m.entries {
		stamps = append(stamps, c.Touched)
	}
	slices.SortFunc(stamps, func(a, b time.Time) int { return a.Compare(b) })
	cutoff := stamps[len(stamps)-target]
	for k, c := range m.entries {
		if !c.Touched.After(cutoff) && len(m.entries) > target {
			delete(m.entries, k)
		}
	}
}
