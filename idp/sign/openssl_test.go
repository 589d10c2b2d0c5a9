//go:build cgo && linux

package sign

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func init() { cHeapInUse = cMallocInUse }

// opensslFor is the OpenSSL backend; the test is skipped (or fails, with
// JWTIDP_REQUIRE_INTEGRATION) when libcrypto 3 cannot be loaded.
func opensslFor(t testing.TB) Backend {
	t.Helper()
	b := loadedOpenSSL(t)
	if b == nil {
		t.Skip("libcrypto 3 cannot be loaded")
	}
	return b
}

// TestLoadOpenSSLRefuses: a library that is not there, or is not libcrypto, is an error that
// names it; a list tries each name in turn.
func TestLoadOpenSSLRefuses(t *testing.T) {
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"libcrypto-jwtidp-missing.so.3"}, "libcrypto-jwtidp-missing.so.3: cannot open shared object file"},
		{[]string{"libc.so.6"}, "OpenSSL_version_num"}, // there, but not libcrypto
		{nil, "no library"},
	} {
		b, err := LoadOpenSSL(c.names...)
		if err == nil || b != nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("LoadOpenSSL(%q) = %v, %v; want an error with %q", c.names, b, err, c.want)
		}
		t.Logf("%q: %v", c.names, err)
	}
	want := opensslFor(t)
	b, err := LoadOpenSSL(append([]string{"libcrypto-jwtidp-missing.so.3"}, libcryptoNames...)...)
	if err != nil {
		t.Fatalf("a missing name before the real ones: %v", err)
	}
	if b.Name() != "openssl" || fmt.Sprint(b) != fmt.Sprint(want) {
		t.Fatalf("loaded %v, want %v", b, want)
	}
	t.Logf("loaded: %v", b)
}

// TestOpenSSLLoadRefuses: a PKCS #8 key that is not RSA, or not priv, is an error.
func TestOpenSSLLoadRefuses(t *testing.T) {
	ossl := opensslFor(t)
	priv, other := key2048(0), key2048(1)
	derOf := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherE := *priv
	otherE.PublicKey = rsa.PublicKey{N: priv.N, E: 3}
	good := derOf(priv)
	for _, c := range []struct {
		name string
		priv *rsa.PrivateKey
		der  []byte
		want string
	}{
		{"other RSA key", priv, derOf(other), "modulus"},
		{"other size", priv, derOf(testKeys(3072)[0]), "modulus"},
		{"other exponent", &otherE, good, "exponent"},
		{"ECDSA", priv, derOf(ec), "not an RSA key"},
		{"Ed25519", priv, derOf(ed), "not an RSA key"},
		{"garbage", priv, []byte("not DER at all"), "openssl"},
		{"truncated", priv, good[:len(good)/2], "openssl"},
		{"empty", priv, nil, "empty"},
		{"no private key", nil, good, "no private key"},
	} {
		k, err := ossl.Load(c.priv, c.der)
		if err == nil {
			k.Close()
			t.Errorf("%s: Load succeeded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load: %v; want an error about %q", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
	k, err := ossl.Load(priv, good)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	if _, err := k.Sign([]byte("x")); err != ErrClosed {
		t.Fatalf("Sign on a loaded then closed key: %v, want ErrClosed", err)
	}
}

// TestOpenSSLCloseWaitsForInFlight holds a Sign inside its critical section (a test hook
// where the C call is made) and checks that Close waits for it, that a Sign arriving while
// Close waits gets ErrClosed, and that the held Sign finishes with a valid signature.
func TestOpenSSLCloseWaitsForInFlight(t *testing.T) {
	ossl := opensslFor(t)
	priv := key2048(0)
	k := load(t, ossl, priv)
	msg := []byte("a.b")
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	testHookInFlight = func() { once.Do(func() { close(entered); <-release }) }
	defer func() { testHookInFlight = nil }()

	type result struct {
		sig []byte
		err error
	}
	held, late := make(chan result, 1), make(chan result, 1)
	go func() { sig, err := k.Sign(msg); held <- result{sig, err} }()
	<-entered
	closed := make(chan struct{})
	go func() { k.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a Sign was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	go func() { sig, err := k.Sign(msg); late <- result{sig, err} }()
	time.Sleep(20 * time.Millisecond)
	close(release)
	r := <-held
	if r.err != nil {
		t.Fatalf("the Sign in flight at Close: %v", r.err)
	}
	if err := verify(&priv.PublicKey, msg, r.sig); err != nil {
		t.Fatalf("the Sign in flight at Close: %v", err)
	}
	<-closed
	if r := <-late; r.err != ErrClosed {
		t.Fatalf("a Sign called while Close waited: %v, want ErrClosed", r.err)
	}
	if _, err := k.Sign(msg); err != ErrClosed {
		t.Fatalf("Sign after Close: %v, want ErrClosed", err)
	}
}

// settledCHeap is the C heap in use once nothing more is being freed.
func settledCHeap() uint64 {
	runtime.GC()
	return cMallocInUse()
}

// TestOpenSSLLoadCloseNoLeak: loading and closing keys (rotations) gives back what a key holds.
func TestOpenSSLLoadCloseNoLeak(t *testing.T) {
	ossl := opensslFor(t)
	N := 500
	if cMallocInUse() == 0 {
		t.Skip("no mallinfo2")
	}
	cycle := func(n int) {
		for i := range n {
			k := load(t, ossl, key2048(i))
			if _, err := k.Sign([]byte("a.b")); err != nil {
				t.Fatal(err)
			}
			k.Close()
		}
	}
	cycle(50)
	before := settledCHeap()
	cycle(N)
	after := settledCHeap()
	t.Logf("%d loads and closes: C heap %d → %d (%+d)", N, before, after, int64(after)-int64(before))
	if after > before+256<<10 {
		t.Fatalf("C heap grew by %d bytes over %d load/close cycles", after-before, N)
	}
}

// TestOpenSSLDroppedKeyIsFreed: a key dropped without Close is freed by its cleanup.
func TestOpenSSLDroppedKeyIsFreed(t *testing.T) {
	ossl := opensslFor(t)
	if cMallocInUse() == 0 {
		t.Skip("no mallinfo2")
	}
	loadN := func(n int) []Key {
		keys := make([]Key, n)
		for i := range keys {
			keys[i] = load(t, ossl, key2048(i))
			if _, err := keys[i].Sign(nil); err != nil {
				t.Fatal(err)
			}
		}
		return keys
	}
	settle := func(until func(uint64) bool) uint64 {
		var h uint64
		for range 100 { // cleanups run on their own goroutine after a GC
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
			if h = cMallocInUse(); until(h) {
				break
			}
		}
		return h
	}
	keys := loadN(20)
	keys = nil
	settle(func(uint64) bool { return false })
	before := settledCHeap()
	keys = loadN(300)
	held := settledCHeap()
	runtime.KeepAlive(keys)
	keys = nil
	after := settle(func(h uint64) bool { return h <= before+256<<10 })
	t.Logf("300 keys dropped without Close: C heap %d → %d while held → %d after their cleanups", before, held, after)
	if held < before+1<<20 {
		t.Fatalf("300 loaded keys hold only %d bytes of C heap: the measure does not see them", held-before)
	}
	if after > before+256<<10 {
		t.Fatalf("dropped keys not freed: C heap %d bytes above where it was", after-before)
	}
}

// TestOpenSSLInitEachMatches: the per-call EVP_DigestSignInit path, kept for the benchmark,
// makes the same signatures.
func TestOpenSSLInitEachMatches(t *testing.T) {
	ossl := opensslFor(t)
	priv := key2048(0)
	k := load(t, ossl, priv).(*opensslKey)
	defer k.Close()
	for _, msg := range testMessages(5) {
		sig, err := k.sign(msg, true)
		if err != nil {
			t.Fatal(err)
		}
		if w := want(t, priv, msg); string(sig) != string(w) {
			t.Fatalf("%d-byte message: per-call init signature differs", len(msg))
		}
	}
}

// BenchmarkOpenSSLContextReuse compares the template copied per signature (what Sign does)
// with a fresh EVP_DigestSignInit per signature, serially (CPU per signature) and in parallel.
func BenchmarkOpenSSLContextReuse(b *testing.B) {
	ossl := opensslFor(b)
	for _, bits := range []int{2048, 4096} {
		priv := testKeys(bits)[0]
		k := load(b, ossl, priv).(*opensslKey)
		msg := jwtSigningString(mrand.New(mrand.NewPCG(1, 2)), 300)
		b.ResetTimer()
		for _, m := range []struct {
			name     string
			initEach bool
		}{{"template", false}, {"init-each", true}} {
			b.Run(strconv.Itoa(bits)+"/"+m.name+"/serial", func(b *testing.B) {
				for b.Loop() {
					if _, err := k.sign(msg, m.initEach); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(strconv.Itoa(bits)+"/"+m.name+"/parallel", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := k.sign(msg, m.initEach); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
		k.Close()
	}
}
