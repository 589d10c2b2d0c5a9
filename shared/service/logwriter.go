package service

import (
	"io"
	"sync"
)

// maxPending is how many bytes of log lines may wait for the writer before a line's caller waits
// with them: a reader that stops reading (a full pipe) slows the service, as a direct write
// would, rather than growing its memory.
const maxPending = 1 << 20

// lineWriter writes the service's log lines to its stderr from one goroutine, every line that
// came in since its last write in one write(2). slog's handlers hold a lock around their Write,
// so a service writing each line itself makes its requests queue behind one system call each
// and wakes whoever reads the pipe (journald, a container runtime) once a line; under load this
// writes many lines a call and the reader wakes once for them. When idle a line is written as
// soon as the goroutine wakes, in order; Close writes what is left, and lines written after
// Close go straight through. serve closes it when it returns, and a panic of a task run by
// Running.Go closes it before the process dies; a process ended otherwise (a panic on another
// goroutine, a signal it does not handle) loses the lines not yet written: those of its last
// moments, or up to maxPending behind a reader that stopped reading.
type lineWriter struct {
	w    io.Writer
	kick chan struct{} // one token: lines are waiting
	done chan struct{} // closed when the goroutine has written the last lines and returned

	mu      sync.Mutex
	space   sync.Cond // broadcast when the goroutine takes the pending lines
	pending []byte
	closed  bool
}

func newLineWriter(w io.Writer) *lineWriter {
	l := &lineWriter{w: w, kick: make(chan struct{}, 1), done: make(chan struct{})}
	l.space.L = &l.mu
	go l.run()
	return l
}

func (l *lineWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil // nothing to wake the goroutine for
	}
	l.mu.Lock()
	for len(l.pending) >= maxPending && !l.closed {
		l.space.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		<-l.done // after the lines before it
		return l.w.Write(p)
	}
	first := len(l.pending) == 0
	l.pending = append(l.pending, p...)
	l.mu.Unlock()
	if first {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (l *lineWriter) run() {
	defer close(l.done)
	var spare []byte
	for range l.kick {
		l.mu.Lock()
		b, closed := l.pending, l.closed
		l.pending = spare[:0]
		l.space.Broadcast()
		l.mu.Unlock()
		if len(b) > 0 {
			l.w.Write(b) // as slog does, a failed write of a log line is dropped
		}
		if closed {
			return
		}
		if cap(b) > 64<<10 {
			b = nil // a burst's buffer is not kept for good
		}
		spare = b
	}
}

// Close writes the lines still waiting and returns once they are written; later lines are
// written by their callers.
func (l *lineWriter) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return
	}
	l.closed = true
	l.space.Broadcast()
	l.mu.Unlock()
	// The goroutine takes the last lines on this token, or on the one already waiting, finds
	// closed set and returns.
	select {
	case l.kick <- struct{}{}:
	default:
	}
	<-l.done
}
