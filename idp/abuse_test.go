package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
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
	// The browser login shares the lockout: a well-formed form post (CSRF token and all) with
	// the correct password is refused too.
	if code, body := browserLogin(t, p.URL, "alice", "correct-horse-9"); code != 429 || !strings.Contains(body, "Too many attempts") {
		t.Fatalf("browser login during lockout: %d", code)
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

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// browserLogin posts the login form as a browser does, with the CSRF cookie and field from
// GET /login, and returns the answer's status and body (redirects not followed).
func browserLogin(t *testing.T, base, user, pw string) (int, string) {
	t.Helper()
	resp, body := browserLoginResp(t, base, user, pw)
	return resp.StatusCode, body
}

func browserLoginResp(t *testing.T, base, user, pw string) (*http.Response, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field on the login page")
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "username": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Behind a trusted proxy the access log and the login log name the real client, not the proxy;
// from anyone else, X-Forwarded-For is not believed.
func TestLogsNameTheRealClient(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--trusted-proxies", "127.0.0.1")
	authAs(t, p.URL, "nobody-here", "wrong-password-x", "X-Forwarded-For", "198.51.100.23")
	// The access-log line is written after the answer has gone out: give it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(p.Log(), "client=198.51.100.23") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(p.Log(), `route="POST /auth" status=401`) || strings.Count(p.Log(), "client=198.51.100.23") < 2 {
		t.Fatalf("the logs do not name the client behind the trusted proxy:\n%s", p.Log())
	}
	q := startIDP(t, t.TempDir())
	authAs(t, q.URL, "nobody-here", "wrong-password-x", "X-Forwarded-For", "198.51.100.23")
	for !strings.Contains(q.Log(), `route="POST /auth"`) && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(q.Log(), "198.51.100.23") {
		t.Fatal("an untrusted peer's X-Forwarded-For reached the logs as the client")
	}
}
