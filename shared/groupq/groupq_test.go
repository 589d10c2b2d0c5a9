package groupq

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// Calls that arrive while a group is served go together in the next one, at most Max to a
// group, in the order they were queued, and each gets its own answer; a call alone is served
// at once, and the serving goroutine ends when the queue is empty (a later call starts another).
func TestGroups(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var groups [][]int
	q := &Queue[int, int]{Max: 4, Run: func(g []int) []int {
		mu.Lock()
		groups = append(groups, slices.Clone(g))
		mu.Unlock()
		if g[0] == 0 {
			<-release // the first group is held while the others queue
		}
		answers := make([]int, len(g))
		for i, c := range g {
			answers[i] = -c
		}
		return answers
	}}
	answers := make([]int, 12)
	var wg sync.WaitGroup
	do := func(c int) { wg.Go(func() { answers[c] = q.Do(c) }) }
	do(0)
	if !proctest.Eventually(10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(groups) == 1 }) {
		t.Fatal("a call alone was not served at once")
	}
	for i := 1; i <= 10; i++ {
		do(i)
		if !proctest.Eventually(10*time.Second, func() bool { return q.Queued() == i }) { // in this order
			t.Fatalf("%d queued behind the held group, want %d", q.Queued(), i)
		}
	}
	close(release)
	wg.Wait()
	want := [][]int{{0}, {1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}}
	if !slices.EqualFunc(groups, want, slices.Equal) {
		t.Fatalf("groups %v, want %v", groups, want)
	}
	if !proctest.Eventually(10*time.Second, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return !q.running }) {
		t.Fatal("the queue's goroutine did not end")
	}
	do(11)
	wg.Wait()
	for i, a := range answers {
		if a != -i {
			t.Fatalf("call %d answered %d, want %d", i, a, -i)
		}
	}
}

// A caller whose context ends while its group is served leaves at once with the context's
// error; the group is served to its end, and the calls after it are answered as ever.
func TestDoContextLeaves(t *testing.T) {
	release := make(chan struct{})
	q := &Queue[int, int]{Run: func(g []int) []int {
		if g[0] == 0 {
			<-release
		}
		answers := make([]int, len(g))
		for i, c := range g {
			answers[i] = -c
		}
		return answers
	}}
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() { _, err := q.DoContext(ctx, 0); left <- err }()
	if !proctest.Eventually(10*time.Second, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.running && len(q.pending) == 0 }) {
		t.Fatal("the call was not served")
	}
	cancel()
	select {
	case err := <-left:
		if err != context.Canceled {
			t.Fatalf("a caller whose context ended: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a caller whose context ended still waits for its group")
	}
	// A caller gone before it asks queues nothing (while the group is held, a call queued would
	// stay queued).
	if _, err := q.DoContext(ctx, 8); err != context.Canceled || q.Queued() != 0 {
		close(release)
		t.Fatalf("a call with its context ended: %v, %d queued; want context.Canceled and none", err, q.Queued())
	}
	close(release) // the group ends; its dropped answer blocks nothing
	next, cancelNext := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelNext()
	if r, err := q.DoContext(next, 7); r != -7 || err != nil {
		t.Fatalf("the next call: %d, %v (the queue held up by the answer dropped?)", r, err)
	}
}
