package jwtauth

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// Generational is a KeySource that can tell when its key set changed: the verified-token cache
// then forgets everything, so no cached token outlives the key that signed it.
type Generational interface {
	Generation() uint64
}

// tokenCache remembers verified tokens, so that a token presented again is not parsed and
// RSA-verified again: that verification costs about 50 µs, several times the rest of a request.
// Entries expire with the token's exp (plus leeway), are all dropped when the key set changes,
// and the table never holds more than max entries.
//
// The table is keyed by a seeded 64-bit hash of the whole token (hash/maphash: its seed is
// random per cache, so no one can aim tokens at one slot) and each entry keeps the token it
// verified: a hit is a token equal to it, byte for byte, so two tokens sharing a hash are two
// misses, never one token answered with another's claims. Hashing about 800 bytes this way
// costs a fraction of SHA-256 (the key before 8 December), on every forward-auth request. Keeping
// the token costs its bytes: at most max × MaxTokenBytes, about 8 MB for 10,000 entries of the
// IdP's ~800-byte tokens, and only tokens whose signature verified are kept.
type tokenCache struct {
	max  int
	seed maphash.Seed
	mu   sync.Mutex
	gen  uint64
	m    map[uint64]cached
	// hash, when set (by tests), replaces the seeded hash.
	hash func(string) uint64
}

type cached struct {
	raw    string // the token verified
	claims *Claims
	until  time.Time
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{max: max, seed: maphash.MakeSeed(), m: make(map[uint64]cached, max)}
}

// key is the cache's key of the token raw, hashed where the string lies (no copy).
func (c *tokenCache) key(raw string) uint64 {
	if c.hash != nil {
		return c.hash(raw)
	}
	return maphash.String(c.seed, raw)
}

func (c *tokenCache) get(raw string, gen uint64, now time.Time) (*Claims, bool) {
	if c == nil {
		return nil, false
	}
	k := c.key(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sync(gen)
	e, ok := c.m[k]
	if !ok || e.raw != raw {
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
	k := c.key(raw)
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
	// A token sharing the key with another replaces it: the later one is the one in use. The
	// token is copied: raw may lie in a larger string (a Cookie header of many kilobytes) that
	// the entry would otherwise keep; a put follows a signature check, so the copy is cheap.
	c.m[k] = cached{raw: strings.Clone(raw), claims: claims, until: until}
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
