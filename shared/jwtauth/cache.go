package jwtauth

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// Generational is a KeySource that can tell when its key set changed: the verified-token cache
// then forgets everything, so no cached token outlives the key that signed it.
type Generational interface {
	Generation() uint64
}

// tokenCache remembers verified tokens, keyed by a hash of the whole token, so that a token
// presented again is not parsed and RSA-verified again: that verification costs about 50 µs,
// several times the rest of a request. Entries expire with the token's exp (plus leeway), are
// all dropped when the key set changes, and the table never holds more than max entries.
type tokenCache struct {
	max int
	mu  sync.Mutex
	gen uint64
	m   map[[32]byte]cached
}

type cached struct {
	claims *Claims
	until  time.Time
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{max: max, m: make(map[[32]byte]cached, max)}
}

// key is the cache's key of the token raw: its SHA-256, hashed where the string lies. A
// []byte(raw) would copy the token (about 800 bytes) onto the heap on every request, Sum256
// only reads its argument and keeps nothing of it.
func key(raw string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

func (c *tokenCache) get(raw string, gen uint64, now time.Time) (*Claims, bool) {
	if c == nil {
		return nil, false
	}
	k := key(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sync(gen)
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) {
		delete(c.m, k)
		return nil, false
	}
	return e.claims, true
}

func (c *tokenCache) put(raw string, claims *Claims, until time.Time, gen uint64, now time.Time) {
	if c == nil {
		return
	}
	k := key(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sync(gen)
	if len(c.m) >= c.max {
		// Full: drop what has expired, then, if still full, an arbitrary tenth (map order).
		for key, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max*9/10 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = cached{claims: claims, until: until}
}

// sync forgets every entry when the key set has changed since they were cached. c.mu is held.
func (c *tokenCache) sync(gen uint64) {
	if gen != c.gen {
		clear(c.m)
		c.gen = gen
	}
}

func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
