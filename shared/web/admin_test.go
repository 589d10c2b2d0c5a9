package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

type adminTest struct {
	t       *testing.T
	h       http.Handler
	reached int
}

func newAdminTest(t *testing.T, guard func(http.Handler) http.Handler) *adminTest {
	a := &adminTest{t: t}
	a.h = guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.reached++ }))
	return a
}

// do sends a request from peer with token and returns the response.
func (a *adminTest) do(peer, xff, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/admin/backup", nil)
	r.RemoteAddr = peer
	if xff != "" {
		r.Header.Set("X-Forwarded-For", xff)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	return w
}

func (a *adminTest) expect(peer, token string, want int) *httptest.ResponseRecorder {
	a.t.Helper()
	w := a.do(peer, "", token)
	if w.Code != want {
		a.t.Fatalf("%s with %q: %d %s, want %d", peer, token, w.Code, w.Body, want)
	}
	return w
}

func TestAdminGuardLimitsFailures(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newAdminTest(t, NewAdminGuard("secret", ClientAddrs{}, func() time.Time { return now }))
	const attacker, admin = "203.0.113.9:1000", "198.51.100.1:2000"

	for range 5 {
		a.expect(attacker, "guess", http.StatusUnauthorized)
	}
	// The sixth attempt is refused whatever it holds, the right token included.
	for _, token := range []string{"guess", "secret", ""} {
		w := a.expect(attacker, token, http.StatusTooManyRequests)
		if got := w.Header().Get("Retry-After"); got != "12" {
			t.Fatalf("Retry-After %q, want 12", got)
		}
		var env Envelope
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Status != "Error" || env.Result == "" {
			t.Fatalf("body %s: %v", w.Body, err)
		}
	}
	a.expect("[::ffff:203.0.113.9]:3000", "secret", http.StatusTooManyRequests) // the same client, written mapped
	if a.reached != 0 {
		t.Fatalf("the handler ran %d times", a.reached)
	}

	// Another client with the right token is not held back by the attacker's failures.
	a.expect(admin, "secret", http.StatusOK)

	// One attempt more every 12 seconds.
	now = now.Add(12 * time.Second)
	a.expect(attacker, "guess", http.StatusUnauthorized)
	a.expect(attacker, "guess", http.StatusTooManyRequests)
	now = now.Add(11 * time.Second)
	if got := a.expect(attacker, "secret", http.StatusTooManyRequests).Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q, want 1", got)
	}
	now = now.Add(time.Second)
	a.expect(attacker, "secret", http.StatusOK)
	if a.reached != 2 {
		t.Fatalf("the handler ran %d times, want 2", a.reached)
	}
}

// Right tokens cost nothing: a busy admin client keeps all its failures for typing mistakes.
func TestAdminGuardSuccessIsFree(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newAdminTest(t, NewAdminGuard("secret", ClientAddrs{}, func() time.Time { return now }))
	const admin = "198.51.100.1:2000"
	for range 100 {
		a.expect(admin, "secret", http.StatusOK)
	}
	for range 5 {
		a.expect(admin, "typo", http.StatusUnauthorized)
	}
	a.expect(admin, "secret", http.StatusTooManyRequests)
}

// Clients are told apart as the rate limiter does: behind a trusted proxy by the forwarded
// address, and an IPv6 client by its /64.
func TestAdminGuardKeysByClient(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	trusted, _ := ParsePrefixes("10.0.0.0/8")
	a := newAdminTest(t, NewAdminGuard("secret", ClientAddrs{Trusted: trusted}, func() time.Time { return now }))
	const proxy = "10.0.0.1:443"
	for i := range 5 {
		// A fresh address from the same /64 for every guess.
		if w := a.do(proxy, "2001:db8:1:2::"+string(rune('a'+i)), "guess"); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i+1, w.Code)
		}
	}
	if w := a.do(proxy, "2001:db8:1:2::ff", "secret"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the same /64: %d", w.Code)
	}
	if w := a.do(proxy, "2001:db8:1:3::1", "secret"); w.Code != http.StatusOK {
		t.Fatalf("the next /64: %d", w.Code)
	}
	if w := a.do(proxy, "192.0.2.7", "secret"); w.Code != http.StatusOK {
		t.Fatalf("another client behind the proxy: %d", w.Code)
	}
}

func TestAdminGuardNoToken(t *testing.T) {
	for _, guard := range []func(http.Handler) http.Handler{NewAdminGuard("", ClientAddrs{}, time.Now), RequireAdmin("")} {
		a := newAdminTest(t, guard)
		for range 10 {
			a.expect("192.0.2.1:1", "", http.StatusNotFound)
		}
	}
}

// RequireAdmin keeps its behaviour: no limit on guesses.
func TestRequireAdminUnlimited(t *testing.T) {
	a := newAdminTest(t, RequireAdmin("secret"))
	for range 50 {
		if w := a.expect("192.0.2.1:1", "guess", http.StatusUnauthorized); w.Header().Get("WWW-Authenticate") != `Bearer realm="admin"` {
			t.Fatal("no WWW-Authenticate")
		}
	}
	a.expect("192.0.2.1:1", "secret", http.StatusOK)
}

// Attempts in flight hold their tokens, so concurrent guesses cannot overdraw the bucket.
func TestRateLimiterAttemptInFlight(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRateLimiter(1, 3, ClientAddrs{}, func() time.Time { return now })
	var held []func(bool)
	for i := range 3 {
		ok, _, settle := l.attempt("a")
		if !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		held = append(held, settle)
	}
	if ok, wait, _ := l.attempt("a"); ok || wait != time.Second {
		t.Fatalf("a fourth attempt in flight: %v, wait %s", ok, wait)
	}
	held[0](false) // released
	ok, _, settle := l.attempt("a")
	if !ok {
		t.Fatal("a released token was not available")
	}
	settle(true)
	held[1](true)
	held[2](true)
	if ok, _, _ := l.attempt("a"); ok {
		t.Fatal("three spent of three, yet allowed")
	}
	if ok, _, _ := l.attempt("b"); !ok {
		t.Fatal("another client was refused")
	}
}
