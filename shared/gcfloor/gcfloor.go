// Package gcfloor keeps the garbage collector's heap goal at or above a floor while the live
// heap is small.
//
// A service whose live heap is a few megabytes collects, at the default GOGC of 100, every few
// megabytes it allocates: the IdP, with 2 MB live, ran a collection about every 570 forward-auth
// requests under load, and each costs a fixed part (its phases, its workers starting, the caches
// it disturbs) beside marking what is live. A higher GOGC everywhere would collect less often
// but also multiply the goal when the live heap is large — a burst of logins holds about 45 MB
// — and so the peak. The floor changes only the small case: after each collection the percent
// is set so the next goal is the floor, or left at the base when that already reaches it.
//
// It is the process's setting: Main installs it, never a test's in-process run. An operator who
// sets GOGC in the environment has chosen, and the floor stays off; GOMEMLIMIT still caps
// the heap as the runtime documents.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Default is the floor Main installs. It is a heap goal, not a process's memory: a heap grown to
// it, with the 3-4 MB an idle IdP holds outside its heap, stays under the 20 MB figure 5 allows
// an idle IdP (BENCHMARKS.md), though after a stretch of requests the heap may hold it until
// the runtime's periodic collection (two minutes) and its scavenger hand it back. Figure 5's
// readings after bursts follow the collections the password hasher forces. Under load it is a
// collection every ~14 MB allocated instead of every ~3.
const Default = 16 << 20

// The metrics the pacer's goal is made of (runtime/mgcpacer.go, commit): goal = live + (live +
// stacks + globals) × GOGC / 100, each as the last collection measured it, and never under the
// runtime's minimum heap, 4 MB × GOGC / 100. Then GOGC itself, and the collections so far.
var names = [...]string{
	live:    "/gc/heap/live:bytes",
	stacks:  "/gc/scan/stack:bytes",
	globals: "/gc/scan/globals:bytes",
	gogc:    "/gc/gogc:percent",
	cycles:  "/gc/cycles/total:gc-cycles",
}

// The samples' places in names.
const (
	live = iota
	stacks
	globals
	gogc
	cycles
)

// runtimeMinimum is the runtime's minimum heap goal at GOGC=100 (defaultHeapMinimum); it scales
// with GOGC, so a percent above floor × 100 / runtimeMinimum would put the goal over the floor
// however small the heap. It is 4 MB in every ordinary build; one made with
// GOEXPERIMENT=heapminimum512kib has 512 KiB, and there the cap leaves a small heap's goal
// under the floor (about 12 MB of 16 with 2 MB live).
const runtimeMinimum = 4 << 20

// percent is the GOGC that makes the next heap goal floor, given the last collection's live
// heap and the stacks and globals it scanned; base when base already reaches the floor.
func percent(floor, liveHeap, stackScan, globalsScan uint64, base int) int {
	scan := liveHeap + stackScan + globalsScan
	if liveHeap >= floor || scan == 0 {
		return base
	}
	p := min((floor-liveHeap)*100/scan, floor*100/runtimeMinimum)
	if p <= uint64(base) {
		return base
	}
	return int(p)
}

// Floor is an installed floor.
type Floor struct {
	floor   uint64
	base    int
	samples []metrics.Sample

	mu      sync.Mutex
	stopped bool
	// tuned, when set (by tests), is called with each percent set and the collections so far.
	tuned func(percent int, cycles uint64)
}

// sentinel is the object whose collection says a cycle ended. It holds a pointer so the tiny
// allocator never packs it beside a live object (which would keep it, and the floor, alive).
type sentinel struct {
	_ *sentinel
	_ [16]byte
}

// Install keeps the heap goal at or above floor, from the end of the next collection on, and
// returns the Floor, or nil when getenv("GOGC") is set or the collector is off. Stop ends it and
// puts the base percent back.
func Install(floor uint64, getenv func(string) string) *Floor {
	return install(floor, getenv, nil)
}

func install(floor uint64, getenv func(string) string, tuned func(int, uint64)) *Floor {
	if getenv("GOGC") != "" {
		return nil
	}
	f := &Floor{floor: floor, samples: make([]metrics.Sample, len(names)), tuned: tuned}
	for i, n := range names {
		f.samples[i].Name = n
	}
	metrics.Read(f.samples)
	for _, s := range f.samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return nil // a runtime without these metrics: leave the collector as it is
		}
	}
	f.base = int(f.samples[gogc].Value.Uint64())
	if f.base <= 0 {
		return nil
	}
	f.arm()
	return f
}

// arm allocates a sentinel whose cleanup, once a collection finds it unreachable, arms the next
// and sets the percent from that collection (in this order, so that a collection started after
// the percent is set always finds a sentinel to end with).
func (f *Floor) arm() {
	runtime.AddCleanup(&sentinel{}, (*Floor).tune, f)
}

// tune sets the percent from the last collection's measures, unless the floor is stopped.
func (f *Floor) tune() {
	p, cycles, ok := f.set()
	if ok && f.tuned != nil {
		f.tuned(p, cycles) // outside mu: a test's callback cannot hold Stop up
	}
}

func (f *Floor) set() (gcPercent int, cyclesSoFar uint64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return 0, 0, false
	}
	f.arm()
	metrics.Read(f.samples) // their kinds, checked by install, do not change
	v := func(i int) uint64 { return f.samples[i].Value.Uint64() }
	p := percent(f.floor, v(live), v(stacks), v(globals), f.base)
	debug.SetGCPercent(p)
	return p, v(cycles), true
}

// Stop ends the floor: the percent goes back to the base, and the next cleanup arms no other.
func (f *Floor) Stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.stopped = true
		debug.SetGCPercent(f.base)
	}
}
