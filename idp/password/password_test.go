package password

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jwtidp/idp/password/internal/argon2"
	"jwtidp/shared/apperr"
	"jwtidp/shared/proctest"
)

var fast = Params{Memory: 64, Time: 1, Threads: 1}

func newHasher(t *testing.T, p Params, slots int, wait time.Duration) *Hasher {
	t.Helper()
	h, err := NewHasher(p, slots, wait, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	h := newHasher(t, fast, 2, time.Second)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse ☃")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string %q", enc)
	}
	if ok, rehash, err := h.Verify(ctx, enc, "correct horse ☃"); !ok || rehash || err != nil {
		t.Fatalf("Verify(right) = %v, %v, %v", ok, rehash, err)
	}
	if ok, _, _ := h.Verify(ctx, enc, "correct horse"); ok {
		t.Fatal("a wrong password verified")
	}
	if ok, _, err := h.Verify(ctx, "", "anything"); ok || err != nil {
		t.Fatalf("unknown user: %v, %v; want false, nil (dummy hash)", ok, err)
	}
	enc2, _ := h.Hash(ctx, "correct horse ☃")
	if enc2 == enc {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

func TestRehashWhenWeaker(t *testing.T) {
	ctx := context.Background()
	old := newHasher(t, fast, 1, time.Second)
	enc, _ := old.Hash(ctx, "pw-for-rehash")
	stronger := newHasher(t, Params{Memory: 128, Time: 1, Threads: 1}, 1, time.Second)
	ok, rehash, err := stronger.Verify(ctx, enc, "pw-for-rehash")
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify = %v, %v, %v; want a match that asks for a rehash", ok, rehash, err)
	}
	if _, rehash, _ := stronger.Verify(ctx, enc, "wrong"); rehash {
		t.Fatal("a failed verification asked for a rehash")
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{
		"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
		"$argon2id$v=19$m=064,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if _, _, _, err := Decode(s); err == nil {
			t.Errorf("Decode(%q) accepted", s)
		}
	}
	if _, _, _, err := Decode("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"); err != nil {
		t.Errorf("valid string refused: %v", err)
	}
}

// The limit is counted, not timed: every hash reports its start and end. The first three hold
// until all three run, so the limit is reached however the goroutines are scheduled (a 1 MiB
// hash can be over before the next starts on a busy machine), and the third holds them until
// every other hash waits for a slot or a fourth has started, so one slot too many always shows.
func TestConcurrencyBounded(t *testing.T) {
	h := newHasher(t, Params{Memory: 1024, Time: 1, Threads: 1}, 3, 30*time.Second)
	var running, peak, started atomic.Int32
	three := make(chan struct{})
	h.OnStart = func() {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		switch started.Add(1) {
		case 1, 2:
			select {
			case <-three:
			case <-time.After(10 * time.Second):
				t.Error("three hashes never ran at once")
			}
		case 3:
			proctest.Eventually(10*time.Second, func() bool { return running.Load() >= 4 || h.Waiting() >= 197 })
			close(three)
		}
	}
	h.OnEnd = func() { running.Add(-1) }
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Hash(context.Background(), "password-x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak concurrent hashes = %d, want exactly the limit 3", p)
	}
}

func TestBusyWhenNoSlot(t *testing.T) {
	h := newHasher(t, fast, 1, 10*time.Millisecond)
	h.slots <- struct{}{} // occupy the only slot
	_, err := h.Hash(context.Background(), "whatever-pw")
	if apperr.Code(err) != apperr.EUNAVAILABLE || apperr.RetryAfter(err) <= 0 {
		t.Fatalf("err = %v; want EUNAVAILABLE with a retry-after", err)
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name, user, pw, want string
	}{
		{"short", "alice", "abc1234", "at least 8"},
		{"short in characters though long in bytes", "alice", "☃☃☃☃☃☃☃", "at least 8"},
		// r, e + combining acute, s, u, m, e + combining acute, s: 9 characters typed, 7 in NFKC.
		{"short once accents compose", "alice", "re\u0301sume\u0301s", "at least 8"},
		{"long enough once ligatures expand", "alice", "ab\ufb00cd\ufb03", ""}, // abffcdffi
		{"too long", "alice", strings.Repeat("x", 1025), "at most 1024"},
		{"1024 bytes ok though longer in NFKC", "alice", strings.Repeat("\ufdfa", 341) + "z", ""},
		{"equals username", "alice.smith", "Alice.Smith", "username"},
		{"username in full-width letters", "alice.smith", "Ａｌｉｃｅ．Ｓｍｉｔｈ", "username"},
		{"username with spaces around", "alice.smith", " alice.smith\t", "username"},
		{"one character repeated", "alice", "aaaaaaaa", "one character repeated"},
		{"one letter repeated in both cases", "alice", "ZzZzZzZz", "one character repeated"},
		{"Kelvin signs and k", "alice", "\u212aK\u212ak\u212aK\u212ak", "one character repeated"},
		{"emoji repeated", "alice", "🙂🙂🙂🙂🙂🙂🙂🙂", "one character repeated"},
		{"spaces only", "alice", " \t        ", "only spaces"},
		{"common", "alice", "password1", "common"},
		{"common any case", "alice", "PassWord1", "common"},
		{"common with spaces around", "alice", "  password1 \t", "common"},
		{"short once trimmed", "alice", "    abc123    ", "at least 8"},
		{"spaces do not count toward the length", "alice", "      xy", "at least 8"},
		{"ideographic spaces do not either", "alice", "　　　　　　ab", "at least 8"},
		{"common in full-width letters", "alice", "ｐａｓｓｗｏｒｄ１", "common"},
		{"common with a Kelvin sign", "alice", "\u212aATHERINE", "common"},
		{"common word", "alice", "Basketball", "common"},
		{"common name", "alice", "jennifer", "common"},
		{"zxcvbn's passwords only", "alice", "Liverpool1", "common"},
		{"zxcvbn's words only", "alice", "university", "common"},
		{"Openwall only", "alice", "hellohello", "common"},
		{"ok", "alice", "tr0ub4dor&3-staple", ""},
		{"unicode ok", "alice", "пароль-надёжный", ""},
		{"accents ok", "alice", "cafe\u0301-au-lait", ""},
		{"1024 bytes ok", "alice", strings.Repeat("xy", 512), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPolicy(tt.user, tt.pw)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if apperr.Code(err) != apperr.EINVALID || !strings.Contains(apperr.Message(err), tt.want) {
				t.Fatalf("err = %v; want EINVALID saying %q", err, tt.want)
			}
		})
	}
}

// The search in place finds every line of the list and nothing else.
func TestBlocklist(t *testing.T) {
	if !strings.HasSuffix(blocklist, "\n") {
		t.Fatal("blocklist.txt does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(blocklist, "\n"), "\n")
	if len(lines) < 90000 {
		t.Fatalf("blocklist has %d entries", len(lines))
	}
	set := make(map[string]bool, len(lines))
	for i, l := range lines {
		if i > 0 && lines[i-1] >= l {
			t.Fatalf("line %d %q is not after %q", i+1, l, lines[i-1])
		}
		if l == "" || l != blocklistKey(normalize(l)) {
			t.Fatalf("line %d %q is not in normal form", i+1, l)
		}
		set[l] = true
	}
	for _, l := range lines {
		for _, w := range []string{l, l[:len(l)-1], l + "!", l + "\xff", "\x00" + l, l[1:]} {
			if got := inBlocklist(blocklist, w); got != set[w] {
				t.Fatalf("inBlocklist(%q) = %v", w, got)
			}
		}
	}
	for _, w := range []string{"", "\x00", "\xff\xff", "~~~~~~~~~~~~"} {
		if inBlocklist(blocklist, w) != set[w] {
			t.Fatalf("inBlocklist(%q) wrong", w)
		}
	}
	if inBlocklist("", "x") || !inBlocklist("x\n", "x") || inBlocklist("x\n", "") {
		t.Fatal("inBlocklist on a one-line list")
	}
}

// A password hashed as typed, before passwords were normalised, still verifies, asks for a rehash,
// and the rehash is of the NFKC form, which any way of typing the password then matches.
func TestLegacyHashOfUnnormalisedPassword(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, fast, 1, time.Second)
	for _, raw := range []string{
		"\u212aelvin-secret-1",    // Kelvin sign
		"ｓｅｃｒｅｔ-full-width",       // full-width letters
		"cafe\u0301-au-lait-1984", // e + combining acute
	} {
		legacy, err := h.hash(raw) // the old Hash
		if err != nil {
			t.Fatal(err)
		}
		ok, rehash, err := h.Verify(ctx, legacy, raw)
		if !ok || !rehash || err != nil {
			t.Fatalf("Verify(legacy hash of %q) = %v, %v, %v; want a match that asks for a rehash", raw, ok, rehash, err)
		}
		if ok, rehash, _ := h.Verify(ctx, legacy, raw+"x"); ok || rehash {
			t.Fatalf("a wrong password verified against the legacy hash of %q", raw)
		}
		fresh, err := h.Hash(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, typed := range []string{raw, normalize(raw)} {
			if ok, rehash, err := h.Verify(ctx, fresh, typed); !ok || rehash || err != nil {
				t.Fatalf("Verify(new hash of %q, %q) = %v, %v, %v; want a match, no rehash", raw, typed, ok, rehash, err)
			}
		}
		if ok, rehash, err := h.Verify(ctx, "", raw); ok || rehash || err != nil {
			t.Fatalf("unknown user: %v, %v, %v", ok, rehash, err)
		}
	}
}

// A wrong password not in NFKC form costs two hashes, for a known user and an unknown one alike;
// one in NFKC form costs one.
func TestVerifyWork(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, fast, 1, time.Second)
	enc, _ := h.Hash(ctx, "right-password")
	var hashes int
	for _, tt := range []struct {
		encoded, pw string
		want        int
	}{
		{enc, "wrong-password", 1}, {"", "wrong-password", 1},
		{enc, "ｗｒｏｎｇ-password", 2}, {"", "ｗｒｏｎｇ-password", 2},
		{enc, "ｒｉｇｈｔ-password", 1},
	} {
		hashes = 0
		h.onVerify = func() { hashes++ }
		h.Verify(ctx, tt.encoded, tt.pw)
		if hashes != tt.want {
			t.Errorf("Verify(%q, %q) hashed %d times, want %d", tt.encoded, tt.pw, hashes, tt.want)
		}
	}
}

// fakeTimers stands in for time.AfterFunc: the test fires the timers.
type fakeTimers struct {
	mu     sync.Mutex
	armed  []func()
	delays []time.Duration
}

func (f *fakeTimers) afterFunc(d time.Duration, fn func()) func() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = append(f.armed, fn)
	f.delays = append(f.delays, d)
	return func() bool { return true }
}

// fireAll fires every timer armed so far, stopped or not (a Stop can lose the race with the
// timer), and reports how many there were.
func (f *fakeTimers) fireAll() int {
	f.mu.Lock()
	armed := f.armed
	f.mu.Unlock()
	for _, fn := range armed {
		fn()
	}
	return len(armed)
}

func (f *fakeTimers) last() func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.armed) == 0 {
		return nil
	}
	return f.armed[len(f.armed)-1]
}

// A burst of hashes hands the memory back once, after the last one, never while one runs.
func TestIdleFreesOnceAfterABurst(t *testing.T) {
	h := newHasher(t, fast, 4, 30*time.Second)
	h.Warm()
	timers := &fakeTimers{}
	h.afterFunc = timers.afterFunc
	h.IdleDelay = 750 * time.Millisecond
	var frees, idles, running atomic.Int32
	h.freeOS = func() {
		frees.Add(1)
		if n := running.Load(); n != 0 {
			t.Errorf("memory freed while %d hashes run", n)
		}
	}
	h.OnIdle = func() { idles.Add(1) }
	h.OnStart = func() { running.Add(1) }
	h.OnEnd = func() { running.Add(-1) }

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := h.Hash(context.Background(), "burst-password"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if frees.Load() != 0 {
		t.Fatal("memory freed before the quiet period")
	}
	if n := timers.fireAll(); n == 0 {
		t.Fatal("no idle timer armed after the burst")
	}
	if f, i := frees.Load(), idles.Load(); f != 1 || i != 1 {
		t.Fatalf("after the burst: %d frees, %d OnIdle calls; want 1 each", f, i)
	}
	if timers.fireAll(); frees.Load() != 1 {
		t.Fatal("a timer fired twice freed twice")
	}
	for _, d := range timers.delays {
		if d != 750*time.Millisecond {
			t.Fatalf("timer armed for %v, want IdleDelay", d)
		}
	}

	// A timer that fires while a hash runs (it started after the timer was armed) does nothing.
	h.Hash(context.Background(), "one-more-password")
	stale := timers.last() // armed by the hash that just ended
	h.OnStart = func() { running.Add(1); stale() }
	h.Hash(context.Background(), "and-another-one")
	if frees.Load() != 1 {
		t.Fatal("a stale timer freed memory while a hash ran")
	}
	timers.last()()
	if frees.Load() != 2 {
		t.Fatal("no free after the last hash")
	}
}

func TestIdleDisabled(t *testing.T) {
	h := newHasher(t, fast, 1, time.Second)
	timers := &fakeTimers{}
	h.afterFunc = timers.afterFunc
	h.IdleDelay = -1
	h.Hash(context.Background(), "some-password")
	h.Verify(context.Background(), "", "some-password")
	if timers.last() != nil {
		t.Fatal("idle timer armed though IdleDelay < 0")
	}
}

// With the real timer: OnIdle comes after a hash.
func TestIdleHookRealTimer(t *testing.T) {
	h := newHasher(t, fast, 1, time.Second)
	h.IdleDelay = time.Millisecond
	idle := make(chan struct{}, 1)
	h.OnIdle = func() {
		select {
		case idle <- struct{}{}:
		default:
		}
	}
	if _, err := h.Hash(context.Background(), "some-password"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-idle:
	case <-time.After(30 * time.Second): // a bound for a broken build, not a wait
		t.Fatal("no OnIdle after a hash")
	}
}

// heapHeld is the heap memory the process keeps from the OS: live and dead objects, and free
// pages not yet returned.
func heapHeld() (held, free uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	for _, x := range s {
		held += x.Value.Uint64()
	}
	return held, s[2].Value.Uint64()
}

// kept is how many hash memories the Hasher keeps now, and their bytes.
func kept(h *Hasher) (n, bytes int) {
	var ms []*argon2.Memory
	for {
		select {
		case m := <-h.memory:
			ms = append(ms, m)
			continue
		default:
		}
		break
	}
	for _, m := range ms {
		bytes += m.Size()
		h.memory <- m
	}
	return len(ms), bytes
}

// Logins at the default cost (19 MiB each) work in memory kept outside the Go heap, at most one
// per slot, whatever the number of hashes; the heap does not grow by a hash's memory per login,
// and once the hashing is quiet the kept memory and the heap go back to the OS.
func TestIdleReturnsMemory(t *testing.T) {
	h := newHasher(t, DefaultParams, 2, time.Minute)
	timers := &fakeTimers{}
	h.afterFunc = timers.afterFunc
	idle := make(chan struct{})
	h.OnIdle = func() { close(idle) }
	h.Warm()
	h.ReleaseMemory() // as cmd serve does after the start-up hash
	if n, _ := kept(h); n != 0 {
		t.Fatalf("%d memories kept after ReleaseMemory", n)
	}
	runtime.GC()
	before, _ := heapHeld()

	enc, err := h.Hash(context.Background(), "first-password")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 7 {
		wg.Go(func() {
			if _, _, err := h.Verify(context.Background(), enc, fmt.Sprint("attempt-", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	peak, _ := heapHeld()
	n, bytes := kept(h)
	t.Logf("8 hashes: heap held %.1f MiB before, %.1f MiB after; %d memories kept, %.1f MiB", mib(before), mib(peak), n, mib(uint64(bytes)))
	if n < 1 || n > 2 || bytes > 2*19*(1<<20)+(1<<20) {
		t.Fatalf("%d memories kept (%.1f MiB) for 2 slots; want 1 or 2 of 19 MiB", n, mib(uint64(bytes)))
	}
	if grown := int64(peak) - int64(before); grown > 8<<20 {
		t.Fatalf("the heap grew by %.1f MiB over 8 hashes: their memory is on the heap", float64(grown)/(1<<20))
	}
	go timers.last()() // as the timer would, on its own goroutine
	<-idle
	held, free := heapHeld()
	t.Logf("once idle: heap held %.1f MiB (%.1f MiB of it free pages)", mib(held), mib(free))
	if n, _ := kept(h); n != 0 {
		t.Fatalf("%d memories still kept once idle", n)
	}
	if held > 8<<20 {
		t.Fatalf("heap held once idle = %.1f MiB (free pages %.1f MiB); want < 8 MiB", mib(held), mib(free))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// Past MaxWaiting hashes waiting for a slot, one more is refused at once (a burst does not hold
// a request per login for the whole wait), and those waiting still get their turn.
func TestBoundedQueueRefusesAtOnce(t *testing.T) {
	h := newHasher(t, fast, 1, time.Minute)
	h.MaxWaiting = 2
	h.slots <- struct{}{} // occupy the only slot
	results := make(chan error, 2)
	for range 2 {
		go func() { _, err := h.Hash(context.Background(), "waiting-pw"); results <- err }()
	}
	for h.Waiting() < 2 {
		runtime.Gosched()
	}
	start := time.Now()
	_, err := h.Hash(context.Background(), "third-pw")
	if !errors.Is(err, ErrBusy) || time.Since(start) > 10*time.Second {
		t.Fatalf("a third waiter: %v after %v, want ErrBusy at once", err, time.Since(start))
	}
	<-h.slots // the slot frees: both waiters hash
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("a waiter: %v", err)
		}
	}
	if h.Waiting() != 0 {
		t.Fatalf("waiting = %d after the queue emptied", h.Waiting())
	}
}
