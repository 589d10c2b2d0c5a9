// Package servicetest runs a service.Program in the test's own process, as main runs it, on
// port 0 with no environment: end-to-end tests without a binary to build. It is imported by
// tests only.
package servicetest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// Instance is a program serving in this process.
type Instance struct {
	Addr    string // host:port it listens on
	URL     string // http://Addr
	log     *proctest.LogBuffer
	cancel  context.CancelFunc
	stopped chan struct{} // closed once Run has returned, err then set
	err     error
}

// Log returns everything the program has written to stdout and stderr so far.
func (in *Instance) Log() string { return in.log.String() }

// WaitLog waits until cond holds of the program's log so far, checking it at once and after
// each write, and reports whether it held within timeout: for a line that background work (a
// retry loop, a delivery) or the end of a request writes after the test's call has returned.
func (in *Instance) WaitLog(timeout time.Duration, cond func(log string) bool) bool {
	return in.log.Wait(timeout, cond)
}

// Start runs p with args (args[0] the program's name, then e.g. "serve", "--addr",
// "127.0.0.1:0") until ctx ends or the test ends, and returns once it listens: the address
// comes from service.Env.Ready, not from the log. It fails t if the program stops or is not
// ready within 30 s.
func Start(t testing.TB, ctx context.Context, p *service.Program, args ...string) *Instance {
	t.Helper()
	return StartEnv(t, ctx, p, service.Env{}, args...)
}

// StartEnv is Start with an environment: env.Getenv and env.Clock (a clock.Fake the test
// advances) are passed on; the instance's log and ready signal replace env's Stdout, Stderr
// and Ready. The instance's log is searched for proctest.Secret values after the package's
// tests (proctest.CheckLogs), like a binary's.
func StartEnv(t testing.TB, ctx context.Context, p *service.Program, env service.Env, args ...string) *Instance {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	in := &Instance{log: &proctest.LogBuffer{}, cancel: cancel, stopped: make(chan struct{})}
	addr := make(chan string, 1)
	env.Stdout, env.Stderr, env.Ready = in.log, in.log, func(a string) { addr <- a }
	go func() {
		in.err = p.Run(ctx, args, env)
		close(in.stopped)
	}()
	proctest.RememberLog(p.Name+" (in-process)", func() string { return Searchable(in.Log()) })
	// When the test ends the program stops, and has stopped before the test's temporary
	// folders are removed (cleanups run last-registered first).
	t.Cleanup(func() {
		closeIdleConns()
		cancel()
		<-in.stopped
	})
	select {
	case in.Addr = <-addr:
		in.URL = "http://" + in.Addr
		return in
	case <-in.stopped:
		t.Fatalf("%s returned before it was ready: %v\n%s", p.Name, in.err, in.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready within 30s\n%s", p.Name, in.Log())
	}
	return nil
}

// Stop cancels the program's context and waits (at most 20 s) for Run to return; it returns
// Run's error, nil on a clean stop.
func (in *Instance) Stop() error {
	closeIdleConns()
	in.cancel()
	select {
	case <-in.stopped:
		return in.err
	case <-time.After(20 * time.Second):
		return errors.New("Run did not return within 20s")
	}
}

// Stopped waits (at most 20 s) for the program to return after its context was cancelled, and
// fails t unless it returned nil — a clean stop.
func (in *Instance) Stopped(t testing.TB) {
	t.Helper()
	select {
	case <-in.stopped:
		if in.err != nil {
			t.Fatalf("Run returned %v\n%s", in.err, in.Log())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return within 20s\n%s", in.Log())
	}
}

// closeIdleConns closes the test's idle client connections before a service stops. A
// connection the client dialled but never sent a request on (the transport dials more than it
// uses under concurrency) is one a graceful shutdown waits for, up to 5 s, as if a request
// were coming; a killed binary never waited.
func closeIdleConns() {
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// Searchable is a log as the secret-leak search (proctest.LeakedSecrets) reads it: the log
// itself and, after it, every string in its JSON lines (--log-format json) decoded, so that a
// secret JSON escaped ("\"", "\\", a control character, \u2028) is still found as it was.
func Searchable(log string) string {
	var decoded strings.Builder
	for line := range strings.Lines(log) {
		var v any
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &v) != nil {
			continue
		}
		appendStrings(&decoded, v)
	}
	if decoded.Len() == 0 {
		return log
	}
	return log + "\n" + decoded.String()
}

func appendStrings(b *strings.Builder, v any) {
	switch v := v.(type) {
	case string:
		b.WriteString(v)
		b.WriteByte('\n')
	case map[string]any:
		for k, x := range v {
			b.WriteString(k)
			b.WriteByte('\n')
			appendStrings(b, x)
		}
	case []any:
		for _, x := range v {
			appendStrings(b, x)
		}
	}
}
