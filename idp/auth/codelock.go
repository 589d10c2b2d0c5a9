package auth

import (
	"context"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// The account-wide lock of the one-time-code step (ThrottlePolicy.CodeFailures). The per-pair
// and per-address counters of a code (otpAttempt) stop one client; this stops many: a guesser
// who knows the password and spreads codes over many addresses or replicas. The count lives in
// the store (identity.CodeFailureStore) and every decision is made in its transaction.

func (t *Throttle) codeOff() bool { return t.off() || t.pol.CodeFailures <= 0 }

// codeLocked is the answer to a code while the account's code step is locked: the 401 of a
// wrong code, so a guesser learns nothing about the code, with how long to wait.
func codeLocked(wait time.Duration) error {
	return &apperr.Error{Code: apperr.EUNAUTHORIZED, Message: ErrOTPRequired.Message, RetryAfter: wait, Err: ErrOTPRequired}
}

// codeBegin decides, from the account's counter as stored at now, whether a code may be
// checked: wait > 0 while the code step is locked. Otherwise a code given (count) is counted
// before it is checked — codeEnd takes that back when it was right — so that guesses in flight
// at once, on any number of replicas, cannot all pass a check none of them has counted yet;
// when the count is already full with such guesses, this one locks the step (locked).
func (p ThrottlePolicy) codeBegin(c identity.ThrottleCounter, now time.Time, count bool) (next identity.ThrottleCounter, wait time.Duration, locked bool) {
	if now.Before(c.Until) {
		return c, c.Until.Sub(now), false
	}
	if !c.Until.IsZero() || c.Failures > 0 && now.Sub(c.First) > p.CodeWindow {
		c = identity.ThrottleCounter{} // the lockout or the window is over: counting starts over
	}
	if c.Failures >= p.CodeFailures {
		return p.codeLock(c, now), p.CodeLock, true
	}
	if !count {
		return c, 0, false
	}
	if c.Failures == 0 {
		c.First = now
	}
	c.Failures++
	c.Touched = now
	return c, 0, false
}

// codeEnd settles a code codeBegin counted: a right one (ok) takes the account's count back,
// unless the step was locked meanwhile (a lockout ends only with its time); a wrong one stays
// counted and, when it fills the count, locks the step (locked).
func (p ThrottlePolicy) codeEnd(c identity.ThrottleCounter, now time.Time, ok bool) (next identity.ThrottleCounter, locked bool) {
	switch {
	case now.Before(c.Until):
		return c, false
	case ok:
		return identity.ThrottleCounter{}, false
	case c.Failures >= p.CodeFailures:
		return p.codeLock(c, now), true
	}
	return c, false
}

func (p ThrottlePolicy) codeLock(c identity.ThrottleCounter, now time.Time) identity.ThrottleCounter {
	return identity.ThrottleCounter{First: c.First, Until: now.Add(p.CodeLock), Touched: now, Lockouts: c.Lockouts + 1}
}

// beginCode is codeBegin in the store, for a code given to userID's account by a client
// without the account's device cookie: codeLocked while the step is locked.
func (s *core) beginCode(ctx context.Context, userID string, count bool) error {
	t := s.Throttle
	if t.codeOff() {
		return nil
	}
	now := t.now()
	var wait time.Duration
	var locked bool
	_, err := t.Codes.UpdateCodeFailures(ctx, userID, func(c identity.ThrottleCounter) identity.ThrottleCounter {
		c, wait, locked = t.pol.codeBegin(c, now, count)
		return c
	})
	if err != nil {
		return err
	}
	if locked {
		s.codeLockout(ctx, userID)
	}
	if wait <= 0 {
		return nil
	}
	if t.OnLockout != nil {
		t.OnLockout()
	}
	return codeLocked(wait)
}

// endCode is codeEnd in the store.
func (s *core) endCode(ctx context.Context, userID string, ok bool) error {
	t := s.Throttle
	if t.codeOff() {
		return nil
	}
	now := t.now()
	var locked bool
	_, err := t.Codes.UpdateCodeFailures(ctx, userID, func(c identity.ThrottleCounter) identity.ThrottleCounter {
		c, locked = t.pol.codeEnd(c, now, ok)
		return c
	})
	if err == nil && locked {
		s.codeLockout(ctx, userID)
	}
	return err
}

// codeLockout records the lock of an account's code step: one event per lockout, since only
// the transaction that set it reports it.
func (s *core) codeLockout(ctx context.Context, userID string) {
	s.Logger.WarnContext(ctx, "one-time-code step locked: too many wrong codes for the account", "sub", userID, "for", s.Throttle.pol.CodeLock)
	s.record(unproven(ctx), s.event(unproven(ctx), identity.AuditLockout, userID, Failure,
		"one-time code step locked for "+s.Throttle.pol.CodeLock.String()+": too many wrong codes for the account, from any address; a browser with the account's device cookie is not locked"))
}

// UpdateCodeFailures and DeleteStaleCodeFailures make a MemoryThrottle a CodeFailureStore too,
// keyed by user id: NewThrottle's default for the code counters, in a MemoryThrottle of their
// own, with the same bound on memory.
func (m *MemoryThrottle) UpdateCodeFailures(ctx context.Context, userID string, fn func(identity.ThrottleCounter) identity.ThrottleCounter) (identity.ThrottleCounter, error) {
	var out identity.ThrottleCounter
	err := m.UpdateThrottle(ctx, []string{userID}, func(_ string, c identity.ThrottleCounter) identity.ThrottleCounter {
		out = fn(c)
		out.First, out.Until, out.Last, out.Touched = out.First.UTC(), out.Until.UTC(), out.Last.UTC(), out.Touched.UTC()
		return out
	})
	return out, err
}

func (m *MemoryThrottle) DeleteStaleCodeFailures(ctx context.Context, before time.Time) (int, error) {
	return m.DeleteStaleThrottles(ctx, before)
}
