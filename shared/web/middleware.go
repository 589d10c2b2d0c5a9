package web

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the id the middleware gave the request, "" outside one.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// RequestIDHandler wraps h so that every record logged with the context of a request the
// middleware serves carries its request_id, first — the access-log line and every line logged
// while serving it (InfoContext and the like) then join on it, and no handler passes the id by
// hand. A record that already has a request_id keeps its own; under a WithGroup the id is in
// that group. Wrapping twice wraps once.
func RequestIDHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	id := RequestID(ctx)
	if id == "" {
		return h.Handler.Handle(ctx, r)
	}
	has := false
	r.Attrs(func(a slog.Attr) bool {
		has = a.Key == "request_id"
		return !has
	})
	if has {
		return h.Handler.Handle(ctx, r)
	}
	withID := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	withID.AddAttrs(slog.String("request_id", id))
	r.Attrs(func(a slog.Attr) bool {
		withID.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, withID)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// newRequestID is 16 hex digits from the runtime's generator (ChaCha8, seeded from the
// system's randomness): an id to join log lines on, not a secret, made on every request without
// a call into the system and with one allocation.
func newRequestID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	var h [16]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// HTTPMetrics are the request metrics every service exports.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewHTTPMetrics registers the request metrics on reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "HTTP requests being served, this scrape included.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	quiet  bool // QuietAccessLog: a success is logged at debug
}

// QuietAccessLog has the middleware write the access-log line of this request at debug, not
// info, if its answer is a success (2xx). A handler calls it for an answer that needs no line
// at the default level: /verify letting a request through, which the proxy in front asks before
// every request it forwards (the line was 7% of the IdP's time per request, issue 31). Every
// other answer of the same handler — a refusal, a redirect to sign in, an error — keeps its
// line at info; the metrics count every answer. Outside the middleware it does nothing.
func QuietAccessLog(w http.ResponseWriter) {
	for {
		if rec, ok := w.(*statusRecorder); ok {
			rec.quiet = true
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Middleware wraps a service's router: a request id, recovery from panics (answered 500 in the
// envelope, logged with the stack's cause), one access-log line (at info; at debug for a
// success its handler made quiet with QuietAccessLog) and the request metrics. The
// route label is the mux pattern, never the raw path, so metrics cannot be blown up by clients.
// The logged client is the one clients resolves (behind a trusted proxy, the real client).
// The request id is on every line logged with the request's context (RequestIDHandler).
func Middleware(next http.Handler, logger *slog.Logger, metrics *HTTPMetrics, clients ClientAddrs) http.Handler {
	return MiddlewareWithClient(next, logger, metrics, clients, nil)
}

// MiddlewareWithClient is Middleware that also hands the client's address, resolved once for
// the access log, to withClient, whose context the request then carries (a service's own
// record of it, as the IdP's auth.WithClientIP): one parse of X-Forwarded-For and one copy of
// the request, not one per layer. A nil withClient adds nothing.
func MiddlewareWithClient(next http.Handler, logger *slog.Logger, metrics *HTTPMetrics, clients ClientAddrs,
	withClient func(context.Context, string) context.Context) http.Handler {
	inner := logger.Handler()
	if h, ok := inner.(requestIDHandler); ok {
		inner = h.Handler
	}
	logger = slog.New(RequestIDHandler(inner))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id, client := newRequestID(), clients.Of(r)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		if withClient != nil {
			ctx = withClient(ctx, client)
		}
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		if metrics != nil {
			metrics.inFlight.Inc()
			defer metrics.inFlight.Dec()
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				logger.ErrorContext(ctx, "panic serving request", "panic", p)
				if rec.status == 0 {
					WriteJSON(rec, http.StatusInternalServerError, Envelope{Status: "Error", Result: "Internal error"})
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			d := time.Since(start)
			if metrics != nil {
				metrics.requests.WithLabelValues(route, statusText(status)).Inc()
				metrics.duration.WithLabelValues(route).Observe(d.Seconds())
			}
			// The access-log line, request_id first as RequestIDHandler would put it, handed to
			// the handler directly (the generic path, boxing each value and copying the record
			// to put the id in front, was a fifth of a forward-auth request's time in the IdP),
			// and appended by hand when the handler is NewLogHandler's (logAccessLine).
			level := slog.LevelInfo
			if rec.quiet && status < 300 {
				level = slog.LevelDebug
			}
			if inner.Enabled(ctx, level) {
				logAccessLine(ctx, inner, access{time: time.Now(), level: level, id: id, method: r.Method, route: route,
					status: status, duration: d.Round(time.Microsecond), client: client})
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusText is the metrics' status label: the usual ones without formatting them each time.
func statusText(status int) string {
	switch status {
	case 200:
		return "200"
	case 204:
		return "204"
	case 302:
		return "302"
	case 401:
		return "401"
	case 403:
		return "403"
	}
	return strconv.Itoa(status)
}

// NotFound answers every unrouted path with the envelope.
func NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusNotFound, Envelope{Status: "Error", Result: "Not found"})
	})
}
