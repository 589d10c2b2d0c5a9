// Package password hashes and checks passwords with argon2id, stored as PHC strings, and
// bounds how many hashes run at once: each takes the configured memory (19 MiB by default),
// so an unbounded login flood would exhaust the machine. When the hashing goes quiet, it hands
// that memory back to the OS. Passwords are NFKC-normalised before they are hashed or checked.
package password

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"jwtidp/idp/password/internal/argon2"
	"jwtidp/shared/apperr"
)

// MaxBytes is the longest password accepted; longer ones are refused before hashing.
const MaxBytes = 1024

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams is OWASP's floor for argon2id.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Validate checks that the parameters are usable.
func (p Params) Validate() error {
	if p.Memory < 8*uint32(p.Threads) || p.Memory < 64 {
		return fmt.Errorf("argon2 memory must be at least 64 KiB and 8 KiB per thread")
	}
	if p.Time < 1 || p.Threads < 1 {
		return fmt.Errorf("argon2 time and threads must be at least 1")
	}
	return nil
}

// weakerThan reports whether p costs less than q in any dimension.
func (p Params) weakerThan(q Params) bool {
	return p.Memory < q.Memory || p.Time < q.Time || p.Threads < q.Threads
}

// DefaultIdleDelay is how long the hashing slots stay unused before the hashes' memory is handed
// back to the OS.
const DefaultIdleDelay = time.Second

// Hasher hashes and verifies passwords with at most a fixed number of hashes at once.
//
// Each hash works in its memory parameter (19 MiB by default), mapped outside the Go heap and kept
// for the next hash (at most one per slot, and the start-up hash's), so a burst of logins holds
// that memory once per slot instead of a fresh copy per login left to the garbage collector. When
// the last running hash ends and none starts within IdleDelay, the Hasher unmaps the kept memory
// and runs debug.FreeOSMemory once (for what the requests themselves left): a burst of logins is
// one quiet period, not one per login.
//
// The exported fields are set before the Hasher is first used.
type Hasher struct {
	params  Params
	slots   chan struct{}
	memory  chan *argon2.Memory // kept for the next hash: at most one per slot
	wait    time.Duration
	random  io.Reader
	dummy   func() string              // ready once the start-up hash is done
	OnSlot  func(waited time.Duration) // observes how long each hash waited for a slot
	OnStart func()                     // called as a hash starts and
	OnEnd   func()                     // as it ends, for tests and metrics

	// IdleDelay is how long the slots must stay unused, after a hash, before the memory is handed
	// back; negative: never. NewHasher sets DefaultIdleDelay.
	IdleDelay time.Duration
	// OnIdle is called after the memory was handed back, for tests and metrics.
	OnIdle func()
	// MaxWaiting bounds the hashes waiting for a slot; one more is refused with ErrBusy at once
	// instead of holding its request (body, goroutine, and soon argon2's memory) through a burst.
	// 0: no bound but the wait.
	MaxWaiting int

	waiting atomic.Int64 // hashes waiting for a slot now

	mu        sync.Mutex // held by begin, end and idle (never while memory is freed)
	running   int        // hashes running, the start-up hash included
	hashed    bool       // a hash through a slot ended since the memory was last handed back
	idleGen   uint64     // changes as a hash starts and as memory is handed back: a stale timer sees it
	stopIdle  func() bool
	afterFunc func(time.Duration, func()) (stop func() bool) // time.AfterFunc; tests fake it
	freeOS    func()                                         // freeOSMemory; tests count it
	onVerify  func()                                         // called as Verify hashes, for tests
}

// ErrBusy is returned when no hashing slot frees up within the wait.
var ErrBusy = &apperr.Error{Code: apperr.EUNAVAILABLE, Message: "Server busy, try again shortly", RetryAfter: time.Second}

// NewHasher returns a Hasher running at most slots hashes at once; a hash that gets no slot
// within wait fails with ErrBusy. It hashes a random password once to make the dummy hash that
// unknown usernames are checked against.
func NewHasher(p Params, slots int, wait time.Duration, random io.Reader) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if slots < 1 {
		return nil, fmt.Errorf("hash concurrency must be at least 1")
	}
	h := &Hasher{params: p, slots: make(chan struct{}, slots), memory: make(chan *argon2.Memory, slots), wait: wait, random: random,
		IdleDelay: DefaultIdleDelay, afterFunc: afterFunc, freeOS: freeOSMemory}
	var pw [16]byte
	if _, err := io.ReadFull(random, pw[:]); err != nil {
		return nil, err
	}
	// The dummy hash takes one full hash to make; it is made in the background so start-up does
	// not wait for it, and an unknown user's check waits for it instead (once).
	h.dummy = sync.OnceValue(func() string {
		h.begin()
		defer h.end(false)
		d, err := h.hash(string(pw[:]))
		if err != nil {
			panic(err) // only a failing random source, which NewHasher has just read from
		}
		return d
	})
	go h.dummy()
	return h, nil
}

// Warm returns once the dummy hash exists.
func (h *Hasher) Warm() { h.dummy() }

func (h *Hasher) acquire(ctx context.Context) (func(), error) {
	start := time.Now()
	select {
	case h.slots <- struct{}{}: // a free slot: no queue at all
		return h.acquired(start), nil
	default:
	}
	if n := h.waiting.Add(1); h.MaxWaiting > 0 && n > int64(h.MaxWaiting) {
		h.waiting.Add(-1)
		return nil, ErrBusy
	}
	defer h.waiting.Add(-1)
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ErrBusy
	}
	return h.acquired(start), nil
}

// Waiting is how many hashes wait for a slot now.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// acquired starts a hash that got a slot at start's wait; the func returned ends it.
func (h *Hasher) acquired(start time.Time) func() {
	h.begin()
	if h.OnSlot != nil {
		h.OnSlot(time.Since(start))
	}
	if h.OnStart != nil {
		h.OnStart()
	}
	return func() {
		if h.OnEnd != nil {
			h.OnEnd()
		}
		h.end(true)
		<-h.slots
	}
}

// freeOSMemory collects twice before handing the free heap back: what the requests of a burst
// left in sync.Pools (net/http's buffers among them) survives one collection in the pools' victim
// cache, and would otherwise be freed only at a later collection and returned to the OS over
// minutes by the background scavenger.
func freeOSMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

func afterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// begin counts a hash that starts, and disarms the idle timer. It waits while idle frees memory.
func (h *Hasher) begin() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running++
	h.idleGen++
	if h.stopIdle != nil {
		h.stopIdle()
		h.stopIdle = nil
	}
}

// end counts a hash that ends and, when it was the last one running, arms the idle timer. The
// start-up hash (slot false) arms it only if a hash through a slot ended while it ran: it reads no
// exported field on its own, as it runs while the caller of NewHasher may still be setting them
// (cmd serve frees the start-up hash's memory itself).
func (h *Hasher) end(slot bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running--
	h.hashed = h.hashed || slot
	if h.running > 0 || !h.hashed || h.IdleDelay < 0 {
		return
	}
	gen := h.idleGen
	h.stopIdle = h.afterFunc(h.IdleDelay, func() { h.idle(gen) })
}

// idle hands the memory back to the OS unless a hash started since the timer was armed at gen.
func (h *Hasher) idle(gen uint64) {
	h.mu.Lock()
	if gen != h.idleGen {
		h.mu.Unlock()
		return
	}
	h.idleGen++
	h.stopIdle = nil
	h.hashed = false
	h.mu.Unlock()
	// Outside the lock: a forced collection takes milliseconds, and a login arriving meanwhile
	// must not wait for it (its hash simply maps memory afresh).
	h.ReleaseMemory()
	if h.OnIdle != nil {
		h.OnIdle()
	}
}

// ReleaseMemory hands back to the OS the hashes' kept memory and, through a forced collection,
// what the Go heap no longer uses. A hash running meanwhile is not disturbed: it holds its own.
func (h *Hasher) ReleaseMemory() {
	for {
		select {
		case m := <-h.memory:
			m.Release()
			continue
		default:
		}
		break
	}
	h.freeOS()
}

// Hash returns the PHC string of password's NFKC form under the configured parameters.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return h.hash(normalize(password))
}

// hash hashes password as given, without normalising it: what Hash did before passwords were
// NFKC-normalised, and what the stored hashes of that time are of.
func (h *Hasher) hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(h.random, salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := h.idKey([]byte(password), salt, h.params, keyLen)
	return encode(h.params, salt, key), nil
}

// idKey is argon2id in a kept memory, or a new one when none is free; the memory is kept again
// afterwards unless every slot's is already kept.
func (h *Hasher) idKey(password, salt []byte, p Params, keyLen uint32) []byte {
	var m *argon2.Memory
	select {
	case m = <-h.memory:
	default:
		m = new(argon2.Memory)
	}
	defer func() { // deferred: a hash that panicked must not leak its mapping either
		select {
		case h.memory <- m:
		default:
			m.Release()
		}
	}()
	return argon2.IDKey(m, password, salt, p.Time, p.Memory, p.Threads, keyLen)
}

// Verify reports whether password matches encoded, and whether encoded should be replaced by
// Hash(password): because its parameters are weaker than the configured ones, or because it is a
// hash of the password as typed, made before passwords were NFKC-normalised. An empty encoded (an
// unknown user) is checked against the dummy hash, so it costs the same and never matches.
//
// The NFKC form is checked first. If it does not match and the password is not in NFKC form, the
// password as typed is checked too: a wrong password that is not in NFKC form (rare: full-width or
// compatibility characters, decomposed accents) costs two hashes, for a known user or not alike.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	unknown := encoded == ""
	if unknown {
		encoded = h.dummy()
	}
	p, salt, want, err := Decode(encoded)
	if err != nil {
		return false, false, err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, false, err
	}
	defer release()
	matches := func(pw string) bool {
		if h.onVerify != nil {
			h.onVerify()
		}
		got := h.idKey([]byte(pw), salt, p, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1
	}
	nfkc := normalize(password)
	match, legacy := matches(nfkc), false
	if !match && nfkc != password {
		match = matches(password)
		legacy = match
	}
	if unknown {
		return false, false, nil
	}
	return match, match && (legacy || p.weakerThan(h.params)), nil
}

func encode(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errFormat = errors.New("password hash: not an argon2id PHC string")

// maxDecodeMemory bounds the memory a stored hash may ask for (4 GiB), so a corrupted or
// planted hash cannot make one verification allocate without limit.
const maxDecodeMemory = 4 << 20

// Decode parses a PHC argon2id string: $argon2id$v=19$m=…,t=…,p=…$salt$hash.
func Decode(s string) (Params, []byte, []byte, error) {
	// Go's base64 decoders skip CR and LF even in strict mode; a stored hash has neither.
	if strings.ContainsAny(s, "\r\n") {
		return Params{}, nil, nil, errFormat
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, errFormat
	}
	var p Params
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return Params{}, nil, nil, errFormat
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return Params{}, nil, nil, errFormat
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil || (len(v) > 1 && v[0] == '0') {
			return Params{}, nil, nil, errFormat
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			p.Threads = uint8(n)
		}
	}
	if p.Validate() != nil || p.Memory > maxDecodeMemory || p.Time > 64 {
		return Params{}, nil, nil, errFormat
	}
	salt, err := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return Params{}, nil, nil, errFormat
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return Params{}, nil, nil, errFormat
	}
	return p, salt, key, nil
}
