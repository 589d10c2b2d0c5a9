package web

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"jwtidp/shared/apperr"
	"jwtidp/shared/clientip"

	"golang.org/x/time/rate"
)

// ClientAddrs tells who a request's client is: the connection's peer, or, when the peer is a
// trusted proxy, the nearest X-Forwarded-For hop that is not itself trusted. Nothing else a
// client sends is believed.
type ClientAddrs struct {
	Trusted []netip.Prefix
}

// ParsePrefixes parses a comma-separated list of addresses and CIDR prefixes.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (c ClientAddrs) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(c.Trusted, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) })
}

// FromTrusted reports whether r comes straight from a trusted proxy, whose X-Forwarded-*
// headers may be believed.
func (c ClientAddrs) FromTrusted(r *http.Request) bool {
	_, peer, err := peerOf(r)
	return err == nil && c.trusted(peer)
}

// peerOf is the address r came from (its connection's), as written and parsed.
func peerOf(r *http.Request) (string, netip.Addr, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	return host, peer, err
}

// Of returns the client address of r.
func (c ClientAddrs) Of(r *http.Request) string {
	host, peer, err := peerOf(r)
	if err != nil || !c.trusted(peer) {
		return host
	}
	// The hops are every X-Forwarded-For line's comma-separated entries, in order, as if the
	// lines were joined with commas; they are read from the right, where the proxies we trust
	// appended theirs, without building the joined list (every request behind a proxy does this).
	values := r.Header["X-Forwarded-For"] // r.Header.Values, without canonicalizing the name
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for {
			comma := strings.LastIndexByte(rest, ',')
			a, err := netip.ParseAddr(strings.TrimSpace(rest[comma+1:]))
			if err != nil {
				return host // a malformed hop: trust nothing further left
			}
			if !c.trusted(a) {
				return a.Unmap().String()
			}
			if comma < 0 {
				break
			}
			rest = rest[:comma]
		}
	}
	return host
}

// ClientKey is what a client is counted by, given its address as ClientAddrs.Of returns it:
// clientip.Key — an IPv4 address (also when written IPv4-mapped) as itself, an IPv6 address by
// its /64, since one host, or one customer of an ISP, is commonly handed a whole /64 and can
// pick a fresh address from it for every request. The sign-in throttle counts by the same key.
func ClientKey(addr string) string { return clientip.Key(addr) }

// maxClients bounds the per-client limiter table.
const maxClients = 100_000

// RateLimiter is a token bucket per client (golang.org/x/time/rate), keyed by whatever string
// Allow is given; Limit keys by ClientKey. Idle entries are dropped, and the table never holds
// more than maxClients, so a flood from many addresses cannot grow it without limit.
type RateLimiter struct {
	limit   rate.Limit
	burst   int
	addrs   ClientAddrs
	now     func() time.Time
	mu      sync.Mutex
	clients map[string]*clientBucket
}

type clientBucket struct {
	lim      *rate.Limiter
	seen     time.Time
	inflight int // tokens held by attempts not yet settled
}

// NewRateLimiter allows perSecond requests a second per client with bursts of burst; a
// perSecond of 0 turns it off.
func NewRateLimiter(perSecond float64, burst int, addrs ClientAddrs, now func() time.Time) *RateLimiter {
	return &RateLimiter{limit: rate.Limit(perSecond), burst: burst, addrs: addrs, now: now, clients: map[string]*clientBucket{}}
}

// Allow reports whether client may make a request now, and if not, how long to wait.
func (l *RateLimiter) Allow(client string) (bool, time.Duration) {
	if l == nil || l.limit <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(client, now)
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// bucket returns client's bucket, made if need be, marked as seen now. l.mu must be held.
func (l *RateLimiter) bucket(client string, now time.Time) *clientBucket {
	b := l.clients[client]
	if b == nil {
		l.sweep(now)
		b = &clientBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[client] = b
	}
	b.seen = now
	return b
}

// attempt is Allow for an event whose cost is known only afterwards, such as a guess that may
// be right: when client has a token to spare it is held, and settle(true) spends it while
// settle(false) releases it. Held tokens count as spent until settled, so concurrent attempts
// cannot overdraw the bucket. When there is none, ok is false with the wait.
func (l *RateLimiter) attempt(client string) (ok bool, wait time.Duration, settle func(spend bool)) {
	if l == nil || l.limit <= 0 {
		return true, 0, func(bool) {}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(client, now)
	if spare := b.lim.TokensAt(now) - float64(b.inflight); spare < 1 {
		return false, time.Duration((1 - spare) / float64(l.limit) * float64(time.Second)), nil
	}
	b.inflight++
	return true, 0, func(spend bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		b.inflight--
		if spend {
			// ReserveN, unlike AllowN, takes the token even if the clock has moved oddly, so a
			// failure is never left uncounted. (Should the table have dropped b meanwhile, the
			// client starts afresh, as any dropped client does.)
			b.lim.ReserveN(l.now(), 1)
		}
	}
}

// idleAfter is how long an untouched bucket is kept: by then it has refilled anyway.
func (l *RateLimiter) idleAfter() time.Duration {
	d := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	return max(d, time.Second)
}

func (l *RateLimiter) sweep(now time.Time) {
	if len(l.clients) < maxClients {
		return
	}
	idle := l.idleAfter()
	for k, b := range l.clients {
		if now.Sub(b.seen) > idle {
			delete(l.clients, k)
		}
	}
	// Still full of active clients: drop the least recent tenth (they lose their debt, which
	// only errs on the side of letting them in).
	if len(l.clients) >= maxClients {
		stamps := make([]time.Time, 0, len(l.clients))
		for _, b := range l.clients {
			stamps = append(stamps, b.seen)
		}
		slices.SortFunc(stamps, func(a, b time.Time) int { return a.Compare(b) })
		cutoff := stamps[len(stamps)/10]
		for k, b := range l.clients {
			if !b.seen.After(cutoff) && len(l.clients) > maxClients*9/10 {
				delete(l.clients, k)
			}
		}
	}
}

// Len is the number of clients tracked.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// Limit wraps next with the per-client limit. A client over it is refused by refuse — the
// route's one refusal, which answers every error in the route's shape — with SlowDown's
// ETHROTTLED error, saying how long to wait (Retry-After).
func (l *RateLimiter) Limit(next http.Handler, refuse func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	if l == nil {
		return next // no limiter: nothing to limit
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := l.Check(r); err != nil {
			refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Check counts r against the limit, for a handler that limits only the requests that cost
// something (Limit counts every one): nil, or SlowDown's error for the route's refusal. A nil
// limiter limits nothing.
func (l *RateLimiter) Check(r *http.Request) error {
	if l == nil {
		return nil
	}
	if ok, wait := l.Allow(ClientKey(l.addrs.Of(r))); !ok {
		return SlowDown(wait)
	}
	return nil
}

// SlowDown is the limiter's refusal: ETHROTTLED, to be tried again after wait.
func SlowDown(wait time.Duration) error {
	return &apperr.Error{Code: apperr.ETHROTTLED, Message: "Too many requests; slow down", RetryAfter: wait}
}
