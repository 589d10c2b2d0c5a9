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

// The review's finding 3: an access token minted from a refresh token long after the sign-in
// must not turn TOTP on (and lock the owner out) or change the email. Both take the current
// password: missing is 400, wrong is 403 and counts toward the throttle like a failed login; and
// turning TOTP on ends the user's other sessions and refresh families, as a password change does,
// keeping the caller's own (named by its token's sid).
func TestStaleTokenCannotTurnOnASecondFactor(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0", "--trusted-proxies", "127.0.0.1")
	const pw = "correct-horse-9"
	signup(t, p.URL, "alice", pw)
	// The owner's browser, and two API sign-ins: one whose refresh token the attacker stole.
	owner := newRP(t, p.URL, "none", "", "http://127.0.0.1:9/none")
	if pg := owner.signIn(owner.get(p.URL+"/account"), "alice", pw); pg.status != 200 || pg.url.Path != "/account" {
		t.Fatalf("the owner's browser: %d %s", pg.status, pg.url)
	}
	stolen := login(t, p.URL, "alice", pw)["refresh_token"].(string)
	other := login(t, p.URL, "alice", pw)["refresh_token"].(string)
	clk.Advance(72 * time.Hour)
	a := refreshGrant(t, p.URL, stolen)
	if a.status != 200 {
		t.Fatalf("the attacker's refresh: %d %s", a.status, a.body)
	}
	stale, stolenNext := a.json(t)["access_token"].(string), a.json(t)["refresh_token"].(string)
	proctest.Secret(stale, stolenNext)

	from := func(addr string) []string {
		return []string{"Authorization", "Bearer " + stale, "X-Forwarded-For", addr}
	}
	post := func(method, path, body string, hdr []string) answer {
		t.Helper()
		return do(t, method, p.URL+path, "application/json", strings.NewReader(body), hdr...)
	}
	if a := post("POST", "/account/totp", `{}`, from("192.0.2.66")); a.status != 400 || !strings.Contains(string(a.body), `current_password`) {
		t.Fatalf("enrol without the password: %d %s", a.status, a.body)
	}
	if a := post("PUT", "/account/email", `{"email":"mallory@example.com"}`, from("192.0.2.66")); a.status != 400 {
		t.Fatalf("email without the password: %d %s", a.status, a.body)
	}
	if a := post("PUT", "/account/email", `{"email":"mallory@example.com","current_password":"guess-0-horse"}`, from("192.0.2.66")); a.status != 403 ||
		!strings.Contains(string(a.body), "Current password is not right") {
		t.Fatalf("email with a wrong password: %d %s", a.status, a.body)
	}
	for i := range 4 {
		if a := post("POST", "/account/totp", `{"current_password":"guess-`+string(rune('1'+i))+`-horse"}`, from("192.0.2.66")); a.status != 403 {
			t.Fatalf("enrol with wrong password %d: %d %s", i, a.status, a.body)
		}
	}
	// Five wrong passwords from one address lock it out of the account, the right one included.
	if a := post("POST", "/account/totp", `{"current_password":"`+pw+`"}`, from("192.0.2.66")); a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("the right password after five wrong ones: %d %s", a.status, a.body)
	}
	ownerLogin := login(t, p.URL, "alice", pw) // the owner elsewhere: not locked out
	ownerTok, ownerRefresh := ownerLogin["access_token"].(string), ownerLogin["refresh_token"].(string)
	if m := do(t, "GET", p.URL+"/userinfo", "", nil, "Authorization", "Bearer "+ownerTok).json(t); m["email"] != nil {
		t.Fatalf("a refused email change changed the email: %v", m)
	}

	// The owner turns TOTP on with the password; every other session and family ends.
	a = bearerJSON(t, "POST", p.URL+"/account/totp", ownerTok, `{"current_password":"`+pw+`"}`)
	if a.status != 200 {
		t.Fatalf("the owner's enrolment: %d %s", a.status, a.body)
	}
	secret := a.json(t)["secret"].(string)
	proctest.Secret(secret)
	code, _ := totp.GenerateCode(secret, clk.Now())
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", ownerTok, `{"code":"`+code+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	for name, rt := range map[string]string{"the stolen family": stolenNext, "another API sign-in": other} {
		if a := refreshGrant(t, p.URL, rt); a.status != 400 {
			t.Errorf("%s refreshes after TOTP was turned on: %d %s", name, a.status, a.body)
		}
	}
	// The family the owner confirmed from (its access token's sid) stays.
	if a := refreshGrant(t, p.URL, ownerRefresh); a.status != 200 {
		t.Fatalf("the confirming sign-in's own family: %d %s", a.status, a.body)
	}
	if pg := owner.get(p.URL + "/account"); pg.url.Path != "/login" {
		t.Fatalf("the browser signed in with the password alone still opens the account: %d %s", pg.status, pg.url)
	}
}

// The review's finding 5: 50 password-only sign-ins of a TOTP user (each left waiting for its
// code) do not push out the owner's browser session: pre-sessions have their own small bound.
func TestHalfFinishedSignInsKeepTheOwnersSession(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0")
	const pw = "correct-horse-9"
	signup(t, p.URL, "alice", pw)
	tok := login(t, p.URL, "alice", pw)["access_token"].(string)
	secret := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"`+pw+`"}`).json(t)["secret"].(string)
	proctest.Secret(secret)
	code, _ := totp.GenerateCode(secret, clk.Now())
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	clk.Advance(30 * time.Second)
	owner := newRP(t, p.URL, "none", "", "http://127.0.0.1:9/none")
	pg := owner.signIn(owner.get(p.URL+"/account"), "alice", pw)
	code, _ = totp.GenerateCode(secret, clk.Now())
	if pg = owner.submit(pg, "otp", code); pg.status != 200 || pg.url.Path != "/account" {
		t.Fatalf("the owner's two-step sign-in: %d %s %s", pg.status, pg.url, pg.body)
	}
	for i := range 50 {
		clk.Advance(time.Second) // each later than the owner's, as they would be
		if status, body := browserLogin(t, p.URL, "alice", pw); status != http.StatusOK || !strings.Contains(body, `name="otp"`) {
			t.Fatalf("password-only sign-in %d: %d %s", i, status, body)
		}
	}
	if pg := owner.get(p.URL + "/account"); pg.status != 200 || pg.url.Path != "/account" {
		t.Fatalf("the owner's session after 50 half-finished sign-ins: %d %s", pg.status, pg.url)
	}
}
