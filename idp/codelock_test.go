package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"jwtidp/shared/clock"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// browserOTPLogin is the browser's two-step sign-in from address from (X-Forwarded-For; the
// IdP trusts 127.0.0.1 as its proxy) with the cookies of c: the password step, then the code
// step. It returns the code step's answer (redirects not followed).
func browserOTPLogin(t *testing.T, c *http.Client, base, user, pw, code, from string) answer {
	t.Helper()
	send := func(method, u string, form url.Values) answer {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("X-Forwarded-For", from)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header, b}
	}
	page := send("GET", base+"/login", nil)
	m := csrfField.FindSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF field on the login page: %d %s", page.status, page.body)
	}
	step := send("POST", base+"/login", url.Values{"csrf": {string(m[1])}, "username": {user}, "password": {pw}})
	if m = csrfField.FindSubmatch(step.body); step.status != 200 || m == nil || !strings.Contains(string(step.body), `name="otp"`) {
		t.Fatalf("the password step: %d %s, want the code page", step.status, step.body)
	}
	return send("POST", base+"/login/otp", url.Values{"csrf": {string(m[1])}, "otp": {code}})
}

func newJar() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Issue 25, finding 2: with the password known, wrong one-time codes spread over many client
// addresses (each far below the per-address limit) — and, on PostgreSQL, over two replicas —
// used to go on for ever, and the right code was then accepted. Now 10 wrong codes for the
// account in 15 minutes lock its code step for 15 minutes: the right code from a fresh address
// is a 401 "One-time code required" with Retry-After, at /auth and at the browser's code step;
// the owner's browser, which holds the account's device cookie, still gets in; the lock is one
// lockout event in the audit trail; after 15 minutes the right code works again.
func TestCodeStepLockedPerAccount(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { codeStepLockScenario(t, "") })
	t.Run("postgres two replicas", func(t *testing.T) { codeStepLockScenario(t, pgtest.NewDatabase(t)) })
}

func codeStepLockScenario(t *testing.T, dbURL string) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	env := service.Env{Clock: clk}
	flags := []string{"--rate-limit", "0", "--trusted-proxies", "127.0.0.1", "--admin-token", "audit-admin"}
	var replicas []*servicetest.Instance
	if dbURL == "" {
		replicas = append(replicas, startIDPEnv(t, t.TempDir(), env, flags...))
	} else {
		replicas = append(replicas, startReplica(t, dbURL, env, flags...), startReplica(t, dbURL, env, flags...))
	}
	base := replicas[0].URL
	at := func(i int) string { return replicas[i%len(replicas)].URL }
	const pw = "correct-horse-9"
	signup(t, base, "alice", pw)
	tok := login(t, base, "alice", pw)["access_token"].(string)
	a := bearerJSON(t, "POST", base+"/account/totp", tok, `{"current_password":"`+pw+`"}`)
	if a.status != 200 {
		t.Fatalf("enrol: %d %s", a.status, a.body)
	}
	secret := a.json(t)["secret"].(string)
	proctest.Secret(secret)
	code := func() string {
		c, err := totp.GenerateCode(secret, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if a := bearerJSON(t, "POST", base+"/account/totp/confirm", tok, `{"code":"`+code()+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	sub := payload(t, tok)["sub"].(string)

	// The owner signs in from their browser, which keeps the account's device cookie.
	clk.Advance(30 * time.Second)
	owner := newJar()
	if a := browserOTPLogin(t, owner, base, "alice", pw, code(), "203.0.113.7"); a.status != http.StatusSeeOther {
		t.Fatalf("the owner's first browser sign-in: %d %s", a.status, a.body)
	}

	// The attacker: 10 wrong codes, each from an address of its own (IPv4, and IPv6 in /64s of
	// their own), alternating between the replicas.
	refused := func(what string, a answer) {
		t.Helper()
		if a.status != 401 || !strings.Contains(string(a.body), "One-time code required") {
			t.Fatalf("%s: %d %s, want 401 One-time code required", what, a.status, a.body)
		}
	}
	for i := range 10 {
		from := fmt.Sprintf("198.51.100.%d", i+1)
		if i%2 == 1 {
			from = fmt.Sprintf("2001:db8:%x::1", i)
		}
		refused(fmt.Sprintf("wrong code %d from %s", i+1, from), authOTP(t, http.DefaultClient, at(i), "alice", pw, "000000", from))
	}

	// The right code, from an address never seen, on either replica: refused as a wrong code,
	// with how long to wait.
	clk.Advance(30 * time.Second)
	for i := range replicas {
		a := authOTP(t, http.DefaultClient, at(i), "alice", pw, code(), fmt.Sprintf("192.0.2.%d", 200+i))
		refused("the right code after 10 wrong ones", a)
		if wait, _ := strconv.Atoi(a.header.Get("Retry-After")); wait <= 0 || wait > 15*60 {
			t.Fatalf("the right code while the code step is locked: Retry-After %q, want up to 900 s", a.header.Get("Retry-After"))
		}
	}
	// The browser's code step refuses likewise, for a browser without the device cookie.
	a = browserOTPLogin(t, newJar(), at(1), "alice", pw, code(), "192.0.2.210")
	if a.status != 401 || a.header.Get("Retry-After") == "" || !strings.Contains(string(a.body), `name="otp"`) {
		t.Fatalf("the browser's code step while locked: %d (Retry-After %q) %s", a.status, a.header.Get("Retry-After"), a.body)
	}

	// The owner's browser, with its device cookie, still gets in (from anywhere).
	if a := browserOTPLogin(t, owner, at(1), "alice", pw, code(), "192.0.2.220"); a.status != http.StatusSeeOther {
		t.Fatalf("the owner's browser with its device cookie while the code step is locked: %d %s", a.status, a.body)
	}

	// One lockout event, saying it is the code step; each refused code its second-factor failure.
	lockouts, raw := auditEvents(t, base, "type=lockout&user="+sub)
	if len(lockouts) != 1 || !strings.Contains(lockouts[0].Detail, "code step") || lockouts[0].Outcome != "failure" {
		t.Fatalf("lockout events: %s, want one for the code step", raw)
	}
	if failures, raw := auditEvents(t, base, "type=second_factor_failure&user="+sub); len(failures) != 10+len(replicas)+1 {
		t.Fatalf("second-factor failures: %d, want %d (every refused code)\n%s", len(failures), 10+len(replicas)+1, raw)
	}

	// 15 minutes later the lock is over: the right code from a fresh address works, and
	// counting starts over.
	clk.Advance(15 * time.Minute)
	if a := authOTP(t, http.DefaultClient, at(1), "alice", pw, code(), "192.0.2.230"); a.status != 200 {
		t.Fatalf("the right code after the lock: %d %s", a.status, a.body)
	}
	refused("a wrong code after the lock", authOTP(t, http.DefaultClient, base, "alice", pw, "000000", "192.0.2.231"))
	clk.Advance(30 * time.Second)
	if a := authOTP(t, http.DefaultClient, base, "alice", pw, code(), "192.0.2.232"); a.status != 200 {
		t.Fatalf("the right code after one new wrong one: %d %s", a.status, a.body)
	}
}
