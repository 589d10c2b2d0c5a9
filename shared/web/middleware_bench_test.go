package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// benchMiddleware is the common middleware over a handler that answers 204, as a service builds
// it (a metrics registry, NewLogHandler's text logger to io.Discard — the write itself is the
// logger's destination's cost — and a trusted proxy), and a request from that proxy. log is the
// logger's handler when not nil.
func benchMiddleware(wrap func(http.Handler) http.Handler, log slog.Handler) (http.Handler, func() *http.Request) {
	mux := http.NewServeMux()
	mux.Handle("GET /verify", wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	if log == nil {
		log = NewLogHandler(io.Discard, false, slog.LevelInfo)
	}
	logger := slog.New(log)
	trusted := ClientAddrs{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	h := Middleware(mux, logger, NewHTTPMetrics(prometheus.NewRegistry()), trusted)
	return h, func() *http.Request {
		r := httptest.NewRequest("GET", "/verify", nil)
		r.RemoteAddr = "127.0.0.1:40000"
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		return r
	}
}

// BenchmarkMiddleware is what every request of both services pays before and after its
// handler: the request id, the client's address behind a trusted proxy, the metrics and the
// access-log line.
func BenchmarkMiddleware(b *testing.B) {
	same := func(h http.Handler) http.Handler { return h }
	b.Run("logged", func(b *testing.B) { benchmarkMiddleware(b, same, nil) })
	// The line through slog's text handler, as before NewLogHandler wrote it by hand.
	b.Run("logged-by-slog", func(b *testing.B) {
		benchmarkMiddleware(b, same, RequestIDHandler(slog.NewTextHandler(io.Discard, nil)))
	})
	// /verify's successes, logged at debug (not written at the default level).
	b.Run("quiet", func(b *testing.B) {
		benchmarkMiddleware(b, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { QuietAccessLog(w); h.ServeHTTP(w, r) })
		}, nil)
	})
}

func benchmarkMiddleware(b *testing.B, wrap func(http.Handler) http.Handler, log slog.Handler) {
	h, req := benchMiddleware(wrap, log)
	r, w := req(), httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkMiddlewareParallel is BenchmarkMiddleware on every core at once, as a server runs it:
// whatever the requests share (the metrics' series, the logger) is contended.
func BenchmarkMiddlewareParallel(b *testing.B) {
	h, req := benchMiddleware(func(h http.Handler) http.Handler { return h }, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r, w := req(), httptest.NewRecorder()
		for pb.Next() {
			h.ServeHTTP(w, r)
		}
	})
}
