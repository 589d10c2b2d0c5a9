package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRateLimiterPerClient(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRateLimiter(1, 3, ClientAddrs{}, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: %v, wait %s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another client was limited")
	}
	now = now.Add(time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("no token after a second at 1/s")
	}
}

func TestRateLimiterMemoryBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRateLimiter(10, 20, ClientAddrs{}, func() time.Time { return now })
	for i := range maxClients * 3 {
		l.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		if i%1000 == 0 {
			now = now.Add(time.Millisecond)
		}
	}
	if n := l.Len(); n > maxClients {
		t.Fatalf("%d clients tracked, bound %d", n, maxClients)
	}
}

func TestClientAddrsTrustOnlyListedProxies(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 192.168.1.5")
	if err != nil {
		t.Fatal(err)
	}
	c := ClientAddrs{Trusted: trusted}
	for _, tt := range []struct {
		peer, xff, want string
	}{
		{"203.0.113.9:1234", "1.2.3.4", "203.0.113.9"},              // an untrusted peer's header is ignored
		{"10.1.2.3:1234", "198.51.100.7", "198.51.100.7"},           // the hop the proxy added
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.7", "198.51.100.7"},  // the client cannot prepend itself in
		{"10.1.2.3:1234", "198.51.100.7, 10.9.9.9", "198.51.100.7"}, // through two trusted proxies
		{"192.168.1.5:80", "garbage", "192.168.1.5"},                // a malformed hop: the peer
		{"10.1.2.3:1234", "", "10.1.2.3"},
		{"[::ffff:10.1.2.3]:1234", "198.51.100.8", "198.51.100.8"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.peer
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := c.Of(r); got != tt.want {
			t.Errorf("peer %s, XFF %q: %s, want %s", tt.peer, tt.xff, got, tt.want)
		}
		// The peer is trusted exactly when its header was read.
		if got, want := c.FromTrusted(r), !strings.HasPrefix(tt.peer, "203."); got != want {
			t.Errorf("peer %s: FromTrusted %v, want %v", tt.peer, got, want)
		}
	}
	if _, err := ParsePrefixes("10.0.0.0/33"); err == nil {
		t.Fatal("a bad prefix was accepted")
	}
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"not-an-ip", "not-an-ip"},
		{"", ""},
	} {
		if got := ClientKey(tt.addr); got != tt.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// The limiter counts an IPv6 client by its /64, an IPv4 client by its address.
func TestRateLimiterKeysByClient(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRateLimiter(1, 2, ClientAddrs{}, func() time.Time { return now })
	h := l.Limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(w http.ResponseWriter, r *http.Request, err error) {
		Error(w, r, nil, err)
	})
	status := func(peer string) int {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, tt := range []struct {
		peer string
		want int
	}{
		{"[2001:db8:1:2::1]:1000", 200},
		{"[2001:db8:1:2:ffff::2]:1000", 200}, // the same /64: the burst of 2 is spent
		{"[2001:db8:1:2::3]:1000", 429},
		{"[2001:db8:1:3::1]:1000", 200}, // the next /64 is another client
		{"192.0.2.1:1000", 200},
		{"192.0.2.1:1001", 200},
		{"[::ffff:192.0.2.1]:1000", 429}, // the same IPv4 client, written mapped
		{"192.0.2.2:1000", 200},          // the neighbouring IPv4 address is another client
	} {
		if got := status(tt.peer); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.peer, got, tt.want)
		}
	}
}
