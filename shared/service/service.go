// Package service is how both binaries start: their command line (serve by default, then
// healthcheck, backup, version and their own commands), the settings every service has, and
// one start-up sequence — settings, logger, store, listener, pprof, metrics registry,
// readiness, the service's own wiring, serve until the context ends, stopped. A binary keeps
// only its own settings and wiring.
//
// Nothing here is global (flag set, metrics registry, logger, signals are all made per run), so
// two services can run in one test process; Env.Ready tells a test where one listens.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"jwtidp/shared/clock"
	"jwtidp/shared/envflag"
	"jwtidp/shared/gcfloor"
	"jwtidp/shared/ops"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/web"
)

// Env is what a command gets instead of the process's globals. A nil Getenv is an empty
// environment, a nil writer discards.
type Env struct {
	Getenv         func(string) string
	Stdout, Stderr io.Writer
	// Ready, when not nil, is called with the address the service listens on once it accepts
	// connections: tests start it on port 0 and learn the address here, not from the log. It
	// is called on the serving goroutine and must not block.
	Ready func(addr string)
	// Clock is the time the service reads (token lifetimes, lockouts, sessions, the key
	// schedule); nil is the wall clock. Tests pass a clock.Fake and advance it.
	Clock clock.Clock
	// Hangups subscribes to the process's SIGHUP (Main's); stop ends the subscription. Only a
	// service that asks (Running.OnHangup) subscribes, so SIGHUP keeps its default (the end of
	// the process) for the others. nil: no SIGHUP arrives; a test passes its own channel.
	Hangups func() (sig <-chan os.Signal, stop func())
}

// hangups is Main's Env.Hangups: the process's SIGHUP.
func hangups() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// Func is a subcommand of a program; args are those after its name.
type Func func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Program is one binary's command line.
type Program struct {
	Name        string // "idp": in messages, `idp serve`, the default data folder ./data/idp
	Version     string
	Prefix      string // of its variables: "IDP" for IDP_ADDR, IDP_DATA, …
	DefaultAddr string
	Serve       Server          // the default command
	Commands    map[string]Func // its own commands, beside serve, healthcheck, backup and version
}

// Server is a program's serve command: a Service.
type Server interface {
	serve(ctx context.Context, p *Program, args []string, env Env) error
}

// DefaultReadHeaderTimeout is --read-header-timeout's default.
const DefaultReadHeaderTimeout = 5 * time.Second

// Main runs p as the process: it stops on SIGINT or SIGTERM, keeps the collector's heap goal at
// or above gcfloor.Default (unless GOGC is set), reports an error on stderr after the program's
// name, and returns the exit status for os.Exit (main keeps os.Exit, os.Args and os.Getenv to
// itself).
func Main(p *Program, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer gcfloor.Install(gcfloor.Default, getenv).Stop()
	if err := p.Run(ctx, args, Env{Getenv: getenv, Stdout: stdout, Stderr: stderr, Hangups: hangups}); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return 1
	}
	return 0
}

// Run is the whole program, as main runs it and as tests run it in-process: the command args
// names (args[0] is the program's path, as in os.Args), serve when none is named, also with
// only flags; `--version` alone is version. A test starts serve on port 0 (--addr
// 127.0.0.1:0) and learns the address from env.Ready; cancelling ctx stops it, and Run returns
// nil on a clean stop.
func (p *Program) Run(ctx context.Context, args []string, env Env) error {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	cmd, rest := "serve", args[min(1, len(args)):]
	if len(rest) > 0 && rest[0] == "--version" {
		cmd, rest = "version", nil
	}
	if len(rest) > 0 && (rest[0] == "" || rest[0][0] != '-') {
		cmd, rest = rest[0], rest[1:]
	}
	addrVar := p.Prefix + "_ADDR"
	switch cmd {
	case "serve":
		return p.Serve.serve(ctx, p, rest, env)
	case "healthcheck":
		return ops.Healthcheck(ctx, p.Name, addrVar, p.DefaultAddr, rest, env.Getenv, env.Stdout, env.Stderr)
	case "backup":
		return ops.Backup(ctx, p.Name, addrVar, p.DefaultAddr, p.Prefix+"_ADMIN_TOKEN", rest, env.Getenv, env.Stdout, env.Stderr)
	case "version":
		fmt.Fprintln(env.Stdout, p.Name, p.Version)
		return nil
	}
	if f, ok := p.Commands[cmd]; ok {
		return f(ctx, rest, env.Getenv, env.Stdout, env.Stderr)
	}
	names := append(append([]string{"serve"}, slices.Sorted(maps.Keys(p.Commands))...), "healthcheck", "backup", "version")
	return fmt.Errorf("unknown command %q (commands: %s)", cmd, strings.Join(names, ", "))
}

// Settings are the settings every service has, each a flag and a variable under the program's
// prefix (--addr and IDP_ADDR).
type Settings struct {
	Addr       string // listen address; port 0 picks a free one
	Data       string // data folder, the store inside
	LogLevel   slog.Level
	LogFormat  string          // "text" (slog's key=value) or "json" (one object per line)
	ReadHeader time.Duration   // time a client has to send its request headers
	PprofAddr  string          // where net/http/pprof is served; "": nowhere
	Clients    web.ClientAddrs // whose X-Forwarded-For is believed (--trusted-proxies)
	Version    bool            // print the version instead of serving
	// Database, when its URL is set, is the PostgreSQL database that replaces the bbolt store
	// in Data, so that several processes can serve as replicas.
	Database pgdb.Config
}

// Replicated reports whether the store is a database other processes may share.
func (s Settings) Replicated() bool { return s.Database.URL != "" }

// DefineSettings defines the settings every service has on fs, as serve does, for a command
// that checks settings without serving (idp config check).
func (p *Program) DefineSettings(fs *envflag.Set) *Settings {
	s := new(Settings)
	s.define(fs, p)
	return s
}

func (s *Settings) define(fs *envflag.Set, p *Program) {
	v := func(name string) string { return p.Prefix + "_" + name }
	fs.StringVar(&s.Addr, "addr", v("ADDR"), p.DefaultAddr, "listen address")
	fs.StringVar(&s.Data, "data", v("DATA"), "./data/"+p.Name, "data folder (the bbolt file lives inside)")
	fs.TextVar(&s.LogLevel, "log-level", v("LOG_LEVEL"), slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", v("LOG_FORMAT"), "text", "log line `format`: text (key=value) or json (one JSON object per line, for log shippers)")
	fs.Require(func() bool { return s.LogFormat == "text" || s.LogFormat == "json" }, "be text or json", "log-format")
	fs.DurationVar(&s.ReadHeader, "read-header-timeout", v("READ_HEADER_TIMEOUT"), DefaultReadHeaderTimeout, "time a client has to send its request headers (slow clients are cut off)")
	fs.StringVar(&s.PprofAddr, "pprof-addr", v("PPROF_ADDR"), "", "serve Go profiling (pprof) on this address; off when empty")
	fs.Var(prefixes{&s.Clients.Trusted}, "trusted-proxies", v("TRUSTED_PROXIES"), "proxies whose X-Forwarded-For is believed (comma-separated `addresses` or CIDRs)")
	fs.BoolVar(&s.Version, "version", "", false, "print the version and exit")
	fs.StringVar(&s.Database.URL, "database-url", v("DATABASE_URL"), "", "a postgres:// `URL`: PostgreSQL instead of the bbolt store in --data, so several processes can serve as replicas")
	fs.Secret("database-url") // it may hold a password
	var maxConns int
	fs.IntVar(&maxConns, "database-max-conns", v("DATABASE_MAX_CONNS"), 10, "connections this process keeps open to the database at most")
	fs.DurationVar(&s.Database.ConnectTimeout, "database-connect-timeout", v("DATABASE_CONNECT_TIMEOUT"), 5*time.Second, "how long connecting to the database may take")
	fs.DurationVar(&s.Database.StatementTimeout, "database-statement-timeout", v("DATABASE_STATEMENT_TIMEOUT"), 5*time.Second, "how long one database statement may run")
	fs.Check(func() error {
		if s.Database.URL != "" && !pgdb.IsURL(s.Database.URL) {
			return errors.New("must be a postgres:// or postgresql:// URL")
		}
		return nil
	}, "database-url")
	fs.Require(func() bool {
		s.Database.MaxConns = int32(min(max(maxConns, 0), 1000))
		return maxConns >= 1 && maxConns <= 1000
	}, "be between 1 and 1000", "database-max-conns")
	fs.Require(func() bool { return s.Database.ConnectTimeout >= 100*time.Millisecond }, "be at least 100ms", "database-connect-timeout")
	fs.Require(func() bool { return s.Database.StatementTimeout >= 100*time.Millisecond }, "be at least 100ms", "database-statement-timeout")
	fs.Check(func() error {
		_, _, err := net.SplitHostPort(s.Addr)
		return err
	}, "addr")
	fs.Require(func() bool { return s.Data != "" }, "name a folder", "data")
	fs.Require(func() bool { return s.ReadHeader >= 100*time.Millisecond }, "be at least 100ms", "read-header-timeout")
}

// newLogger is the service's one logger, in the format --log-format names: every line of the
// service — start-up, requests (with their request_id), errors — goes through it.
func newLogger(w io.Writer, set Settings) *slog.Logger {
	return slog.New(web.NewLogHandler(w, set.LogFormat == "json", set.LogLevel))
}

// prefixes is --trusted-proxies: comma-separated addresses and CIDR prefixes.
type prefixes struct{ p *[]netip.Prefix }

func (v prefixes) Set(s string) error {
	ps, err := web.ParsePrefixes(s)
	if err == nil {
		*v.p = ps
	}
	return err
}

func (v prefixes) String() string {
	if v.p == nil {
		return ""
	}
	var out []string
	for _, p := range *v.p {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

// HTTPURL parses a setting that must be an absolute http or https URL (an issuer, a JWKS URL).
func HTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("must be an absolute http or https URL")
	}
	return u, nil
}

// Store is what start-up needs of a service's store.
type Store interface {
	SetLogger(*slog.Logger)     // where storage failures are reported
	Ping(context.Context) error // readiness
	Close() error
}

// servedMarker is a shared store that records that a service has served from it, so that a
// later store copy into it is refused.
type servedMarker interface {
	MarkServed(ctx context.Context) error
}

// Stores is a Service's Open for a program with both backends: pg opens PostgreSQL when
// --database-url is set, bolt the bbolt store in --data otherwise. (A nil store with an error
// is fine: start-up stops at the error.)
func Stores[S Store](bolt func(dir string, lockTimeout time.Duration) (S, error),
	pg func(ctx context.Context, cfg pgdb.Config, logger *slog.Logger) (S, error)) func(context.Context, Settings, time.Duration, *slog.Logger) (S, error) {
	return func(ctx context.Context, set Settings, lockTimeout time.Duration, logger *slog.Logger) (S, error) {
		if set.Replicated() {
			return pg(ctx, set.Database, logger)
		}
		return bolt(set.Data, lockTimeout)
	}
}

// Service is a program's serve command: the service's own settings, its store and its wiring.
type Service[S Store] struct {
	// Flags defines the service's own settings beside the common ones, with the rules that
	// validate them (envflag.Set.Check), so a bad value stops start-up naming its setting.
	Flags func(fs *envflag.Set)
	// Open opens the store the settings name: PostgreSQL when set.Database.URL is set, else
	// the bbolt store in set.Data, waiting at most lockTimeout for another process's lock.
	Open func(ctx context.Context, set Settings, lockTimeout time.Duration, logger *slog.Logger) (S, error)
	// Build wires the service once its store is open and it listens. ctx ends when the service
	// stops; background work runs under Running.Go.
	Build func(ctx context.Context, r *Running[S]) (App, error)
}

// Running is what start-up made for a service's Build.
type Running[S Store] struct {
	Settings Settings             // the common settings, as parsed
	Addr     string               // the address it listens on (port 0 resolved)
	Store    S                    // open; closed after the service stops
	Logger   *slog.Logger         // adds request_id to lines logged with a request's context
	Registry *prometheus.Registry // this service's own, with the Go and process collectors
	Ready    *web.Readiness       // checks the store; Build adds its own checks (Add)
	Clock    clock.Clock          // Env.Clock, or the wall clock: what Build passes as "now"
	ctx      context.Context
	wg       *sync.WaitGroup
	hangups  func() (<-chan os.Signal, func())
	flushLog func() // writes the log lines still waiting (lineWriter.Close); nil without one
}

// OnHangup runs fn at every SIGHUP until the service stops (one at a time, in the background,
// as Go runs work); without it SIGHUP ends the process as it always did.
func (r *Running[S]) OnHangup(fn func(ctx context.Context)) {
	if r.hangups == nil {
		return
	}
	sig, stop := r.hangups()
	r.Go(func(ctx context.Context) {
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				fn(ctx)
			}
		}
	})
}

// Go runs fn in the background until the service stops: fn must return once ctx ends, and the
// store closes only after it has.
func (r *Running[S]) Go(fn func(ctx context.Context)) {
	r.wg.Go(func() {
		defer r.flushOnPanic()
		fn(r.ctx)
	})
}

// flushOnPanic writes the log lines still waiting (lineWriter) before a background task's
// panic ends the process: the last of them are often what explains it.
func (r *Running[S]) flushOnPanic() {
	if p := recover(); p != nil {
		if r.flushLog != nil {
			r.flushLog()
		}
		panic(p)
	}
}

// App is what Build gives back.
type App struct {
	Handler http.Handler
	Log     []any // attributes of the "listening" line, after addr
}

// grace is how long in-flight requests may take to finish once the service is stopping.
const grace = 10 * time.Second

func (s Service[S]) serve(ctx context.Context, p *Program, args []string, env Env) error {
	var set Settings
	fs := envflag.New(p.Name+" serve", env.Stderr)
	set.define(fs, p)
	s.Flags(fs)
	if err := fs.Parse(args, env.Getenv); err != nil {
		return err
	}
	if set.Version {
		fmt.Fprintln(env.Stdout, p.Name, p.Version)
		return nil
	}
	logOut := env.Stderr
	var flushLog func() // nil: lines are written as they come
	if f, ok := logOut.(*os.File); ok {
		// The process's own stderr: its lines go out grouped (lineWriter). A test's in-memory
		// writer has no system call or reader to spare, and reads its lines as they come.
		lw := newLineWriter(f)
		defer lw.Close()
		logOut, flushLog = lw, lw.Close
	}
	logger := newLogger(logOut, set)

	store, err := s.Open(ctx, set, time.Second, logger.With("component", "store"))
	if err != nil {
		return err
	}
	defer store.Close()
	store.SetLogger(logger.With("component", "store"))
	if m, ok := any(store).(servedMarker); ok && set.Replicated() {
		if err := m.MarkServed(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
	}

	ln, err := net.Listen("tcp", set.Addr)
	if err != nil {
		return fmt.Errorf("listen on --addr %s: %w", set.Addr, err)
	}
	defer ln.Close()

	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() {
		stopBG()
		wg.Wait()
	}
	defer stop()
	if set.PprofAddr != "" {
		if err := web.ServePprof(bg, set.PprofAddr, logger); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := &Running[S]{
		Settings: set, Addr: ln.Addr().String(), Store: store, Logger: logger, Registry: reg,
		Ready: web.NewReadiness(store.Ping), Clock: clock.Or(env.Clock), ctx: bg, wg: &wg, hangups: env.Hangups,
		flushLog: flushLog,
	}
	app, err := s.Build(bg, r)
	if err != nil {
		return err
	}

	logger.Info("listening", append([]any{"addr", r.Addr}, app.Log...)...)
	if env.Ready != nil {
		env.Ready(r.Addr)
	}
	err = web.Serve(ctx, web.NewServer(app.Handler, logger, set.ReadHeader), ln, r.Ready, grace, logger)
	stop()
	logger.Info("stopped")
	return err
}
