package jwtauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/jwtauth/forge"
)

// switchable keys: the test removes a key and bumps the generation, as a JWKS refresh would.
type switchable struct {
	keys    atomic.Pointer[map[string]*rsa.PublicKey]
	gen     atomic.Uint64
	lookups atomic.Int64
}

func (s *switchable) Key(_ context.Context, kid string) (*rsa.PublicKey, error) {
	s.lookups.Add(1)
	if k, ok := (*s.keys.Load())[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}
func (s *switchable) Generation() uint64 { return s.gen.Load() }

func setup(t *testing.T, size int) (*Verifier, *switchable, forge.Minter, *time.Time) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	m := forge.Minter{Key: k, KID: "k1", Issuer: "https://iss.test", Audience: []string{"svc"}}
	src := &switchable{}
	src.keys.Store(&map[string]*rsa.PublicKey{"k1": &k.PublicKey})
	now := time.Now()
	v := NewVerifier(Config{Issuer: m.Issuer, Audience: "svc", Leeway: 5 * time.Second, Keys: src, CacheSize: size,
		Now: func() time.Time { return now }})
	return v, src, m, &now
}

func TestCacheSkipsRepeatedVerification(t *testing.T) {
	v, src, m, _ := setup(t, 100)
	tok := m.Valid()
	for range 5 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.lookups.Load(); n != 1 {
		t.Fatalf("%d key lookups for five presentations, want 1 (the rest from the cache)", n)
	}
}

func TestCachedTokenRefusedAfterExpiry(t *testing.T) {
	v, _, m, now := setup(t, 100)
	c := m.Claims()
	c["exp"] = now.Add(10 * time.Second).Unix()
	tok := m.Sign(c, nil, jwt.SigningMethodRS256, m.Key)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(16 * time.Second) // past exp and the 5 s leeway
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a cached token past its exp: %v, want refused", err)
	}
}

func TestCachedTokenRefusedWhenKeyLeaves(t *testing.T) {
	v, src, m, _ := setup(t, 100)
	tok := m.Valid()
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	src.keys.Store(&map[string]*rsa.PublicKey{}) // the key left the JWKS
	src.gen.Add(1)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a cached token whose key left: %v, want refused", err)
	}
}

func TestCacheBounded(t *testing.T) {
	v, _, m, _ := setup(t, 50)
	for i := range 500 {
		c := m.Claims()
		c["jti"] = fmt.Sprint(i)
		if _, err := v.Verify(context.Background(), m.Sign(c, nil, jwt.SigningMethodRS256, m.Key)); err != nil {
			t.Fatal(err)
		}
		if n := v.cache.len(); n > 50 {
			t.Fatalf("cache holds %d entries, bound 50", n)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, size := range []int{0, 10000} {
		v, _, m, _ := setup(&testing.T{}, size)
		tok := m.Valid()
		b.Run(map[int]string{0: "uncached", 10000: "cached"}[size], func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A token found in the cache costs its hash and no allocation: the key is hashed where the
// string lies, not from a copy of it (about 800 bytes on every forward-auth request).
func TestCacheHitAllocatesNothing(t *testing.T) {
	c := newTokenCache(10)
	raw := strings.Repeat("a.b.", 200)
	now := time.Now()
	c.put(raw, &Claims{}, now.Add(time.Minute), 1, now)
	if _, ok := c.get(raw, 1, now); !ok {
		t.Fatal("the token put is not found")
	}
	if n := testing.AllocsPerRun(100, func() { c.get(raw, 1, now) }); n != 0 {
		t.Errorf("a cache hit allocates %v times, want 0", n)
	}
}

// Two tokens that share the cache's key are two misses: the second is never answered with the
// claims the first was verified to carry.
func TestCacheKeyCollisionIsAMiss(t *testing.T) {
	c := newTokenCache(10)
	c.hash = func(string) uint64 { return 7 } // every token in one slot
	now := time.Now()
	alice := &Claims{}
	alice.Subject = "alice"
	c.put("token-of-alice", alice, now.Add(time.Minute), 1, now)
	if got, ok := c.get("token-of-mallory", 1, now); ok {
		t.Fatalf("a token sharing the key got the claims of %q", got.Subject)
	}
	if got, ok := c.get("token-of-alice", 1, now); !ok || got != alice {
		t.Fatalf("alice's token: %v, %v", got, ok)
	}
	// The later token takes the slot; the earlier is then a miss, and verified again.
	c.put("token-of-bob", &Claims{}, now.Add(time.Minute), 1, now)
	if _, ok := c.get("token-of-alice", 1, now); ok {
		t.Error("alice's token still found after bob's took its slot")
	}
	if _, ok := c.get("token-of-bob", 1, now); !ok {
		t.Error("bob's token not found")
	}
}

// The entry keeps a copy of the token, not the string it lay in.
func TestCacheKeepsACopyOfTheToken(t *testing.T) {
	c := newTokenCache(10)
	header := "Bearer " + strings.Repeat("x", 4096)
	raw := header[len("Bearer "):]
	now := time.Now()
	c.put(raw, &Claims{}, now.Add(time.Minute), 1, now)
	for _, e := range c.m {
		if unsafe.StringData(e.raw) == unsafe.StringData(raw) {
			t.Error("the entry shares the request's string")
		}
	}
}
