package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// wantMetric fails t unless /metrics shows name at want.
func wantMetric(t *testing.T, base, name string, want float64) {
	t.Helper()
	if got := metric(t, base, name); got != want {
		t.Fatalf("%s = %v, want %v", name, got, want)
	}
}

// Failed logins up to --throttle-failures lock the account for this client: each refused
// attempt after that is a lockout; wrong passwords before it are not.
func TestMetricLockouts(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--throttle-failures", "2")
	signup(t, p.URL, "locky", "correct-horse-9")
	wantMetric(t, p.URL, "idp_lockouts_total", 0)
	for i := range 2 {
		if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "locky", "password": "wrong-password-1"}); a.status != 401 {
			t.Fatalf("wrong password %d: %d %s", i+1, a.status, a.body)
		}
	}
	wantMetric(t, p.URL, "idp_lockouts_total", 0)
	for i := range 2 {
		if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "locky", "password": "correct-horse-9"}); a.status != http.StatusTooManyRequests {
			t.Fatalf("attempt %d while locked: %d %s", i+1, a.status, a.body)
		}
	}
	wantMetric(t, p.URL, "idp_lockouts_total", 2)
	if got := metric(t, p.URL, `idp_logins_total{outcome="throttled"}`); got != 2 {
		t.Fatalf("throttled logins %v", got)
	}
}

// A spent refresh token presented again is reuse (its family is revoked); an unknown token and
// the revoked family's newer token are refused without counting.
func TestMetricRefreshReuse(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "reuser", "correct-horse-9")
	r0 := login(t, p.URL, "reuser", "correct-horse-9")["refresh_token"].(string)
	a := refreshGrant(t, p.URL, r0)
	if a.status != 200 {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	r1 := a.json(t)["refresh_token"].(string)
	wantMetric(t, p.URL, "idp_refresh_reuse_total", 0)
	wantGrantError(t, refreshGrant(t, p.URL, r0), "invalid_grant")
	wantMetric(t, p.URL, "idp_refresh_reuse_total", 1)
	wantGrantError(t, refreshGrant(t, p.URL, r1), "invalid_grant")
	wantGrantError(t, refreshGrant(t, p.URL, "made-up-token"), "invalid_grant")
	wantMetric(t, p.URL, "idp_refresh_reuse_total", 1)
}

// A wrong one-time code is a second-factor failure; a login that gives none (the prompt for
// one) and a right one are not.
func TestMetricSecondFactorFailures(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0", "--trusted-proxies", "127.0.0.1")
	const pw = "correct-horse-9"
	signup(t, p.URL, "factor", pw)
	tok := login(t, p.URL, "factor", pw)["access_token"].(string)
	a := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"`+pw+`"}`)
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
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code()+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	clk.Advance(30 * time.Second)
	wantMetric(t, p.URL, "idp_second_factor_failures_total", 0)
	if a := authOTP(t, http.DefaultClient, p.URL, "factor", pw, "", "192.0.2.10"); a.status != 401 {
		t.Fatalf("no code: %d %s", a.status, a.body)
	}
	wantMetric(t, p.URL, "idp_second_factor_failures_total", 0)
	wrong := "123456"
	if wrong == code() {
		wrong = "654321"
	}
	if a := authOTP(t, http.DefaultClient, p.URL, "factor", pw, wrong, "192.0.2.10"); a.status != 401 || !strings.Contains(string(a.body), "One-time code required") {
		t.Fatalf("a wrong code: %d %s", a.status, a.body)
	}
	wantMetric(t, p.URL, "idp_second_factor_failures_total", 1)
	if a := authOTP(t, http.DefaultClient, p.URL, "factor", pw, code(), "192.0.2.10"); a.status != 200 {
		t.Fatalf("the right code: %d %s", a.status, a.body)
	}
	wantMetric(t, p.URL, "idp_second_factor_failures_total", 1)
}

// idp_sessions_active counts the live browser sessions in the store, in the background, when a
// scrape finds the last count a minute old on the IdP's clock: a sign-in shows after the next
// count (tokens alone are no browser session), and sessions that died (idle past
// --session-idle-ttl) leave it.
func TestMetricSessionsActive(t *testing.T) {
	clk := clock.NewFake(time.Now())
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0")
	signup(t, p.URL, "sessy", "correct-horse-9")
	wantMetric(t, p.URL, "idp_sessions_active", 0)
	login(t, p.URL, "sessy", "correct-horse-9") // tokens, no browser session
	for range 2 {
		if status, body := browserLogin(t, p.URL, "sessy", "correct-horse-9"); status/100 != 3 {
			t.Fatalf("browser login: %d %s", status, body)
		}
	}
	// Advance a minute at a time: the scrape after asks for a count, a later one shows it.
	eventually := func(want float64) {
		t.Helper()
		for range 50 {
			if metric(t, p.URL, "idp_sessions_active") == want {
				return
			}
			clk.Advance(time.Minute)
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("idp_sessions_active = %v, want %v", metric(t, p.URL, "idp_sessions_active"), want)
	}
	eventually(2)
	clk.Advance(2*time.Hour + time.Minute) // both idle past --session-idle-ttl's 2h
	eventually(0)
}
