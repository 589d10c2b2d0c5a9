package clock

import (
	"testing"
	"time"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFakeAdvanceFiresDueWaitersInOrder(t *testing.T) {
	f := NewFake(start)
	if !f.Now().Equal(start) {
		t.Fatalf("Now = %v, want %v", f.Now(), start)
	}
	late, early := f.After(2*time.Second), f.After(time.Second)
	f.Advance(999 * time.Millisecond)
	select {
	case <-early:
		t.Fatal("fired before it was due")
	default:
	}
	if f.Waiters() != 2 {
		t.Fatalf("Waiters = %d, want 2", f.Waiters())
	}
	f.Advance(time.Millisecond)
	if got := <-early; !got.Equal(start.Add(time.Second)) {
		t.Fatalf("fired with %v", got)
	}
	if f.Waiters() != 1 {
		t.Fatalf("Waiters = %d, want 1", f.Waiters())
	}
	f.Advance(time.Hour)
	if got := <-late; !got.Equal(start.Add(time.Hour + time.Second)) {
		t.Fatalf("fired with %v", got)
	}
	if f.Waiters() != 0 || !f.Now().Equal(start.Add(time.Hour+time.Second)) {
		t.Fatalf("Waiters = %d, Now = %v", f.Waiters(), f.Now())
	}
}

func TestFakeAfterZeroFiresAtOnce(t *testing.T) {
	f := NewFake(start)
	if got := <-f.After(0); !got.Equal(start) {
		t.Fatalf("fired with %v", got)
	}
	if f.Waiters() != 0 {
		t.Fatal("a fired waiter is still counted")
	}
}

// A goroutine parks on After; the test waits for it with BlockUntil, advances, and the
// goroutine wakes — run with -race.
func TestFakeBlockUntilThenAdvance(t *testing.T) {
	f := NewFake(start)
	woke := make(chan time.Time)
	go func() { woke <- <-f.After(time.Minute) }()
	f.BlockUntil(1)
	f.Advance(time.Minute)
	if got := <-woke; !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("woke with %v", got)
	}
	for range 100 { // concurrent readers and advancers
		go f.Now()
		go f.Advance(time.Millisecond)
	}
}

func TestOr(t *testing.T) {
	if Or(nil) != Real {
		t.Fatal("Or(nil) is not Real")
	}
	f := NewFake(start)
	if Or(f) != Clock(f) {
		t.Fatal("Or(f) is not f")
	}
	if d := time.Since(Real.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("Real.Now is %v off", d)
	}
}
