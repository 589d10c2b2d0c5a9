// Package servicetest runs a service.Program in the test's own process, as main runs it, on
// port 0 with no environment: end-to-end tests without a binary to build. It is imported by
// tests only.
package servicetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"jwtidp/shared/service"
)

// Instance is a program serving in this process.
type Instance struct {
	Addr string // host:port it listens on
	URL  string // http://Addr
	log  *logBuffer
	done chan error
}

// Log returns everything the program has written to stdout and stderr so far.
func (in *Instance) Log() string { return in.log.String() }

// Start runs p with args (args[0] the program's name, then e.g. "serve", "--addr",
// "127.0.0.1:0") until ctx ends, and returns once it listens: the address comes from
// service.Env.Ready, not from the log. It fails t if the program stops or is not ready within
// 30 s.
func Start(t testing.TB, ctx context.Context, p *service.Program, args ...string) *Instance {
	t.Helper()
	in := &Instance{log: &logBuffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	env := service.Env{Stdout: in.log, Stderr: in.log, Ready: func(a string) { addr <- a }}
	go func() { in.done <- p.Run(ctx, args, env) }()
	select {
	case in.Addr = <-addr:
		in.URL = "http://" + in.Addr
		return in
	case err := <-in.done:
		t.Fatalf("%s returned before it was ready: %v\n%s", p.Name, err, in.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready within 30s\n%s", p.Name, in.Log())
	}
	return nil
}

// Stopped waits (at most 20 s) for the program to return after its context was cancelled, and
// fails t unless it returned nil — a clean stop.
func (in *Instance) Stopped(t testing.TB) {
	t.Helper()
	select {
	case err := <-in.done:
		if err != nil {
			t.Fatalf("Run returned %v\n%s", err, in.Log())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return within 20s\n%s", in.Log())
	}
}

// logBuffer is a log the program writes while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
