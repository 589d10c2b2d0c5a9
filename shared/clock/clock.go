// Package clock is the time a service reads: the real one in production, a fake one that a test
// advances by hand, so that lockouts, session expiry and the key-rotation schedule are tested
// without waiting on the wall clock.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and wakes a waiter after a duration.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
var Real Clock = real{}

type real struct{}

func (real) Now() time.Time                         { return time.Now() }
func (real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Or is c, or Real when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}

// Fake is a clock that moves only when Advance is called. It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	parked  *sync.Cond // signalled whenever a waiter is added
}

type waiter struct {
	at time.Time
	c  chan time.Time
}

// NewFake is a fake clock that reads start until it is advanced.
func NewFake(start time.Time) *Fake {
	f := &Fake{now: start}
	f.parked = sync.NewCond(&f.mu)
	return f
}

// Now is the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that receives the fake time once the clock has been advanced by d (at
// once when d <= 0).
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan time.Time, 1)
	if d <= 0 {
		c <- f.now
		return c
	}
	f.waiters = append(f.waiters, waiter{at: f.now.Add(d), c: c})
	f.parked.Broadcast()
	return c
}

// Advance moves the clock on by d and fires, in time order, every waiter now due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
			continue
		}
		w.c <- f.now // buffered, never blocks
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
}

// Waiters is how many After channels are waiting to fire. A waiter whose reader has gone away
// (a select that took another case) still counts until Advance fires it.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil returns once at least n waiters are waiting, so a test can advance the clock only
// after the goroutine it is testing has parked on After — with no sleep and no polling.
func (f *Fake) BlockUntil(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.waiters) < n {
		f.parked.Wait()
	}
}
