package keys

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
)

// countingStore counts the updates that were committed (the updater returned no error).
type countingStore struct {
	identity.KeyStore
	writes atomic.Int64
}

func (s *countingStore) UpdateKeys(ctx context.Context, update func([]identity.SigningKey) ([]identity.SigningKey, error)) error {
	err := s.KeyStore.UpdateKeys(ctx, update)
	if err == nil {
		s.writes.Add(1)
	}
	return err
}

func openDB(t *testing.T) *boltdb.DB {
	t.Helper()
	db, err := boltdb.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countStates(t *testing.T, store identity.KeyStore) map[identity.KeyState]int {
	t.Helper()
	stored, err := store.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := map[identity.KeyState]int{}
	for _, k := range stored {
		n[k.State]++
	}
	return n
}

func TestRotateIfDue(t *testing.T) {
	keys, _ := Ensure(nil, t0, pol, fresh("a", "b"))
	t1 := t0.Add(pol.Period)
	// Not due: the set comes back as it was, and no fresh key is needed.
	got, err := RotateIfDue(keys, t1.Add(-time.Second), pol, fresh())
	if err != nil || !sameKeys(got, keys) {
		t.Fatalf("before the due date: %v, %v; want the set unchanged", states(got), err)
	}
	// Due: one rotation.
	rotated, err := RotateIfDue(keys, t1, pol, fresh("c"))
	if s := states(rotated); err != nil || s["a"] != identity.KeyRetired || s["b"] != identity.KeyCurrent || s["c"] != identity.KeyNext {
		t.Fatalf("at the due date: %v, %v", s, err)
	}
	// The scheduler whose transaction runs after the winner's sees the rotation done: no change.
	again, err := RotateIfDue(rotated, t1.Add(time.Millisecond), pol, fresh("d"))
	if err != nil || !sameKeys(again, rotated) {
		t.Fatalf("a second scheduler for the same due date: %v, %v; want no change", states(again), err)
	}
	// An admin rotation ten minutes before the due date: the schedule waits a period after it.
	// (The retired key is still published then: nothing else to change.)
	admin, _ := Rotate(keys, t1.Add(-10*time.Minute), pol, fresh("c"))
	again, err = RotateIfDue(admin, t1, pol, fresh("d"))
	if err != nil || !sameKeys(again, admin) {
		t.Fatalf("schedule right after an admin rotation: %v, %v; want no change", states(again), err)
	}
}

// Three processes share one store and their schedules fire together past the due date: the
// set rotates once, in one write, and every process ends up signing with the same key.
func TestScheduledRotationOncePerDueDate(t *testing.T) {
	db := openDB(t)
	store := &countingStore{KeyStore: db}
	clock := t0
	now := func() time.Time { return clock }
	var ms []*Manager
	for range 3 {
		ms = append(ms, managerOn(t, store, now, slog.New(slog.DiscardHandler)))
	}
	next := kidIn(ms[0].Keys(), identity.KeyNext)
	clock = t0.Add(pol.Period + time.Minute)
	writes := store.writes.Load()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Tick(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := countStates(t, db); n[identity.KeyCurrent] != 1 || n[identity.KeyNext] != 1 || n[identity.KeyRetired] != 1 {
		t.Fatalf("after three schedulers fired for one due date: %v, want one rotation", n)
	}
	if w := store.writes.Load() - writes; w != 1 {
		t.Fatalf("%d writes for one due date, want 1", w)
	}
	for i, m := range ms {
		if kid := m.CurrentKID(); kid != next {
			t.Fatalf("process %d signs with %s, want the former next key %s", i, kid, next)
		}
	}
}

// An admin rotation in one process just after the due date, then the schedule of another
// process fires: it does not rotate again, and the next scheduled rotation is a whole period
// after the admin one.
func TestScheduleAfterAdminRotation(t *testing.T) {
	db := openDB(t)
	clock := t0
	now := func() time.Time { return clock }
	admin := managerOn(t, db, now, slog.New(slog.DiscardHandler))
	sched := managerOn(t, db, now, slog.New(slog.DiscardHandler))
	rotatedAt := t0.Add(pol.Period + time.Second)
	clock = rotatedAt
	if err := admin.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	cur := admin.CurrentKID()
	clock = rotatedAt.Add(time.Millisecond)
	if err := sched.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countStates(t, db); n[identity.KeyRetired] != 1 {
		t.Fatalf("the schedule rotated again right after an admin rotation: %v", n)
	}
	if kid := sched.CurrentKID(); kid != cur {
		t.Fatalf("the scheduling process signs with %s, want %s", kid, cur)
	}
	clock = rotatedAt.Add(pol.Period - time.Second)
	if err := sched.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if kid := sched.CurrentKID(); kid != cur {
		t.Fatal("the schedule rotated less than a period after the admin rotation")
	}
	clock = rotatedAt.Add(pol.Period)
	if err := sched.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if kid := sched.CurrentKID(); kid == cur {
		t.Fatal("the schedule did not rotate a period after the admin rotation")
	}
}
