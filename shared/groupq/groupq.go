// Package groupq gathers the calls that arrive while a group of earlier calls is being served
// into the next group: a group commit without a timer. A call that finds nothing in flight is
// served at once, alone; calls that arrive during a group's service wait for it to end and
// then go together. Both stores use it: bbolt's writes (boltfile) and PostgreSQL's refresh
// reads and writes (idp/pgstore).
package groupq

import (
	"context"
	"sync"
)

// Queue serves calls group by group on a goroutine of its own, which runs while calls are
// queued and ends when none is. Run is given each group (at most Max calls, all when Max is 0)
// and returns one answer a call, in the group's order.
type Queue[C, R any] struct {
	Run func(group []C) []R
	Max int

	mu      sync.Mutex
	pending []call[C, R]
	running bool // a goroutine is serving the queue
}

type call[C, R any] struct {
	in     C
	answer chan R
}

// Do queues c for the next group and returns its answer.
func (q *Queue[C, R]) Do(c C) R {
	return <-q.queue(c)
}

// DoContext is Do for a caller that may leave: when ctx ends before c's answer, it returns
// ctx's error at once. c stays in its group (it may have been sent), and its answer is dropped.
func (q *Queue[C, R]) DoContext(ctx context.Context, c C) (R, error) {
	if err := ctx.Err(); err != nil { // gone already: nothing to queue
		var zero R
		return zero, err
	}
	select {
	case r := <-q.queue(c):
		return r, nil
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// queue adds c to the next group; its answer comes on the channel, which never blocks Run.
func (q *Queue[C, R]) queue(c C) chan R {
	answer := make(chan R, 1)
	q.mu.Lock()
	q.pending = append(q.pending, call[C, R]{c, answer})
	if !q.running {
		q.running = true
		go q.serve()
	}
	q.mu.Unlock()
	return answer
}

// Queued is how many calls wait for a group (not those of the group being served).
func (q *Queue[C, R]) Queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// serve runs the queued calls, group after group, until none is queued.
func (q *Queue[C, R]) serve() {
	for {
		q.mu.Lock()
		group := q.pending
		if q.Max > 0 && len(group) > q.Max {
			group, q.pending = group[:q.Max:q.Max], group[q.Max:]
		} else {
			q.pending = nil
		}
		if len(group) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		in := make([]C, len(group))
		for i, c := range group {
			in[i] = c.in
		}
		for i, r := range q.Run(in) {
			group[i].answer <- r
		}
	}
}
