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

	"jwtidp/shared/clock"
	"jwtidp/shared/service"
)

func authAs(t *testing.T, base, user, pw string, hdr ...string) answer {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	return do(t, "POST", base+"/auth", "application/json", bytes.NewReader(b), hdr...)
}

func TestBruteForceThrottling(t *testing.T) {
	clk := clock.NewFake(time.Now())
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--throttle-wait", "1s", "--throttle-max-wait", "2s", "--rate-limit", "0")
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
	// The lockout runs out on the IdP's clock, not the test's: a moment short of it, it holds.
	clk.Advance(999 * time.Millisecond)
	if a := authAs(t, p.URL, "alice", "correct-horse-9"); a.status != 429 {
		t.Fatalf("the correct password 1ms before the lockout ends: %d", a.status)
	}
	clk.Advance(time.Millisecond)
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
	// The access-log line is written after the answer has gone out: wait for that line (the
	// login and audit lines name the client too, before it).
	access := regexp.MustCompile(`msg=request .*route="POST /auth" status=401 .*client=198\.51\.100\.23`)
	if !p.WaitLog(5*time.Second, access.MatchString) ||
		!regexp.MustCompile(`msg=login .*client=198\.51\.100\.23`).MatchString(p.Log()) {
		t.Fatalf("the logs do not name the client behind the trusted proxy:\n%s", p.Log())
	}
	q := startIDP(t, t.TempDir())
	authAs(t, q.URL, "nobody-here", "wrong-password-x", "X-Forwarded-For", "198.51.100.23")
	if !q.WaitLog(5*time.Second, func(log string) bool { return strings.Contains(log, `route="POST /auth"`) }) {
		t.Fatalf("no access-log line of the login:\n%s", q.Log())
	}
	if strings.Contains(q.Log(), "198.51.100.23") {
		t.Fatal("an untrusted peer's X-Forwarded-For reached the logs as the client")
	}
}

// Finding 2 of the security review: five over-long passwords (not even hashed) locked any
// account, renewably forever. Now they are a 400 that counts nothing; real failures lock out
// the client that made them, not the account; and a client holding the account's device cookie
// (it logged in before) is not locked out even from the attacker's own address.
func TestLockoutIsNotAWeapon(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--rate-limit", "0", "--trusted-proxies", "127.0.0.1")
	signup(t, p.URL, "victim", "correct-horse-9")
	long := strings.Repeat("x", 1025)
	for i := range 10 {
		if a := authAs(t, p.URL, "victim", long, "X-Forwarded-For", "203.0.113.7"); a.status != 400 {
			t.Fatalf("over-long password %d: %d %s, want 400", i, a.status, a.body)
		}
	}
	if a := authAs(t, p.URL, "victim", "correct-horse-9", "X-Forwarded-For", "203.0.113.7"); a.status != 200 {
		t.Fatalf("after over-long passwords: %d, want the login to work", a.status)
	}
	// The owner logs in once from the attacker's address (a shared NAT) and keeps the device cookie.
	jar, _ := cookiejar.New(nil)
	owner := &http.Client{Jar: jar}
	ownerLogin := func() int {
		req, _ := http.NewRequest("POST", p.URL+"/auth", strings.NewReader(`{"username":"victim","password":"correct-horse-9"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := owner.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ownerLogin(); code != 200 {
		t.Fatalf("owner's first login: %d", code)
	}
	for range 5 {
		authAs(t, p.URL, "victim", "wrong-password-x", "X-Forwarded-For", "203.0.113.7")
	}
	if a := authAs(t, p.URL, "victim", "correct-horse-9", "X-Forwarded-For", "203.0.113.7"); a.status != 429 {
		t.Fatalf("the attacker's client after 5 failures: %d, want 429", a.status)
	}
	if a := authAs(t, p.URL, "victim", "correct-horse-9", "X-Forwarded-For", "198.51.100.1"); a.status != 200 {
		t.Fatalf("the owner from another address: %d, want 200", a.status)
	}
	if code := ownerLogin(); code != 200 {
		t.Fatalf("the owner with the device cookie, from the attacker's address: %d, want 200", code)
	}
}

// Finding 3: /token has its own, looser limit, so a server refreshing for many users from one
// address is not held to the password endpoints' 10 a second, and a client that used up its
// login budget can still refresh.
func TestTokenEndpointHasItsOwnLimit(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--rate-limit", "1", "--rate-burst", "1", "--token-rate-limit", "1", "--token-rate-burst", "3")
	do(t, "POST", p.URL+"/signup", "application/json", strings.NewReader(`{}`))
	if a := do(t, "POST", p.URL+"/signup", "application/json", strings.NewReader(`{}`)); a.status != 429 {
		t.Fatalf("signup over its limit: %d", a.status)
	}
	for i := range 3 {
		a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=refresh_token&refresh_token=x"))
		if a.status != 400 {
			t.Fatalf("/token request %d within its own burst: %d %s", i+1, a.status, a.body)
		}
	}
	if a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=refresh_token&refresh_token=x")); a.status != 429 || a.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("/token over its own burst: %d %s, want 429 in RFC 6749's shape", a.status, a.body)
	}
}

// Finding 4: names match exactly, duplicates and invalid UTF-8 are refused, usernames are
// ASCII (the Kelvin sign K does not log in as k), and a form over 64 KiB is 413.
func TestInputStrictness(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--rate-limit", "0")
	signup(t, p.URL, "kate", "correct-horse-9")
	for _, body := range []string{
		`{"USERNAME":"kate","password":"correct-horse-9"}`,
		`{"username":"kate","username":"kate","password":"correct-horse-9"}`,
		"{\"username\":\"kate\xff\",\"password\":\"correct-horse-9\"}",
		"{\"username\":\"\u212Aate\",\"password\":\"correct-horse-9\"}",
	} {
		if a := do(t, "POST", p.URL+"/auth", "application/json", strings.NewReader(body)); a.status != 400 {
			t.Errorf("/auth %q: %d %s, want 400", body, a.status, a.body)
		}
	}
	form := "grant_type=refresh_token&refresh_token=" + strings.Repeat("x", 70<<10)
	if a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(form)); a.status != 413 {
		t.Errorf("/token with a 70 KiB form: %d, want 413", a.status)
	}
	if a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=refresh_token&grant_type=refresh_token&refresh_token=x")); a.status != 400 {
		t.Errorf("/token with a repeated parameter: %d, want 400", a.status)
	}
}
