package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
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
