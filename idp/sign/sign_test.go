package sign

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The key sizes the IdP signs with.
var keySizes = []int{2048, 3072, 4096}

// testKeys(bits) are generated once per test binary and size, in parallel: three 2048-bit keys
// (the rotation tests cycle through them), two of 3072 and 4096 bits (a 4096-bit key can take
// a second or two).
func testKeys(bits int) []*rsa.PrivateKey { return testKeysBySize[bits]() }

var testKeysBySize = map[int]func() []*rsa.PrivateKey{
	2048: sync.OnceValue(generateKeys(2048, 3)),
	3072: sync.OnceValue(generateKeys(3072, 2)),
	4096: sync.OnceValue(generateKeys(4096, 2)),
}

func generateKeys(bits, n int) func() []*rsa.PrivateKey {
	return func() []*rsa.PrivateKey {
		keys := make([]*rsa.PrivateKey, n)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := rsa.GenerateKey(rand.Reader, bits)
				if err != nil {
					panic(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		return keys
	}
}

func key2048(i int) *rsa.PrivateKey {
	ks := testKeys(2048)
	return ks[i%len(ks)]
}

// backends are Go and, when libcrypto 3 loads, OpenSSL. When it does not, the OpenSSL half of
// each test is skipped with the reason, or fails when JWTIDP_REQUIRE_INTEGRATION is set (CI,
// which installs libssl3, never skips it silently).
func backends(t testing.TB) []Backend {
	t.Helper()
	if b := loadedOpenSSL(t); b != nil {
		return []Backend{Go, b}
	}
	return []Backend{Go}
}

// loadedOpenSSL is the OpenSSL backend, or nil (logged) when libcrypto 3 cannot be loaded here.
func loadedOpenSSL(t testing.TB) Backend {
	t.Helper()
	b, err := OpenSSL()
	if err != nil {
		if os.Getenv("JWTIDP_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("the OpenSSL signer cannot be loaded (JWTIDP_REQUIRE_INTEGRATION is set): %v", err)
		}
		t.Logf("the OpenSSL backend is not tested: %v", err)
		return nil
	}
	return b
}

func load(t testing.TB, b Backend, priv *rsa.PrivateKey) Key {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := b.Load(priv, der)
	if err != nil {
		t.Fatalf("%s: Load: %v", b.Name(), err)
	}
	return k
}

// want is crypto/rsa's RS256 signature, the reference.
func want(t testing.TB, priv *rsa.PrivateKey, msg []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func verify(pub *rsa.PublicKey, msg, sig []byte) error {
	sum := sha256.Sum256(msg)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// jwtSigningString is header.payload as the IdP signs it, with a payload of about n bytes.
func jwtSigningString(r *mrand.Rand, n int) []byte {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k-2026-11-29","typ":"at+jwt"}`))
	scopes := make([]string, 0, 8)
	for range r.IntN(8) {
		scopes = append(scopes, fmt.Sprintf("scope%d", r.IntN(1000)))
	}
	payload := fmt.Sprintf(`{"iss":"https://idp.example.com","sub":"%d","aud":"api","exp":%d,"iat":%d,"jti":"%x","scope":"%s","pad":"%s"}`,
		r.Int64(), 1795000000+r.IntN(1e6), 1794990000, r.Uint64(), strings.Join(scopes, " "), strings.Repeat("x", r.IntN(n+1)))
	return []byte(header + "." + enc.EncodeToString([]byte(payload)))
}

// testMessages: empty, one byte, SHA-256 block boundaries, JWT signing strings and random
// bytes of random sizes up to 4 KiB.
func testMessages(seed uint64) [][]byte {
	r := mrand.New(mrand.NewPCG(seed, 18))
	msgs := [][]byte{nil, {}, {0}, {'a'}, []byte("eyJhbGciOiJSUzI1NiJ9.e30")}
	for _, n := range []int{55, 56, 63, 64, 65, 119, 128} {
		msgs = append(msgs, randBytes(r, n))
	}
	for _, n := range []int{0, 100, 300, 800} {
		msgs = append(msgs, jwtSigningString(r, n))
	}
	for range 8 {
		msgs = append(msgs, randBytes(r, r.IntN(4097)))
	}
	return msgs
}

func randBytes(r *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestChoose: --signer's three choices. auto is OpenSSL when libcrypto 3 loads, else Go with
// the loader's error as the reason; openssl is an error naming the library when it cannot load.
func TestChoose(t *testing.T) {
	if Go.Name() != "go" {
		t.Fatalf("Go.Name() = %q", Go.Name())
	}
	b, why, err := Choose(ChooseGo)
	if err != nil || b != Go || why == "" {
		t.Fatalf("Choose(go) = %v, %q, %v", b, why, err)
	}
	if _, _, err := Choose("fast"); err == nil || !strings.Contains(err.Error(), "auto, openssl or go") {
		t.Fatalf("Choose(fast): %v, want an error naming the choices", err)
	}

	b, why, err = Choose(ChooseAuto)
	if err != nil {
		t.Fatalf("Choose(auto): %v", err)
	}
	t.Logf("auto: %s (%s)", b.Name(), why)
	if ossl, lerr := OpenSSL(); lerr == nil {
		if b != ossl || !strings.Contains(why, "OpenSSL 3.") {
			t.Fatalf("libcrypto 3 loads, yet auto chose %s (%q)", b.Name(), why)
		}
	} else if b != Go || why != lerr.Error() {
		t.Fatalf("libcrypto does not load (%v), yet auto chose %s (%q)", lerr, b.Name(), why)
	}
	if os.Getenv("JWTIDP_REQUIRE_INTEGRATION") != "" && b.Name() != "openssl" {
		t.Fatalf("JWTIDP_REQUIRE_INTEGRATION is set and auto signs with %s: %s", b.Name(), why)
	}

	// A libcrypto that is not there: auto falls back to Go saying why, openssl refuses.
	missing := func() (Backend, error) { return LoadOpenSSL("libcrypto-jwtidp-missing.so.3") }
	b, why, err = ChooseWith(ChooseAuto, missing)
	if err != nil || b != Go || why == "" {
		t.Fatalf("auto without libcrypto = %v, %q, %v; want go and a reason", b, why, err)
	}
	t.Logf("auto without libcrypto: go (%s)", why)
	b, _, err = ChooseWith(ChooseOpenSSL, missing)
	if err == nil || b != nil || !strings.Contains(err.Error(), "OpenSSL signer cannot be loaded") {
		t.Fatalf("openssl without libcrypto = %v, %v; want an error", b, err)
	}
	t.Logf("openssl without libcrypto: %v", err)
}

// TestSignMatchesCryptoRSA: PKCS #1 v1.5 is deterministic, so every backend's signature is
// crypto/rsa's byte for byte, for every key size the IdP allows.
func TestSignMatchesCryptoRSA(t *testing.T) {
	for _, b := range backends(t) {
		for _, bits := range keySizes {
			t.Run(fmt.Sprintf("%s/%d", b.Name(), bits), func(t *testing.T) {
				t.Parallel()
				for i, priv := range testKeys(bits) {
					k := load(t, b, priv)
					for j, msg := range testMessages(uint64(bits*10 + i)) {
						sig, err := k.Sign(msg)
						if err != nil {
							t.Fatalf("key %d, message %d (%d bytes): %v", i, j, len(msg), err)
						}
						if len(sig) != bits/8 {
							t.Fatalf("key %d, message %d: %d-byte signature, want %d", i, j, len(sig), bits/8)
						}
						if w := want(t, priv, msg); string(sig) != string(w) {
							t.Fatalf("key %d, message %d (%d bytes): signature differs from crypto/rsa's\n got %x\nwant %x", i, j, len(msg), sig, w)
						}
						if err := verify(&priv.PublicKey, msg, sig); err != nil {
							t.Fatalf("key %d, message %d: VerifyPKCS1v15: %v", i, j, err)
						}
					}
					k.Close()
				}
			})
		}
	}
}

// TestSignConcurrent: many goroutines sign with one key at once (run it with -race).
func TestSignConcurrent(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) {
			priv := key2048(0)
			k := load(t, b, priv)
			defer k.Close()
			const goroutines, each = 24, 8
			msgs := testMessages(7)
			var wg sync.WaitGroup
			errs := make(chan error, goroutines*each)
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						msg := msgs[(g+i)%len(msgs)]
						sig, err := k.Sign(msg)
						if err == nil {
							err = verify(&priv.PublicKey, msg, sig)
						}
						if err != nil {
							errs <- fmt.Errorf("goroutine %d, sign %d: %w", g, i, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestSignAfterClose(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) {
			k := load(t, b, key2048(1))
			if _, err := k.Sign([]byte("a.b")); err != nil {
				t.Fatal(err)
			}
			k.Close()
			for _, msg := range [][]byte{nil, []byte("a.b")} {
				if sig, err := k.Sign(msg); err != ErrClosed || sig != nil {
					t.Fatalf("Sign after Close = %x, %v; want nil, ErrClosed", sig, err)
				}
			}
			k.Close() // idempotent
			if _, err := k.Sign([]byte("a.b")); err != ErrClosed {
				t.Fatalf("Sign after a second Close: %v; want ErrClosed", err)
			}
		})
	}
}

// TestCloseWhileSigning rotates keys under signers: goroutines sign in a loop with the key
// they hold and take the current one on ErrClosed, as the IdP does, while the rotator loads a
// new key, publishes it and closes the old one with signatures in flight. Every Sign either
// makes a valid signature with the key it was called on or returns exactly ErrClosed; a
// closed key answers ErrClosed from then on.
func TestCloseWhileSigning(t *testing.T) {
	rotations := 60
	if testing.Short() {
		rotations = 15
	}
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) {
			type current struct {
				key  Key
				priv *rsa.PrivateKey
				n    int
			}
			var cur atomic.Pointer[current]
			cur.Store(&current{key: load(t, b, key2048(0)), priv: key2048(0)})
			var stop atomic.Bool
			var signed, closed atomic.Int64
			msgs := testMessages(3)
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			report := func(err error) {
				select {
				case errs <- err:
				default:
				}
			}
			for g := range 16 {
				wg.Go(func() {
					c := cur.Load()
					for i := 0; !stop.Load(); i++ {
						msg := msgs[(g+i)%len(msgs)]
						sig, err := c.key.Sign(msg)
						switch {
						case err == nil:
							if err := verify(&c.priv.PublicKey, msg, sig); err != nil {
								report(fmt.Errorf("key %d: a signature made while it was closed does not verify: %w", c.n, err))
								return
							}
							signed.Add(1)
						case err == ErrClosed:
							closed.Add(1)
							c = cur.Load()
						default:
							report(fmt.Errorf("key %d: Sign: %v, want a signature or ErrClosed", c.n, err))
							return
						}
					}
				})
			}
			for n := 1; n <= rotations; n++ {
				time.Sleep(time.Duration(mrand.IntN(3000)) * time.Microsecond)
				priv := key2048(n)
				next := &current{key: load(t, b, priv), priv: priv, n: n}
				old := cur.Swap(next)
				old.key.Close()
				if _, err := old.key.Sign(msgs[0]); err != ErrClosed {
					report(fmt.Errorf("key %d: Sign right after Close: %v, want ErrClosed", old.n, err))
				}
			}
			stop.Store(true)
			wg.Wait()
			last := cur.Load()
			last.key.Close()
			if _, err := last.key.Sign(nil); err != ErrClosed {
				t.Errorf("last key: Sign after Close: %v", err)
			}
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("%d rotations, %d signatures, %d ErrClosed", rotations, signed.Load(), closed.Load())
			if closed.Load() == 0 {
				t.Error("no Sign ever met a closed key: the test did not test")
			}
		})
	}
}

// TestCloseWaitsForSigns closes a 4096-bit key (milliseconds a signature) a moment after a
// burst of signatures started on it, so that Close always meets signatures inside the
// backend: they must finish with valid signatures (Close waits for them, freeing nothing
// under them); the rest return ErrClosed.
func TestCloseWaitsForSigns(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) {
			priv := testKeys(4096)[0]
			msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0")
			var signed, closed int
			for round := range rounds {
				k := load(t, b, priv)
				start := make(chan struct{})
				type result struct {
					sig []byte
					err error
				}
				results := make(chan result, 8)
				var wg sync.WaitGroup
				for range cap(results) {
					wg.Go(func() {
						<-start
						sig, err := k.Sign(msg)
						results <- result{sig, err}
					})
				}
				close(start)
				time.Sleep(time.Duration(500+round*250) * time.Microsecond)
				k.Close()
				if _, err := k.Sign(msg); err != ErrClosed {
					t.Fatalf("Sign after Close: %v, want ErrClosed", err)
				}
				wg.Wait()
				close(results)
				for r := range results {
					switch {
					case r.err == ErrClosed:
						closed++
					case r.err != nil:
						t.Fatalf("round %d: Sign: %v, want a signature or ErrClosed", round, r.err)
					default:
						if err := verify(&priv.PublicKey, msg, r.sig); err != nil {
							t.Fatalf("round %d: a signature in flight at Close does not verify: %v", round, err)
						}
						signed++
					}
				}
			}
			t.Logf("%d signatures, %d ErrClosed", signed, closed)
		})
	}
}

// cHeapInUse, when set (openssl_test.go sets it to glibc's mallinfo2), counts C allocations:
// what OpenSSL keeps. The Go backend is measured with runtime.MemStats instead.
var cHeapInUse func() uint64

func goHeapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// signParallel makes n signatures with k on 2×GOMAXPROCS goroutines.
func signParallel(t testing.TB, k Key, pub *rsa.PublicKey, n int) {
	t.Helper()
	workers := 2 * runtime.GOMAXPROCS(0)
	msg := jwtSigningString(mrand.New(mrand.NewPCG(1, 2)), 300)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				sig, err := k.Sign(msg)
				if err == nil && i%1000 == 0 {
					err = verify(pub, msg, sig)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
}

// TestSignNoMemoryGrowth: signing leaks nothing. OpenSSL: 30,000 RS256 signatures with one
// 2048-bit key, the C heap (mallinfo2) after them within a fixed slack (1 MiB) of what it was
// after a warm-up; a context, a 256-byte signature buffer or a digest leaked per signature is
// several megabytes (anything from 35 bytes a signature fails). Go:
// 5,000 (crypto/rsa is three times slower), measured on the Go heap.
func TestSignNoMemoryGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("30,000 signatures: not in -short")
	}
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) {
			heap, n, slack := goHeapInUse, 5_000, uint64(1<<20)
			if b.Name() == "openssl" {
				if cHeapInUse == nil || cHeapInUse() == 0 {
					t.Skip("no mallinfo2 (not glibc): cannot count C allocations")
				}
				heap, n, slack = cHeapInUse, 30_000, 1<<20
			}
			priv := key2048(2)
			k := load(t, b, priv)
			defer k.Close()
			signParallel(t, k, &priv.PublicKey, 2000) // warm-up: threads, per-thread state, caches
			before := heap()
			start := time.Now()
			signParallel(t, k, &priv.PublicKey, n)
			after := heap()
			t.Logf("%d signatures in %v; heap in use %d → %d bytes (%+d)", n, time.Since(start).Round(time.Millisecond), before, after, int64(after)-int64(before))
			if after > before+slack {
				t.Fatalf("heap grew by %d bytes over %d signatures (%.1f bytes each), slack %d", after-before, n, float64(after-before)/float64(n), slack)
			}
		})
	}
}

// BenchmarkSign: one 2048-bit key, signatures on every core, per backend (go, openssl).
func BenchmarkSign(b *testing.B) {
	for _, backend := range backends(b) {
		b.Run(backend.Name(), func(b *testing.B) {
			priv := key2048(0)
			k := load(b, backend, priv)
			defer k.Close()
			msg := jwtSigningString(mrand.New(mrand.NewPCG(1, 2)), 300)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := k.Sign(msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
