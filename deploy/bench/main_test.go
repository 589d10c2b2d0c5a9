package main

import (
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// A printed ratio never reads as its target when it missed it.
func TestRatioTextShowsAMissAsOne(t *testing.T) {
	for _, c := range []struct {
		r, target float64
		want      string
	}{
		{0.846, 0.85, "0.846"}, // two decimals would print the target beside MISSED
		{0.8499, 0.85, "0.849"},
		{0.85, 0.85, "0.85"},
		{0.853, 0.85, "0.85"},
		{0.61, 0.80, "0.61"},
		{1.31, 0.70, "1.31"},
	} {
		if got := ratioText(c.r, c.target); got != c.want {
			t.Errorf("ratioText(%v, %v) = %q, want %q", c.r, c.target, got, c.want)
		}
	}
}

// Both tables judge a ratio the same way: met at the target, MISSED below it.
func TestJudge(t *testing.T) {
	for _, c := range []struct {
		r, target            float64
		ratio, goal, verdict string
	}{
		{0.846, 0.85, "0.846", "≥ 0.85", "MISSED"},
		{0.85, 0.85, "0.85", "≥ 0.85", "met"},
		{1.07, 0.80, "1.07", "≥ 0.80", "met"},
	} {
		ratio, goal, verdict := judge(c.r, c.target)
		if ratio != c.ratio || goal != c.goal || verdict != c.verdict {
			t.Errorf("judge(%v, %v) = %q %q %q, want %q %q %q", c.r, c.target, ratio, goal, verdict, c.ratio, c.goal, c.verdict)
		}
	}
}

// alternateAll measures each in the order given and then in reverse (A B C C B A), the same
// whole number of seconds each (half the duration, truncated; at least one), and each result
// is the plain mean of its two turns, its statuses summed.
func TestAlternateAll(t *testing.T) {
	d := *duration
	defer func() { *duration = d }()
	for _, c := range []struct {
		duration, turn time.Duration
	}{{8 * time.Second, 4 * time.Second}, {5 * time.Second, 2 * time.Second}, {1500 * time.Millisecond, time.Second}} {
		*duration = c.duration
		var order string
		var turns []time.Duration
		rates := map[string][]float64{"A": {1, 4}, "B": {10, 30}, "C": {100, 200}}
		fn := func(name string) func(time.Duration) result {
			return func(d time.Duration) result {
				order += name
				turns = append(turns, d)
				r := rates[name][0]
				rates[name] = rates[name][1:]
				return result{rps: r, statuses: map[int]int{200: 1}}
			}
		}
		rs := alternateAll(fn("A"), fn("B"), fn("C"))
		if order != "ABCCBA" {
			t.Errorf("order %s, want ABCCBA", order)
		}
		for _, d := range turns {
			if d != c.turn {
				t.Errorf("duration %v: a turn of %v, want %v", c.duration, d, c.turn)
			}
		}
		if len(rs) != 3 || rs[0].rps != 2.5 || rs[1].rps != 20 || rs[2].rps != 150 || rs[2].statuses[200] != 2 {
			t.Errorf("results %v, want 2.5, 20 and 150, two answers each", rs)
		}
	}
}

// alternateRotated runs three rounds of alternateAll, rotated (A B C C B A, B C A A C B,
// C A B B A C), and gives each load the mean of its own six turns.
func TestAlternateRotated(t *testing.T) {
	d := *duration
	defer func() { *duration = d }()
	*duration = 2 * time.Second
	var order string
	calls := map[string]float64{}
	fn := func(name string, base float64) func(time.Duration) result {
		return func(time.Duration) result {
			order += name
			calls[name]++
			return result{rps: base + calls[name], statuses: map[int]int{200: 1}} // base+1 … base+6
		}
	}
	rs := alternateRotated(fn("A", 0), fn("B", 100), fn("C", 1000))
	if order != "ABCCBA"+"BCAACB"+"CABBAC" {
		t.Errorf("order %s", order)
	}
	if len(rs) != 3 || rs[0].rps != 3.5 || rs[1].rps != 103.5 || rs[2].rps != 1003.5 || rs[1].statuses[200] != 6 {
		t.Errorf("results %v, want 3.5, 103.5 and 1003.5, six answers each", rs)
	}
}

// A ratio over nothing (a ceiling or openssl speed that served nothing) is MISSED, never
// "met"; a ceiling that served nothing, or more than one error in a hundred answers, failed.
func TestCeilingFailure(t *testing.T) {
	for _, r := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, _, verdict := judge(r, 0.8); verdict != "MISSED" {
			t.Errorf("judge(%v) = %s, want MISSED", r, verdict)
		}
	}
	for _, c := range []struct {
		r    result
		fail bool
	}{
		{result{rps: 100, statuses: map[int]int{200: 500}}, false},
		{result{rps: 100, statuses: map[int]int{200: 500, 409: 1}}, false}, // one lost answer in 501
		{result{rps: 100, statuses: map[int]int{200: 98, 500: 2}}, true},
		{result{rps: 0, statuses: map[int]int{500: 9}}, true},
		{result{rps: 0, statuses: map[int]int{}}, true},
		{result{rps: 90, statuses: map[int]int{201: 3, 0: 1}}, true}, // 0: a transport error
	} {
		if err := c.r.failure(); (err != nil) != c.fail {
			t.Errorf("%v: failure() = %v, want a failure: %v", c.r.statuses, err, c.fail)
		}
	}
}

// A process that never logs its listening line is stopped, and start says so, instead of the
// bench waiting for it forever; one that exits first is reported as such.
func TestStartGivesUp(t *testing.T) {
	defer func(f func() <-chan time.Time) { startGiveUp = f }(startGiveUp)
	now := make(chan time.Time)
	close(now)
	startGiveUp = func() <-chan time.Time { return now } // the minute is up at once
	p, err := start("sleep", "30")
	if err == nil || !strings.Contains(err.Error(), "did not log that it was listening") {
		t.Fatalf("start(sleep 30) = %v, %v; want it refused", p, err)
	}
	startGiveUp = func() <-chan time.Time { return nil } // never
	if _, err := start("true"); err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Errorf("start(true) = %v, want it to have exited", err)
	}
	p, err = start("sh", "-c", "echo 'msg=listening addr=127.0.0.1:1' >&2; exec sleep 30")
	if err != nil || p.url != "http://127.0.0.1:1" {
		t.Fatalf("start(sh) = %v, %v", p, err)
	}
	p.stop()
}

// Figure 2b's ceiling answers 200 with the identity headers it is given, as /verify answers a
// request it lets through; without them, 204 (the ceiling before); headers that are not a JSON
// object of lists refuse to start.
func TestBareAnswer(t *testing.T) {
	h, err := bareAnswer(`{"X-Auth-User":["bench"],"Remote-Groups":[""]}`)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/verify", nil))
	if w.Code != http.StatusOK || w.Header().Get("X-Auth-User") != "bench" || len(w.Header()["Remote-Groups"]) != 1 {
		t.Fatalf("with headers: %d %v", w.Code, w.Header())
	}
	h, err = bareAnswer("")
	if err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/verify", nil))
	if w.Code != http.StatusNoContent || len(w.Header()) != 0 {
		t.Fatalf("without: %d %v", w.Code, w.Header())
	}
	for _, bad := range []string{"{}", "[1]", `{"X":"not a list"}`, "{"} {
		if _, err := bareAnswer(bad); err == nil {
			t.Errorf("-answer-headers %s started", bad)
		}
	}
}

// Figures 13 and 14: the grants against their ceiling, judged; grants that failed are a miss, a
// ceiling that failed leaves the figure out saying so, and openssl speed is printed either way.
func TestAgainstCeiling(t *testing.T) {
	ok := func(rps float64) result { return result{rps: rps, statuses: map[int]int{200: 100}} }
	bad := result{rps: 50, statuses: map[int]int{500: 100}}
	verdict := func(fig result, ceil result) (string, string) {
		rows = nil
		defer func() { rows = nil }()
		againstCeiling("13. x", "ceiling", "the x", fig, []result{ok(1000), fig, ceil}, nil, ok(1000), nil, 0.85)
		for _, r := range rows {
			if r.name == "13. x" {
				return r.verdict, r.value
			}
		}
		return "", ""
	}
	if v, _ := verdict(ok(90), ok(100)); v != "met" {
		t.Errorf("0.90 of the ceiling: %q, want met", v)
	}
	if v, _ := verdict(ok(80), ok(100)); v != "MISSED" {
		t.Errorf("0.80 of the ceiling: %q, want MISSED", v)
	}
	if v, val := verdict(bad, ok(100)); v != "MISSED" || !strings.Contains(val, "500") {
		t.Errorf("failed grants: %q %q, want MISSED naming the answers", v, val)
	}
	if v, val := verdict(ok(90), bad); v != "" || !strings.HasPrefix(val, "skipped: the ceiling") {
		t.Errorf("failed ceiling: %q %q, want skipped", v, val)
	}
}

// A figure against its base (versus): left out when the base failed; a miss when the figure
// failed and has a target, left out when it has none; else its ratio, judged only with a target.
func TestVersus(t *testing.T) {
	ok := func(rps float64) result { return result{rps: rps, statuses: map[int]int{200: 100}} }
	bad := result{rps: 50, statuses: map[int]int{502: 100}}
	row1 := func(fig, base result, target float64) row {
		rows = nil
		defer func() { rows = nil }()
		versus("2. x", fig, "/verify", base, "nginx", target)
		if len(rows) != 1 {
			t.Fatalf("%d rows, want 1", len(rows))
		}
		return rows[0]
	}
	for _, c := range []struct {
		name            string
		fig, base       result
		target          float64
		verdict, prefix string // prefix: of the value, or of the ratio
	}{
		{"met", ok(95), ok(100), 0.93, "met", "0.95"},
		{"missed", ok(80), ok(100), 0.93, "MISSED", "0.80"},
		{"no target", ok(45), ok(100), 0, "", "0.45"},
		{"the base failed", ok(45), bad, 0.93, "", "skipped: nginx answered"},
		{"the figure failed, with a target", bad, ok(100), 0.93, "MISSED", "/verify answered"},
		{"the figure failed, no target", bad, ok(100), 0, "", "skipped: /verify answered"},
	} {
		r := row1(c.fig, c.base, c.target)
		if r.verdict != c.verdict || !strings.HasPrefix(r.value+r.ratio, c.prefix) {
			t.Errorf("%s: verdict %q, value %q, ratio %q; want %q and %q", c.name, r.verdict, r.value, r.ratio, c.verdict, c.prefix)
		}
	}
}

// The CPU a request: read from /proc for a live process, "not measured" once a turn could not
// read it (a server that exited), never a made-up figure.
func TestServerCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	s, ok := cpuSeconds(os.Getpid())
	if !ok || s < 0 {
		t.Fatalf("cpuSeconds of this process: %v, %v", s, ok)
	}
	if _, ok := cpuSeconds(-1); ok {
		t.Error("cpuSeconds of no process reads as measured")
	}
	cpu := serverCPU{seconds: 0.5, requests: 10000}
	if got := cpu.String(); got != "50 µs" {
		t.Errorf("0.5 s over 10,000 requests: %q", got)
	}
	cpu.lost = true
	if got := cpu.String(); got != "not measured" {
		t.Errorf("a lost turn: %q", got)
	}
}
