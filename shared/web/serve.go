package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"
)

// NewServer returns an http.Server with every timeout and the header limit set, so slow or
// greedy clients cannot hold connections or memory.
func NewServer(h http.Handler, logger *slog.Logger, readHeader time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeader,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// Serve serves on ln until ctx is done, then marks the service not ready, lets in-flight
// requests finish (up to grace) and returns. It returns nil on a clean stop.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, ready *Readiness, grace time.Duration, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	ready.Stopping()
	logger.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Readiness is what /readyz reports: the checks pass and the service is not stopping.
type Readiness struct {
	stopping atomic.Bool
	checks   []func(context.Context) error
}

// NewReadiness returns a Readiness over the given checks.
func NewReadiness(checks ...func(context.Context) error) *Readiness {
	return &Readiness{checks: checks}
}

// Add adds checks. It is for start-up, before the service serves: Check does not lock.
func (r *Readiness) Add(checks ...func(context.Context) error) {
	r.checks = append(r.checks, checks...)
}

// Stopping makes /readyz answer 503 from now on.
func (r *Readiness) Stopping() { r.stopping.Store(true) }

// Check returns nil when the service is ready.
func (r *Readiness) Check(ctx context.Context) error {
	if r.stopping.Load() {
		return errors.New("shutting down")
	}
	for _, c := range r.checks {
		if err := c(ctx); err != nil {
			return err
		}
	}
	return nil
}

// HandleHealthz answers liveness: the process serves HTTP.
func HandleHealthz() http.Handler {
	body := []byte(`{"status":"ok"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// HandleReadyz answers 200 when ready and 503 with the reason otherwise.
func HandleReadyz(ready *Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ready.Check(r.Context()); err != nil {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// ServePprof serves net/http/pprof on its own listener at addr until ctx ends. It is off unless
// an operator asks for it (--pprof-addr), and never on the service's public address.
func ServePprof(ctx context.Context, addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on --pprof-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	logger.Warn("pprof enabled", "addr", ln.Addr().String())
	go srv.Serve(ln)
	return nil
}
