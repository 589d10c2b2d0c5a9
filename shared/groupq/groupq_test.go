package groupq

import (
	"slices"
	"sync"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// Calls that arrive while a group is served go together in the next one, at most Max to a
// group, in the order they were queued; a call alone is served at once, and the serving
// goroutine ends when the queue is empty (a later call starts another).
func TestGroups(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var groups [][]int
	q := &Queue[int]{Max: 4, Run: func(g []int) {
		mu.Lock()
		groups = append(groups, slices.Clone(g))
		mu.Unlock()
		if g[0] == 0 {
			<-release // the first group is held while the others queue
		}
	}}
	q.Add(0)
	if !proctest.Eventually(10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(groups) == 1 }) {
		t.Fatal("a call alone was not served at once")
	}
	for i := 1; i <= 10; i++ {
		q.Add(i)
	}
	if q.Queued() != 10 {
		t.Fatalf("%d queued behind the held group, want 10", q.Queued())
	}
	close(release)
	if !proctest.Eventually(10*time.Second, func() bool { return q.Queued() == 0 && !q.serving() }) {
		t.Fatal("the queue was not drained")
	}
	want := [][]int{{0}, {1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}}
	if !slices.EqualFunc(groups, want, slices.Equal) {
		t.Fatalf("groups %v, want %v", groups, want)
	}
	q.Add(11)
	if !proctest.Eventually(10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(groups) == 5 }) {
		t.Fatal("a call after the queue emptied was not served")
	}
}

func (q *Queue[C]) serving() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}
