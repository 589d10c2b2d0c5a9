package web

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// slogLine is what slog's own handler (text or JSON, at debug) writes of a as a record.
func slogLine(t testing.TB, a access, json bool) string {
	t.Helper()
	var buf bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug - 100}
	var h slog.Handler = slog.NewTextHandler(&buf, opts)
	if json {
		h = slog.NewJSONHandler(&buf, opts)
	}
	logAccessLine(context.Background(), h, a)
	return buf.String()
}

func handMade(a access, json bool) string { return string(appendAccess(nil, a, json)) }

func TestAccessLineIsSlogs(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 4, 5, 123456789, time.UTC)
	cases := []access{
		{time: at, level: slog.LevelInfo, id: "0123456789abcdef", method: "GET", route: "GET /workitems", status: 200, duration: 1234 * time.Microsecond, client: "127.0.0.1"},
		{time: at.Truncate(time.Second), level: slog.LevelDebug, id: "", method: "", route: "unmatched", status: 404, duration: 0, client: "::1"},
		{time: at.In(time.FixedZone("x", -(5*3600 + 30*60))), level: slog.LevelWarn + 2, id: "a=b", method: "PO ST", route: `say "hi"\`, status: 599, duration: -3 * time.Second, client: "\x00\x7f\xff"},
		{time: at.Add(999 * time.Microsecond), level: slog.LevelError, id: "é", method: "\u2028\u2029", route: "\t\n\r", status: -1, duration: math.MaxInt64, client: "\ufffd\u00a0"},
		{time: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), level: slog.LevelInfo, id: "<&>", method: "GET", route: "x", status: 0, duration: 1, client: "1.2.3.4:5"},
	}
	for i, a := range cases {
		for _, json := range []bool{false, true} {
			if got, want := handMade(a, json), slogLine(t, a, json); got != want {
				t.Errorf("case %d json=%v:\n got  %q\n want %q", i, json, got, want)
			}
		}
	}
}

func FuzzAccessLine(f *testing.F) {
	f.Add(int64(1796655845), int64(123456789), 0, "0123456789abcdef", "GET", "GET /workitems", 200, int64(1234000), "127.0.0.1", 0)
	f.Add(int64(0), int64(0), -4, "", "", "", 0, int64(0), "", 3600)
	f.Add(int64(-1), int64(999999999), 8, "a b", "=", "\"\\", 599, int64(-1), "\xff\u2028", -19800)
	f.Fuzz(func(t *testing.T, sec, nsec int64, level int, id, method, route string, status int, d int64, client string, offset int) {
		// Years 0–9999, as RFC 3339 has them (slog's JSON handler writes an error otherwise).
		const lo, hi = -62167219200, 253402300799
		sec = lo + (sec%(hi-lo)+(hi-lo))%(hi-lo)
		at := time.Unix(sec, nsec%1e9).In(time.FixedZone("z", offset%(24*3600)))
		if y := at.Year(); y < 0 || y > 9999 {
			return
		}
		a := access{time: at, level: slog.Level(level), id: id, method: method, route: route, status: status,
			duration: time.Duration(d), client: client}
		for _, json := range []bool{false, true} {
			if got, want := handMade(a, json), slogLine(t, a, json); got != want {
				t.Fatalf("json=%v:\n got  %q\n want %q", json, got, want)
			}
		}
	})
}

// The middleware writes the same access line through NewLogHandler as through slog's own
// handler (the time, request id and duration aside), and other lines as slog does.
func TestMiddlewareAccessLineThroughNewLogHandler(t *testing.T) {
	vary := regexp.MustCompile(`(time=|"time":)"?[^ "]+"?|(request_id=|"request_id":)"?[0-9a-f]+"?|(duration=|"duration":)[^ ,}]+`)
	lines := func(h slog.Handler, out *bytes.Buffer) string {
		logger := slog.New(h)
		mw := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			logger.InfoContext(r.Context(), "inside", "n", 1)
			w.WriteHeader(http.StatusTeapot)
		}), logger, nil, ClientAddrs{})
		mw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x?y=1", nil))
		return vary.ReplaceAllString(out.String(), "$1$2$3…")
	}
	for _, json := range []bool{false, true} {
		var plain, fast bytes.Buffer
		opts := &slog.HandlerOptions{Level: slog.LevelInfo}
		var ph slog.Handler = slog.NewTextHandler(&plain, opts)
		if json {
			ph = slog.NewJSONHandler(&plain, opts)
		}
		got, want := lines(NewLogHandler(&fast, json, slog.LevelInfo), &fast), lines(RequestIDHandler(ph), &plain)
		if got != want || strings.Count(got, "\n") != 2 || !strings.Contains(got, "418") {
			t.Fatalf("json=%v:\n got  %q\n want %q", json, got, want)
		}
	}
}

// recordsOnly is a handler that counts the records it is given.
type recordsOnly struct{ n *int }

func (recordsOnly) Enabled(context.Context, slog.Level) bool    { return true }
func (h recordsOnly) Handle(context.Context, slog.Record) error { *h.n++; return nil }
func (h recordsOnly) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h recordsOnly) WithGroup(string) slog.Handler             { return h }

// The middleware finds NewLogHandler's hand-made path through the logger it is given: the line
// is appended, no record is made of it.
func TestMiddlewareAppendsTheLineByHand(t *testing.T) {
	records := 0
	var out bytes.Buffer
	logger := slog.New(RequestIDHandler(accessHandler{Handler: recordsOnly{&records}, w: &out}))
	mw := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), logger, nil, ClientAddrs{})
	mw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	if records != 0 || !strings.Contains(out.String(), " msg=request ") {
		t.Fatalf("%d records, appended %q", records, out.String())
	}
}
