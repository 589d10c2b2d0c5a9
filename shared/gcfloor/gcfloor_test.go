package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentReachesTheFloor(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		name                         string
		floor, live, stacks, globals uint64
		base, want                   int
	}{
		{"small live heap: the goal is the floor", 16 * mb, 2 * mb, mb / 4, mb / 4, 100, 400},
		{"live heap at the floor: the base", 16 * mb, 16 * mb, 0, 0, 100, 100},
		{"live heap above the floor: the base", 16 * mb, 45 * mb, mb, mb, 100, 100},
		{"the base already reaches the floor", 16 * mb, 7 * mb, mb, mb, 200, 200},
		{"nothing measured yet: the base", 16 * mb, 0, 0, 0, 100, 100},
		{"a tiny heap: the runtime's minimum heap, scaled, is the floor", 16 * mb, 1, 0, 0, 100, 400},
		{"stacks and globals count", 16 * mb, 5 * mb, mb / 4, mb / 4, 100, 200},
	} {
		if got := percent(c.floor, c.live, c.stacks, c.globals, c.base); got != c.want {
			t.Errorf("%s: percent = %d, want %d", c.name, got, c.want)
		}
	}
}

func runtimeGOGC(t *testing.T) int {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

type tuning struct {
	percent int
	cycles  uint64
}

// collect runs a collection and returns the percent the floor set after it, not after an
// earlier one (the test's own allocations start some). A report from before it means the
// floor's cleanup ran during it, perhaps arming the next sentinel while it marked (such an
// object lives through that collection): collect again, since the next sentinel is armed
// before the report is sent.
func collect(t *testing.T, tuned <-chan tuning) int {
	t.Helper()
	timeout := time.After(30 * time.Second) // a guard against a hang, not a timing
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	for {
		runtime.GC()
		metrics.Read(s)
		select {
		case tu := <-tuned:
			if tu.cycles >= s[0].Value.Uint64() {
				return tu.percent
			}
		case <-timeout:
			t.Fatal("no cleanup ran after a collection")
			return 0
		}
	}
}

// base100 makes the runtime's percent 100 for the test, whatever GOGC the test process was
// started with, and puts the old one back after it.
func base100(t *testing.T) {
	t.Helper()
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

func installForTest(t *testing.T, floor uint64) <-chan tuning {
	t.Helper()
	base100(t)
	tuned := make(chan tuning, 64)
	f := install(floor, func(string) string { return "" }, func(p int, c uint64) { tuned <- tuning{p, c} })
	if f == nil {
		t.Fatal("install returned nil with GOGC unset")
	}
	t.Cleanup(func() {
		f.Stop()
		if got := runtimeGOGC(t); got != 100 {
			t.Errorf("after Stop GOGC is %d, want 100", got)
		}
	})
	return tuned
}

func TestFloorRaisesTheGoalWhileTheLiveHeapIsSmall(t *testing.T) {
	tuned := installForTest(t, 64<<20)
	p := collect(t, tuned)
	if p <= 100 {
		t.Fatalf("percent %d after a collection with a small live heap, want > 100", p)
	}
	if got := runtimeGOGC(t); got != p {
		t.Errorf("runtime's GOGC %d, the floor set %d", got, p)
	}
	// The next goal is the floor (within the collections' rounding).
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	if goal := s[0].Value.Uint64(); goal < 60<<20 || goal > 68<<20 {
		t.Errorf("heap goal %d MB, want about 64", goal>>20)
	}
}

var held [][]byte

func TestFloorLeavesTheBaseWhenTheLiveHeapIsLarge(t *testing.T) {
	tuned := installForTest(t, 16<<20)
	for range 40 {
		held = append(held, make([]byte, 1<<20))
	}
	defer func() { held = nil }()
	if p := collect(t, tuned); p != 100 {
		t.Errorf("percent %d with 40 MB live and a floor of 16, want the base 100", p)
	}
	held = nil
	if p := collect(t, tuned); p <= 100 {
		t.Errorf("percent %d once the 40 MB are garbage, want > 100", p)
	}
}

func TestGOGCInTheEnvironmentTurnsTheFloorOff(t *testing.T) {
	base100(t)
	if f := Install(64<<20, func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	}); f != nil {
		f.Stop()
		t.Fatal("Install with GOGC set returned a floor")
	}
}

func TestStopEndsTheFloor(t *testing.T) {
	base100(t)
	tuned := make(chan tuning, 64)
	f := install(64<<20, func(string) string { return "" }, func(p int, c uint64) { tuned <- tuning{p, c} })
	t.Cleanup(f.Stop)
	if p := collect(t, tuned); p <= 100 {
		t.Fatalf("percent %d, want > 100", p)
	}
	f.Stop()
	if got := runtimeGOGC(t); got != 100 {
		t.Fatalf("GOGC %d after Stop, want 100", got)
	}
	runtime.GC()
	runtime.GC()
	select {
	case tu := <-tuned:
		t.Errorf("the floor set %d after Stop", tu.percent)
	default:
	}
	if got := runtimeGOGC(t); got != 100 {
		t.Errorf("GOGC %d after Stop and two collections, want 100", got)
	}
}
