package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func authAs(t *testing.T, base, user, pw string, hdr ...string) answer {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	return do(t, "POST", base+"/auth", "application/json", bytes.NewReader(b), hdr...)
}

func TestBruteForceThrottling(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--throttle-wait", "1s", "--throttle-max-wait", "2s", "--rate-limit", "0")
	signup(t, p.URL, "Alice", "correct-horse-9")
	for i := range 5 {
		user := []string{"alice", "ALICE", "Alice", "aLiCe", "alice"}[i] // one counter for every spelling
		if a := authAs(t, p.URL, user, "wrong-password-x"); a.status != 401 {
			t.Fatalf("failure %d: %d", i+1, a.status)
		}
	}
	before := metric(t, p.URL, "idp_password_hash_slot_wait_seconds_count")
	a := authAs(t, p.URL, "alice", "correct-horse-9")
	if a.status != 429 || a.header.Get("Retry-After") != "1" || a.json(t)["Status"] != "Error" {
		t.Fatalf("the correct password during a lockout: %d %v %s", a.status, a.header, a.body)
	}
	if metric(t, p.URL, "idp_password_hash_slot_wait_seconds_count") != before {
		t.Fatal("a throttled attempt spent a password hash")
	}
	// The browser login shares the lockout.
	if a := do(t, "POST", p.URL+"/login", "application/x-www-form-urlencoded", strings.NewReader("username=alice")); a.status == 200 {
		t.Fatalf("browser login during lockout: %d", a.status)
	}
	time.Sleep(1100 * time.Millisecond)
	login(t, p.URL, "alice", "correct-horse-9") // the wait is over; the success resets the count
	for range 4 {
		authAs(t, p.URL, "alice", "wrong-password-x")
	}
	login(t, p.URL, "alice", "correct-horse-9")

	// An unknown username is throttled exactly like a real one: no enumeration through 429s.
	for range 5 {
		authAs(t, p.URL, "no-such-user", "wrong-password-x")
	}
	if a := authAs(t, p.URL, "no-such-user", "wrong-password-x"); a.status != 429 {
		t.Fatalf("unknown user after 5 failures: %d", a.status)
	}
}

func TestPasswordChangeThrottled(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--rate-limit", "0")
	signup(t, p.URL, "bert", "correct-horse-9")
	tok := "Bearer " + login(t, p.URL, "bert", "correct-horse-9")["access_token"].(string)
	change := func(cur string) int {
		return do(t, "POST", p.URL+"/account/password", "application/json",
			strings.NewReader(`{"current_password":"`+cur+`","new_password":"brand-new-pass-7"}`), "Authorization", tok).status
	}
	for range 5 {
		if s := change("wrong-password-x"); s != 401 {
			t.Fatalf("wrong current password: %d", s)
		}
	}
	if s := change("correct-horse-9"); s != 429 {
		t.Fatalf("password change during lockout: %d, want 429", s)
	}
	if a := authAs(t, p.URL, "bert", "correct-horse-9"); a.status != 429 {
		t.Fatalf("the lockout covers /auth too: %d", a.status)
	}
}

func TestPerClientRateLimit(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--rate-limit", "1", "--rate-burst", "3", "--trusted-proxies", "127.0.0.1")
	send := func(xff string) answer {
		return do(t, "POST", p.URL+"/signup", "application/json", strings.NewReader(`{}`), "X-Forwarded-For", xff)
	}
	for i := range 3 {
		if a := send("198.51.100.1"); a.status != 400 {
			t.Fatalf("request %d within the burst: %d", i+1, a.status)
		}
	}
	a := send("198.51.100.1")
	if a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("over the burst: %d %v", a.status, a.header)
	}
	// Through the trusted proxy, another client has its own bucket.
	if a := send("198.51.100.2"); a.status != 400 {
		t.Fatalf("another client behind the proxy: %d", a.status)
	}
	// /token answers in its RFC's shape.
	a = do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=refresh_token&refresh_token=x"), "X-Forwarded-For", "198.51.100.1")
	if a.status != 429 || a.json(t)["error"] == nil {
		t.Fatalf("/token over the limit: %d %s", a.status, a.body)
	}
}

func TestForwardedForIgnoredFromUntrustedPeers(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--rate-limit", "1", "--rate-burst", "2")
	codes := []int{}
	for i := range 4 {
		// A client inventing a new X-Forwarded-For each time does not get a new bucket.
		a := do(t, "POST", p.URL+"/signup", "application/json", strings.NewReader(`{}`), "X-Forwarded-For", "203.0.113."+strconv.Itoa(i))
		codes = append(codes, a.status)
	}
	if codes[2] != http.StatusTooManyRequests {
		t.Fatalf("answers %v: a forged X-Forwarded-For escaped the limit", codes)
	}
}
