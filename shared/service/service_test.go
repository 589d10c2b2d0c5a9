package service_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"jwtidp/shared/envflag"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// fakeStore records what start-up did with it.
type fakeStore struct {
	closed     atomic.Bool
	bgRunning  *atomic.Bool
	closedLate atomic.Bool // closed while background work still ran
}

func (s *fakeStore) SetLogger(*slog.Logger)     {}
func (s *fakeStore) Ping(context.Context) error { return nil }
func (s *fakeStore) Close() error {
	s.closedLate.Store(s.bgRunning.Load())
	s.closed.Store(true)
	return nil
}

func program(store *fakeStore, buildErr error) *service.Program {
	var greeting string
	return &service.Program{
		Name: "demo", Version: "v1", Prefix: "DEMO", DefaultAddr: "127.0.0.1:0",
		Commands: map[string]service.Func{"hello": nil},
		Serve: service.Service[*fakeStore]{
			Flags: func(fs *envflag.Set) { fs.StringVar(&greeting, "greeting", "DEMO_GREETING", "hi", "what / answers") },
			Open: func(context.Context, service.Settings, time.Duration, *slog.Logger) (*fakeStore, error) {
				return store, nil
			},
			Build: func(ctx context.Context, r *service.Running[*fakeStore]) (service.App, error) {
				if buildErr != nil {
					return service.App{}, buildErr
				}
				r.Go(func(ctx context.Context) {
					store.bgRunning.Store(true)
					<-ctx.Done()
					// Wall time is the subject: the worker is still busy for a while after the
					// service is told to stop, and stopping must wait for it.
					time.Sleep(10 * time.Millisecond)
					store.bgRunning.Store(false)
				})
				h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(greeting)) })
				return service.App{Handler: h, Log: []any{"greeting", greeting}}, nil
			},
		},
	}
}

func TestServeStartsAndStops(t *testing.T) {
	store := &fakeStore{bgRunning: new(atomic.Bool)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := servicetest.Start(t, ctx, program(store, nil), "demo", "--data", t.TempDir(), "--greeting", "hello")
	resp, err := http.Get(in.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	in.Stopped(t)
	if !store.closed.Load() || store.closedLate.Load() {
		t.Fatalf("store closed %v, while background work ran %v", store.closed.Load(), store.closedLate.Load())
	}
	log := in.Log()
	for _, want := range []string{"msg=listening addr=" + in.Addr + " greeting=hello", "msg=stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestServeBuildFailureClosesStore(t *testing.T) {
	store := &fakeStore{bgRunning: new(atomic.Bool)}
	boom := errors.New("boom")
	err := program(store, boom).Run(context.Background(), []string{"demo", "--data", t.TempDir()}, service.Env{})
	if !errors.Is(err, boom) || !store.closed.Load() {
		t.Fatalf("Run: %v, store closed %v", err, store.closed.Load())
	}
}

func TestCommands(t *testing.T) {
	store := &fakeStore{bgRunning: new(atomic.Bool)}
	for _, tc := range []struct {
		args []string
		want string // on stdout, or the error
	}{
		{[]string{"demo", "--version"}, "demo v1\n"},
		{[]string{"demo", "serve", "--version"}, "demo v1\n"},
		{[]string{"demo", "version"}, "demo v1\n"},
		{[]string{"demo", "nope"}, `unknown command "nope" (commands: serve, hello, healthcheck, backup, version)`},
		{[]string{"demo", "--greeting", "x", "--addr", "nonsense"}, `invalid --addr (DEMO_ADDR) "nonsense"`},
		{[]string{"demo", "--read-header-timeout", "1ms"}, `invalid --read-header-timeout (DEMO_READ_HEADER_TIMEOUT) "1ms": must be at least 100ms`},
		{[]string{"demo", "--trusted-proxies", "10.0.0.0/8,bad"}, `invalid --trusted-proxies (DEMO_TRUSTED_PROXIES) "10.0.0.0/8,bad"`},
		// The URL may hold a password: an invalid one is named, never quoted.
		{[]string{"demo", "--database-url", "mysql://u:hunter2@db/x"}, `invalid --database-url (DEMO_DATABASE_URL): must be a postgres:// or postgresql:// URL`},
		{[]string{"demo", "--database-max-conns", "0"}, `invalid --database-max-conns (DEMO_DATABASE_MAX_CONNS) "0": must be between 1 and 1000`},
		{[]string{"demo", "--database-statement-timeout", "1ms"}, `invalid --database-statement-timeout (DEMO_DATABASE_STATEMENT_TIMEOUT) "1ms": must be at least 100ms`},
	} {
		var out strings.Builder
		err := program(store, nil).Run(context.Background(), tc.args, service.Env{Stdout: &out})
		got := out.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%v: got %q, want %q", tc.args, got, tc.want)
		}
	}
}
