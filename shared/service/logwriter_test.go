package service

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"jwtidp/shared/proctest"
)

// gate is an io.Writer whose writes wait until the test lets them through, reporting each.
type gate struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes []int // the length of each Write
	enter  chan struct{}
	open   chan struct{}
}

func newGate() *gate { return &gate{enter: make(chan struct{}, 100), open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	select {
	case g.enter <- struct{}{}:
	default:
	}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes = append(g.writes, len(p))
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestLineWriterWritesAnIdleLineWithoutClose(t *testing.T) {
	g := newGate()
	close(g.open)
	l := newLineWriter(g)
	defer l.Close()
	if n, err := l.Write([]byte("one\n")); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	wait(t, g.enter, "the line's write")
	// The write has begun; Close returns once it is done.
	l.Close()
	if got := g.String(); got != "one\n" {
		t.Fatalf("written %q", got)
	}
}

func TestLineWriterGroupsLinesWhileAWriteIsUnderway(t *testing.T) {
	g := newGate()
	l := newLineWriter(g)
	l.Write([]byte("first\n"))
	wait(t, g.enter, "the first write") // the goroutine is in the first write, held
	for i := range 50 {
		fmt.Fprintf(l, "line %d\n", i)
	}
	close(g.open)
	l.Close()
	if len(g.writes) != 2 {
		t.Fatalf("writes of %v bytes, want the first line and then the 50 in one", g.writes)
	}
	var want strings.Builder
	want.WriteString("first\n")
	for i := range 50 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if got := g.String(); got != want.String() {
		t.Fatalf("written %q, want %q", got, want.String())
	}
}

func TestLineWriterKeepsEveryLineWholeAndInOrder(t *testing.T) {
	var out bytes.Buffer
	l := newLineWriter(&out)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				fmt.Fprintf(l, "writer=%d line=%d %s\n", w, i, strings.Repeat("x", i%40))
			}
		})
	}
	wg.Wait()
	l.Close()
	fmt.Fprintf(l, "after close\n")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500+1 || lines[len(lines)-1] != "after close" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	next := make([]int, 8)
	for _, line := range lines[:len(lines)-1] {
		var w, i int
		f := strings.Fields(line + " ")
		fmt.Sscanf(f[0]+" "+f[1], "writer=%d line=%d", &w, &i)
		pad := strings.TrimPrefix(line, f[0]+" "+f[1]+" ")
		if i != next[w] || len(pad) != i%40 {
			t.Fatalf("line %q: want writer %d's line %d, whole", line, w, next[w])
		}
		next[w]++
	}
}

func TestLineWriterHoldsCallersOnceItsBufferIsFull(t *testing.T) {
	// In a bubble, synctest.Wait returns once every goroutine is blocked for good: the writer's
	// in the gate, the held caller's (if it waits) on the full buffer.
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		l := newLineWriter(g)
		l.Write([]byte("first\n"))
		<-g.enter // the goroutine is in the first write, held
		line := []byte(strings.Repeat("y", 1023) + "\n")
		for range maxPending / len(line) {
			l.Write(line) // fills the buffer; none of these waits
		}
		held := make(chan struct{})
		go func() {
			l.Write([]byte("held\n"))
			close(held)
		}()
		synctest.Wait()
		select {
		case <-held:
			t.Fatal("a Write past the full buffer returned while the writer was stuck")
		default:
		}
		close(g.open)
		<-held
		l.Close()
		if got := g.String(); !strings.HasSuffix(got, "held\n") || len(got) != 6+maxPending+5 {
			t.Fatalf("written %d bytes, ending %q", len(got), got[len(got)-10:])
		}
	})
}

// Close while lines are still coming: it returns, and every line whose Write returned is there,
// whole, once Close and the Writes are done.
func TestLineWriterClosesWhileLinesComeIn(t *testing.T) {
	for range 200 {
		var out proctest.LogBuffer
		l := newLineWriter(&out)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 20 {
					fmt.Fprintf(l, "w%d-%d\n", w, i)
					l.Write(nil)
				}
			})
		}
		closed := make(chan struct{})
		go func() { l.Close(); close(closed) }()
		wait(t, closed, "Close")
		wg.Wait()
		if got := strings.Count(out.String(), "\n"); got != 80 {
			t.Fatalf("%d lines, want 80: %q", got, out.String())
		}
	}
}

type nopStore struct{}

func (nopStore) SetLogger(*slog.Logger)     {}
func (nopStore) Ping(context.Context) error { return nil }
func (nopStore) Close() error               { return nil }

// A background task's panic writes the waiting log lines before it ends the process, and
// panics on with the same value.
func TestBackgroundPanicFlushesTheLog(t *testing.T) {
	flushed := false
	r := &Running[nopStore]{flushLog: func() { flushed = true }}
	var got any
	func() {
		defer func() { got = recover() }()
		defer r.flushOnPanic()
		panic("boom")
	}()
	if !flushed || got != "boom" {
		t.Fatalf("flushed %v, panic %v", flushed, got)
	}
}
