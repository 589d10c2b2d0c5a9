package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// authOTP is POST /auth with a one-time code, from address from (the IdP trusts 127.0.0.1 as a
// proxy, so X-Forwarded-For names the client).
func authOTP(t *testing.T, c *http.Client, base, user, pw, otp, from string) answer {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw, "otp": otp})
	req, _ := http.NewRequest("POST", base+"/auth", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", from)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	a := answer{resp.StatusCode, resp.Header, buf.Bytes()}
	if a.status == 200 {
		m := a.json(t)
		proctest.Secret(m["access_token"].(string), m["refresh_token"].(string))
	}
	return a
}

func bearerJSON(t *testing.T, method, u, token, body string) answer {
	t.Helper()
	return do(t, method, u, "application/json", strings.NewReader(body), "Authorization", "Bearer "+token)
}

// TOTP end to end, with codes computed by the test (pquerna/otp) on the IdP's fake clock: enrol,
// confirm, /auth without a code, with a wrong one, with the right one (amr says otp and mfa),
// the same code again, a recovery code twice, throttling of wrong codes that does not lock out
// the owner's device, disable, and the admin's reset.
func TestTOTP(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0", "--trusted-proxies", "127.0.0.1", "--admin-token", "totp-admin")
	const pw = "correct-horse-9"
	signup(t, p.URL, "alice", pw)
	plain := http.DefaultClient
	tok := login(t, p.URL, "alice", pw)["access_token"].(string)
	if c := payload(t, tok); !slices.Equal(toStrings(c["amr"]), []string{"pwd"}) {
		t.Fatalf("amr before TOTP: %v", c["amr"])
	}

	a := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"`+pw+`"}`)
	if a.status != 200 {
		t.Fatalf("enrol: %d %s", a.status, a.body)
	}
	secret, uri := a.json(t)["secret"].(string), a.json(t)["otpauth_uri"].(string)
	proctest.Secret(secret)
	if u, err := url.Parse(uri); err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != secret ||
		u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" || !strings.Contains(u.Path, "alice") {
		t.Fatalf("otpauth URI %q", uri)
	}
	code := func() string {
		c, err := totp.GenerateCode(secret, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Not active until confirmed.
	if a := authOTP(t, plain, p.URL, "alice", pw, "", "192.0.2.10"); a.status != 200 {
		t.Fatalf("login before confirming: %d %s", a.status, a.body)
	}
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"000000"}`); a.status != 401 {
		t.Fatalf("confirm with a wrong code: %d %s", a.status, a.body)
	}
	a = bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code()+`"}`)
	var rc struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	json.Unmarshal(a.body, &rc)
	if a.status != 200 || len(rc.RecoveryCodes) != 10 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	proctest.Secret(rc.RecoveryCodes...)
	if a := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"`+pw+`"}`); a.status != 409 {
		t.Fatalf("enrol again while enabled: %d %s", a.status, a.body)
	}

	required := func(name string, a answer) {
		t.Helper()
		if a.status != 401 || !strings.Contains(string(a.body), "One-time code required") {
			t.Fatalf("%s: %d %s", name, a.status, a.body)
		}
	}
	required("no code", authOTP(t, plain, p.URL, "alice", pw, "", "192.0.2.10"))
	required("a wrong code", authOTP(t, plain, p.URL, "alice", pw, "123456", "192.0.2.10"))
	required("the code that confirmed, again", authOTP(t, plain, p.URL, "alice", pw, code(), "192.0.2.10"))
	if a := authOTP(t, plain, p.URL, "alice", "wrong-password-1", code(), "192.0.2.10"); a.status != 401 || !strings.Contains(string(a.body), "Invalid credentials") {
		t.Fatalf("a wrong password says nothing of the code: %d %s", a.status, a.body)
	}
	clk.Advance(30 * time.Second)
	jar, _ := cookiejar.New(nil)
	owner := &http.Client{Jar: jar}
	c := code()
	a = authOTP(t, owner, p.URL, "alice", pw, c, "203.0.113.7")
	if a.status != 200 {
		t.Fatalf("the right code: %d %s", a.status, a.body)
	}
	if claims := payload(t, a.json(t)["access_token"].(string)); !slices.Equal(toStrings(claims["amr"]), []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("amr with a code: %v", claims["amr"])
	}
	required("the same code replayed", authOTP(t, plain, p.URL, "alice", pw, c, "192.0.2.10"))
	// One step of skew either way; two steps back is too old.
	clk.Advance(30 * time.Second)
	next, _ := totp.GenerateCode(secret, clk.Now().Add(30*time.Second))
	if a := authOTP(t, plain, p.URL, "alice", pw, next, "192.0.2.10"); a.status != 200 {
		t.Fatalf("a code one step ahead: %d %s", a.status, a.body)
	}
	clk.Advance(90 * time.Second)
	old, _ := totp.GenerateCode(secret, clk.Now().Add(-60*time.Second))
	required("a code two steps old", authOTP(t, plain, p.URL, "alice", pw, old, "192.0.2.10"))

	// A recovery code works once, with or without its dash, in any letter case.
	r0 := strings.ToUpper(strings.ReplaceAll(rc.RecoveryCodes[0], "-", ""))
	if a := authOTP(t, plain, p.URL, "alice", pw, r0, "192.0.2.10"); a.status != 200 {
		t.Fatalf("a recovery code: %d %s", a.status, a.body)
	}
	required("the recovery code again", authOTP(t, plain, p.URL, "alice", pw, rc.RecoveryCodes[0], "192.0.2.10"))

	// Wrong codes from one client lock that client's second step, not the owner's device.
	for range 5 {
		authOTP(t, plain, p.URL, "alice", pw, "000000", "203.0.113.7")
	}
	clk.Advance(30 * time.Second)
	if a := authOTP(t, plain, p.URL, "alice", pw, code(), "203.0.113.7"); a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("after 5 wrong codes, the right one from that client: %d %s", a.status, a.body)
	}
	if a := authOTP(t, owner, p.URL, "alice", pw, code(), "203.0.113.7"); a.status != 200 {
		t.Fatalf("the owner's device from the same address: %d %s", a.status, a.body)
	}

	// Disable needs the password and a code.
	clk.Advance(30 * time.Second)
	if a := bearerJSON(t, "DELETE", p.URL+"/account/totp", tok, `{"password":"wrong-password-1","code":"`+code()+`"}`); a.status != 401 {
		t.Fatalf("disable with a wrong password: %d %s", a.status, a.body)
	}
	if a := bearerJSON(t, "DELETE", p.URL+"/account/totp", tok, `{"password":"`+pw+`","code":"`+rc.RecoveryCodes[1]+`"}`); a.status != 204 {
		t.Fatalf("disable: %d %s", a.status, a.body)
	}
	if a := authOTP(t, plain, p.URL, "alice", pw, "", "192.0.2.10"); a.status != 200 {
		t.Fatalf("login after disabling: %d %s", a.status, a.body)
	}

	// The admin's reset: TOTP on again, then reset through the CLI; the user's refresh tokens end.
	a = bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"`+pw+`"}`)
	secret = a.json(t)["secret"].(string)
	proctest.Secret(secret)
	clk.Advance(30 * time.Second)
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code()+`"}`); a.status != 200 {
		t.Fatalf("confirm again: %d %s", a.status, a.body)
	}
	clk.Advance(30 * time.Second)
	a = authOTP(t, plain, p.URL, "alice", pw, code(), "192.0.2.10")
	refresh := a.json(t)["refresh_token"].(string)
	out, err := runIDP([]string{"users", "reset-mfa", "alice", "--url", p.URL, "--admin-token", "totp-admin"})
	if err != nil || !strings.Contains(out, "alice") {
		t.Fatalf("idp users reset-mfa: %v\n%s", err, out)
	}
	if a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=refresh_token&refresh_token="+refresh)); a.status != 400 {
		t.Fatalf("refresh after the reset: %d %s", a.status, a.body)
	}
	if a := authOTP(t, plain, p.URL, "alice", pw, "", "192.0.2.10"); a.status != 200 {
		t.Fatalf("login after the reset: %d %s", a.status, a.body)
	}
	lg := p.Log()
	for _, s := range append([]string{secret}, rc.RecoveryCodes...) {
		if strings.Contains(lg, s) {
			t.Fatal("a TOTP secret or recovery code reached the log")
		}
	}
}

// payload is a token's claims, unverified: the test's clock is ahead of the wall clock a
// verifier would use, and the signature is checked by the tests of the tokens themselves.
func payload(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	m := map[string]any{}
	if err != nil || json.Unmarshal(b, &m) != nil {
		t.Fatalf("token payload: %v", err)
	}
	return m
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// The signed-in person sets TOTP up on the account's second-factor page: the QR code (a PNG of
// the otpauth URI) and the key, a first code, the recovery codes shown once; from then on /auth
// asks for a code. The page's forms need its CSRF token.
func TestTOTPSetupOnTheAccountPage(t *testing.T) {
	clk := clock.NewFake(time.Now())
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0")
	signup(t, p.URL, "hanna", "correct-horse-9")
	r := newRP(t, p.URL, "none", "", "http://127.0.0.1:9/none")
	pg := r.signIn(r.get(p.URL+"/account/passkeys"), "hanna", "correct-horse-9")
	if pg.status != 200 || !strings.Contains(pg.body, `id="setup-totp"`) || pg.url.Path != "/account/passkeys" {
		t.Fatalf("the page after signing in: %d %s %s", pg.status, pg.url, pg.body)
	}
	// Without the page's token the form is refused.
	resp, _ := r.browser.PostForm(p.URL+"/account/passkeys", url.Values{"action": {"totp-setup"}})
	if got := r.read(resp); got.status != 403 {
		t.Fatalf("a set-up without the CSRF token: %d", got.status)
	}
	// A sign-in older than ten minutes may not add a second factor: sign in again first.
	clk.Advance(11 * time.Minute)
	if stale := r.submit(r.get(p.URL + "/account/passkeys")); !strings.Contains(stale.body, "Sign in again") || strings.Contains(stale.body, `id="totp-secret"`) {
		t.Fatalf("a set-up from a stale sign-in: %s", stale.body)
	}
	stalePage := r.get(p.URL + "/account/passkeys")
	csrf := regexp.MustCompile(`data-csrf="([^"]+)"`).FindStringSubmatch(stalePage.body)
	req, _ := http.NewRequest("POST", p.URL+"/account/passkeys/register/begin", nil)
	req.Header.Set("X-CSRF-Token", csrf[1])
	if resp, err := r.browser.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("a passkey registration from a stale sign-in: %v %v", err, resp.StatusCode)
	}
	pg = r.signIn(r.get(p.URL+"/login?rd=%2Faccount%2Fpasskeys"), "hanna", "correct-horse-9")
	pg = r.submit(pg)
	m := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(pg.body)
	if m == nil || !strings.Contains(pg.body, `src="data:image/png;base64,`) {
		t.Fatalf("no QR code or key: %s", pg.body)
	}
	proctest.Secret(m[1])
	code, _ := totp.GenerateCode(m[1], clk.Now())
	pg = r.submit(pg, "code", code)
	codes := regexp.MustCompile(`<li>([a-z2-7]{5}-[a-z2-7]{5})</li>`).FindAllStringSubmatch(pg.body, -1)
	if len(codes) != 10 || !strings.Contains(pg.body, `id="totp-on"`) {
		t.Fatalf("after confirming: %d recovery codes in %s", len(codes), pg.body)
	}
	for _, c := range codes {
		proctest.Secret(c[1])
	}
	if pg := r.get(p.URL + "/account/passkeys"); strings.Contains(pg.body, "<li>"+codes[0][1]) || !strings.Contains(pg.body, `id="totp-on"`) {
		t.Fatal("the recovery codes are shown again, or TOTP is not on")
	}
	if a := authOTP(t, http.DefaultClient, p.URL, "hanna", "correct-horse-9", "", "192.0.2.1"); a.status != 401 {
		t.Fatalf("/auth without a code after the page's set-up: %d %s", a.status, a.body)
	}
}
