package web

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Every line logged with a request's context carries its request_id, once, and the access-log
// line the same one.
func TestRequestIDOnEveryLineOfARequest(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(RequestIDHandler(slog.NewTextHandler(&buf, nil)))
	inner := logger.With("component", "auth")
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.InfoContext(r.Context(), "login", "outcome", "success")
		// A call site that still passes the id by hand does not get it twice.
		inner.InfoContext(r.Context(), "by hand", "request_id", RequestID(r.Context()))
		inner.Info("no context")
	}), logger, nil, ClientAddrs{})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), buf.String())
	}
	id := regexp.MustCompile(`msg=request request_id=(\w+) `).FindStringSubmatch(lines[3])
	if id == nil {
		t.Fatalf("access-log line without request_id first: %s", lines[3])
	}
	for _, l := range lines[:2] {
		if strings.Count(l, "request_id=") != 1 || !strings.Contains(l, "request_id="+id[1]) {
			t.Errorf("want request_id=%s once in %s", id[1], l)
		}
	}
	if strings.Contains(lines[2], "request_id") {
		t.Errorf("a line logged without the request's context has an id: %s", lines[2])
	}
	if RequestIDHandler(logger.Handler()) != logger.Handler() {
		t.Error("wrapping twice wraps twice")
	}
}

// The request metrics count each request once, by its route (the mux's pattern, "unmatched"
// for none) and status, and time it by its route; requests served at once included.
func TestMiddlewareMetricsByRouteAndStatus(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusTeapot)
		}
	})
	mux.HandleFunc("POST /b", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	m := NewHTTPMetrics(prometheus.NewRegistry())
	h := Middleware(mux, slog.New(slog.NewTextHandler(io.Discard, nil)), m, ClientAddrs{})
	var wg sync.WaitGroup
	for _, req := range []struct{ method, path string }{{"GET", "/a"}, {"GET", "/a?fail=1"}, {"GET", "/a"}, {"POST", "/b"}, {"GET", "/nowhere"}, {"GET", "/a?fail=1"}, {"GET", "/a"}} {
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil)) })
	}
	wg.Wait()
	for _, c := range []struct {
		route, status string
		want          float64
	}{{"GET /a", "200", 3}, {"GET /a", "418", 2}, {"POST /b", "204", 1}, {"unmatched", "404", 1}, {"POST /b", "200", 0}} {
		var out dto.Metric
		if err := m.requests.WithLabelValues(c.route, c.status).Write(&out); err != nil {
			t.Fatal(err)
		}
		if got := out.GetCounter().GetValue(); got != c.want {
			t.Errorf("http_requests_total{route=%q,status=%q} = %v, want %v", c.route, c.status, got, c.want)
		}
	}
	for route, want := range map[string]uint64{"GET /a": 5, "POST /b": 1, "unmatched": 1} {
		var out dto.Metric
		if err := m.duration.WithLabelValues(route).(prometheus.Histogram).Write(&out); err != nil {
			t.Fatal(err)
		}
		if got := out.GetHistogram().GetSampleCount(); got != want {
			t.Errorf("http_request_duration_seconds{route=%q} counted %d requests, want %d", route, got, want)
		}
	}
}

// A request whose handler called QuietAccessLog has its access line at debug when the answer
// is a success, at info otherwise (a redirect, a refusal, an error), as any request that did
// not call it; the metrics count all.
func TestQuietAccessLogLogsSuccessesAtDebug(t *testing.T) {
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("quiet") != "" {
			QuietAccessLog(w)
		}
		if s := r.URL.Query().Get("status"); s != "" {
			code, _ := strconv.Atoi(s)
			w.WriteHeader(code)
		}
	}
	mux.HandleFunc("GET /verify", answer)
	mux.HandleFunc("GET /other", answer)
	for _, c := range []struct {
		level slog.Level
		path  string
		want  string // the access line's level, "" for none
	}{
		{slog.LevelInfo, "/verify?quiet=1", ""},
		{slog.LevelInfo, "/verify?quiet=1&status=204", ""},
		{slog.LevelInfo, "/verify?quiet=1&status=302", "INFO"},
		{slog.LevelInfo, "/verify?quiet=1&status=401", "INFO"},
		{slog.LevelInfo, "/verify?quiet=1&status=403", "INFO"},
		{slog.LevelInfo, "/verify?quiet=1&status=500", "INFO"},
		{slog.LevelInfo, "/verify", "INFO"},
		{slog.LevelInfo, "/other", "INFO"},
		{slog.LevelDebug, "/verify?quiet=1", "DEBUG"},
		{slog.LevelDebug, "/verify?quiet=1&status=401", "INFO"},
		{slog.LevelDebug, "/other?status=204", "INFO"},
	} {
		var buf bytes.Buffer
		m := NewHTTPMetrics(prometheus.NewRegistry())
		h := Middleware(mux, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.level})), m, ClientAddrs{})
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", c.path, nil))
		got := ""
		if l := regexp.MustCompile(`level=(\w+) msg=request `).FindStringSubmatch(buf.String()); l != nil {
			got = l[1]
		}
		if got != c.want || strings.Count(buf.String(), "\n") > 1 {
			t.Errorf("log level %v, GET %s: access line at %q, want %q:\n%s", c.level, c.path, got, c.want, buf.String())
		}
		var out dto.Metric
		route := strings.Fields(strings.ReplaceAll(c.path, "?", " "))[0]
		if err := m.duration.WithLabelValues("GET " + route).(prometheus.Histogram).Write(&out); err != nil || out.GetHistogram().GetSampleCount() != 1 {
			t.Errorf("GET %s not counted once: %v", c.path, err)
		}
	}
}
