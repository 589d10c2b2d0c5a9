package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

const kioskSecret = "secret-of-the-kiosk-0123456789-abcdefgh"

// deviceClients is the clients file of the device-grant tests: a public TV app that may
// refresh, a confidential kiosk, and a web app without the device grant.
func deviceClients(t *testing.T) string {
	t.Helper()
	proctest.Secret(kioskSecret, webSecret)
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, file, []any{
		map[string]any{"client_id": "tv", "name": "Living Room TV", "public": true,
			"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"},
			"scopes":      []string{"openid", "profile", "offline_access", "workitems:read"}},
		map[string]any{"client_id": "kiosk", "name": "Kiosk", "client_secret": kioskSecret,
			"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}, "scopes": []string{"workitems:read"}},
		map[string]any{"client_id": "webapp", "client_secret": webSecret, "redirect_uris": []string{webCallback},
			"grant_types": []string{"authorization_code"}, "scopes": []string{"openid"}},
		map[string]any{"client_id": "idp-cli", "name": "idp command line", "public": true,
			"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"},
			"scopes":      []string{"openid", "offline_access", "workitems:read", "workitems:write"}},
	})
	return file
}

func startDevice(t *testing.T, clk *clock.Fake, extra ...string) *servicetest.Instance {
	t.Helper()
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, append([]string{"--clients", deviceClients(t), "--rate-limit", "0"}, extra...)...)
	signup(t, p.URL, "dora", "correct-horse-9")
	return p
}

// person is a browser with a cookie jar, signed in to the IdP as dora once it met the login form.
func person(t *testing.T) *rp {
	jar, _ := cookiejar.New(nil)
	return &rp{t: t, ctx: context.Background(), browser: &http.Client{Jar: jar}}
}

// answerDevice has the person open the verification URI with the code, sign in if asked, and
// press decision on the confirmation page.
func answerDevice(t *testing.T, p *rp, verifyComplete, decision string) page {
	t.Helper()
	pg := p.signIn(p.get(verifyComplete), "dora", "correct-horse-9")
	if !strings.Contains(pg.body, `id="approve"`) {
		t.Fatalf("no confirmation page at %s (%d): %s", pg.url, pg.status, pg.body)
	}
	return p.submit(pg, "decision", decision)
}

// deviceAuthorize posts /device/authorize as the client (Basic when secret is set).
func deviceAuthorize(t *testing.T, base string, form url.Values, id, secret string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/device/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

var userCodeShape = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// The device grant with golang.org/x/oauth2 as the device: DeviceAuth gets the codes (API.md's
// answer, the code shaped XXXX-XXXX), DeviceAccessToken polls while a person, on the fake clock's
// time, signs in on /device with the verification_uri_complete and approves; the poll then
// gets an access token, a refresh token and an ID token that go-oidc verifies (auth_time of the
// approving sign-in). The device_code is then spent. Discovery names the endpoint and grant.
func TestDeviceGrantWithXOAuth2(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startDevice(t, clk)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, p.URL)
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		DeviceEndpoint string   `json:"device_authorization_endpoint"`
		Grants         []string `json:"grant_types_supported"`
	}
	provider.Claims(&disc)
	if disc.DeviceEndpoint != p.URL+"/device/authorize" || !strings.Contains(strings.Join(disc.Grants, " "), "urn:ietf:params:oauth:grant-type:device_code") {
		t.Fatalf("discovery: %+v", disc)
	}
	ep := provider.Endpoint()
	ep.DeviceAuthURL, ep.AuthStyle = disc.DeviceEndpoint, oauth2.AuthStyleInParams
	cfg := oauth2.Config{ClientID: "tv", Endpoint: ep, Scopes: []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}}

	// The device's time: every poll comes one interval after the last, on the IdP's clock.
	polls := make(chan string, 100)
	hc := &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/token") {
			clk.Advance(5 * time.Second)
		}
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && strings.HasSuffix(r.URL.Path, "/token") {
			polls <- resp.Status
		}
		return resp, err
	})}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	proctest.Secret(da.DeviceCode)
	if !userCodeShape.MatchString(da.UserCode) || da.VerificationURI != p.URL+"/device" ||
		da.VerificationURIComplete != p.URL+"/device?user_code="+da.UserCode || da.Interval != 5 || time.Until(da.Expiry) > 601*time.Second {
		t.Fatalf("device authorization: %+v", da)
	}
	// The person answers after the device's first poll, which is pending.
	var wg sync.WaitGroup
	wg.Go(func() {
		if s := <-polls; !strings.HasPrefix(s, "400") {
			t.Errorf("first poll: %s, want 400 authorization_pending", s)
		}
		done := answerDevice(t, person(t), da.VerificationURIComplete, "approve")
		if done.status != 200 || !strings.Contains(done.body, "Device connected") {
			t.Errorf("approval: %d %s", done.status, done.body)
		}
	})
	da.Interval = 1 // the library waits in real time; the IdP's time is the fake clock's
	tok, err := cfg.DeviceAccessToken(ctx, da)
	wg.Wait()
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	proctest.Secret(tok.AccessToken, tok.RefreshToken, raw)
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("tokens: %+v", tok)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "tv", Now: clk.Now}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc verifies the ID token: %v", err)
	}
	var c idClaims
	idt.Claims(&c)
	if c.AuthTime == 0 || c.PreferredUsername != "dora" || idt.Nonce != "" {
		t.Fatalf("ID token claims: %+v", c)
	}
	// The refresh token works, for this client.
	if a := tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"tv"}}, "", ""); a.status != 200 {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	// Tokens once: the same device_code again is invalid_grant.
	a := tokenCall(t, p.URL, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"tv"}}, "", "")
	oauthErr(t, "the device code a second time", a, 400, "invalid_grant", "already used")
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Every answer a polling device can get, in order, on the fake clock: pending, slow_down (and the
// interval it then needs), access_denied, expired_token, tokens once, and invalid_grant for a
// code spent, unknown or another client's; and /device/authorize's refusals.
func TestDevicePollingErrors(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startDevice(t, clk)
	start := func(client, secret string) (deviceCode, complete string) {
		t.Helper()
		form := url.Values{}
		if secret == "" {
			form.Set("client_id", client)
		}
		a := deviceAuthorize(t, p.URL, form, client, secret)
		m := a.json(t)
		if a.status != 200 || m["expires_in"] != 600.0 || m["interval"] != 5.0 {
			t.Fatalf("device authorization: %d %s", a.status, a.body)
		}
		proctest.Secret(m["device_code"].(string))
		return m["device_code"].(string), m["verification_uri_complete"].(string)
	}
	poll := func(code, client, secret string) answer {
		t.Helper()
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {code}}
		if secret == "" {
			form.Set("client_id", client)
			return tokenCall(t, p.URL, form, "", "")
		}
		return tokenCall(t, p.URL, form, client, secret)
	}
	dora := person(t)

	code, complete := start("tv", "")
	steps := []struct {
		name    string
		advance time.Duration
		answer  string // the person's decision before the poll
		status  int
		err     string
	}{
		{"first poll", 0, "", 400, "authorization_pending"},
		{"an interval later", 5 * time.Second, "", 400, "authorization_pending"},
		{"too soon", 4 * time.Second, "", 400, "slow_down"},
		{"the old interval is now too soon", 5 * time.Second, "", 400, "slow_down"},
		{"the longer interval", 15 * time.Second, "", 400, "authorization_pending"},
		{"approved", 15 * time.Second, "approve", 200, ""},
		{"used twice", 15 * time.Second, "", 400, "invalid_grant"},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.answer != "" {
			answerDevice(t, dora, complete, s.answer)
		}
		a := poll(code, "tv", "")
		if s.status == 200 {
			if m := a.json(t); a.status != 200 || m["access_token"] == nil || m["refresh_token"] == nil || m["id_token"] == nil {
				t.Fatalf("%s: %d %s", s.name, a.status, a.body)
			}
			proctest.Secret(a.json(t)["access_token"].(string), a.json(t)["refresh_token"].(string), a.json(t)["id_token"].(string))
			continue
		}
		oauthErr(t, s.name, a, s.status, s.err, "")
	}

	// Denied: access_denied, and the confidential kiosk authenticates with its secret.
	denied, complete := start("kiosk", kioskSecret)
	if pg := answerDevice(t, dora, complete, "deny"); !strings.Contains(pg.body, "Request denied") {
		t.Fatalf("deny: %s", pg.body)
	}
	oauthErr(t, "denied", poll(denied, "kiosk", kioskSecret), 400, "access_denied", "")
	oauthErr(t, "denied, without the secret", poll(denied, "kiosk", ""), 401, "invalid_client", "")
	// A second answer to an answered code: the page says so.
	if pg := dora.get(complete); pg.status != 400 || !strings.Contains(pg.body, "already used") {
		t.Fatalf("an answered code's page: %d %s", pg.status, pg.body)
	}

	// Expired: 600 s after it was issued, never answered.
	late, complete := start("tv", "")
	clk.Advance(601 * time.Second)
	oauthErr(t, "expired", poll(late, "tv", ""), 400, "expired_token", "")
	if pg := dora.get(complete); pg.status != 400 {
		t.Fatalf("an expired code's page: %d %s", pg.status, pg.body)
	}

	// Another client's code, and no code at all.
	other, _ := start("tv", "")
	oauthErr(t, "another client's code", poll(other, "kiosk", kioskSecret), 400, "invalid_grant", "not valid")
	oauthErr(t, "an unknown code", poll("not-a-device-code", "tv", ""), 400, "invalid_grant", "not valid")
	oauthErr(t, "no code", poll("", "tv", ""), 400, "invalid_request", "device_code")

	// /device/authorize's refusals.
	oauthErr(t, "a client without the grant", deviceAuthorize(t, p.URL, url.Values{}, "webapp", webSecret), 400, "unauthorized_client", "")
	oauthErr(t, "a scope beyond the client's", deviceAuthorize(t, p.URL, url.Values{"client_id": {"tv"}, "scope": {"openid admin"}}, "", ""), 400, "invalid_scope", "")
	oauthErr(t, "a wrong secret", deviceAuthorize(t, p.URL, url.Values{}, "kiosk", "wrong-secret-0123456789-0123456789-x"), 401, "invalid_client", "")
	oauthErr(t, "no client", deviceAuthorize(t, p.URL, url.Values{}, "", ""), 401, "invalid_client", "")
	oauthErr(t, "an unknown client", deviceAuthorize(t, p.URL, url.Values{"client_id": {"nobody"}}, "", ""), 401, "invalid_client", "")
	oauthErr(t, "the confidential client without its secret", deviceAuthorize(t, p.URL, url.Values{"client_id": {"kiosk"}}, "", ""), 401, "invalid_client", "")
}

// Guessing user codes on /device: each lookup from one address counts (5 in the throttle's
// window, the login throttle's defaults), so the sixth — even of a right code — is a 429 with
// Retry-After, for a minute; then the right code works. A wrong code is a 400 that says so, and
// changes nothing. A confirmation form without its CSRF token, or for another code, is refused.
func TestDeviceCodeGuessingThrottled(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startDevice(t, clk)
	a := deviceAuthorize(t, p.URL, url.Values{"client_id": {"tv"}}, "", "")
	m := a.json(t)
	proctest.Secret(m["device_code"].(string))
	right := m["user_code"].(string)
	dora := person(t)
	// Signed in first (the page sends a person without a session to the login, and back).
	if pg := dora.signIn(dora.get(p.URL+"/device?user_code=BBBB-BBBB"), "dora", "correct-horse-9"); pg.status != 400 ||
		!strings.Contains(pg.body, "unknown, has expired") {
		t.Fatalf("a wrong code: %d %s", pg.status, pg.body)
	}
	for i, guess := range []string{"BBBB-BBBC", "bbbbbbbd", "AAAA-AAAA", "BBBB BBBF"} {
		if pg := dora.get(p.URL + "/device?user_code=" + url.QueryEscape(guess)); pg.status != 400 {
			t.Fatalf("guess %d: %d %s", i, pg.status, pg.body)
		}
	}
	pg := dora.get(p.URL + "/device?user_code=" + right)
	if pg.status != 429 || !strings.Contains(pg.body, "Too many codes") {
		t.Fatalf("the sixth lookup: %d %s", pg.status, pg.body)
	}
	clk.Advance(61 * time.Second)
	pg = dora.get(p.URL + "/device?user_code=" + strings.ToLower(strings.ReplaceAll(right, "-", "")))
	if pg.status != 200 || !strings.Contains(pg.body, "Living Room TV") {
		t.Fatalf("the right code after the lockout: %d %s", pg.status, pg.body)
	}
	// The form's CSRF token is bound to the code: posting it for another code, or without it, fails.
	uc := m["user_code"].(string)
	last := "B"
	if strings.HasSuffix(uc, "B") {
		last = "C" // another code, whatever the real one's last letter
	}
	other := uc[:8] + last
	if got := dora.submit(pg, "user_code", other, "decision", "approve"); got.status != 403 {
		t.Fatalf("the form for another code: %d %s", got.status, got.body)
	}
	if got := dora.submit(pg, "csrf", "", "decision", "approve"); got.status != 403 {
		t.Fatalf("the form without its token: %d %s", got.status, got.body)
	}
	oauthErr(t, "still pending", tokenCall(t, p.URL, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {m["device_code"].(string)}, "client_id": {"tv"}}, "", ""), 400, "authorization_pending", "")
	if got := dora.submit(pg, "decision", "approve"); got.status != 200 {
		t.Fatalf("the form as given: %d %s", got.status, got.body)
	}
}

// `idp login --device` against the IdP: it prints the URL and the code, polls (its waits are the
// fake clock's) while the person approves on the page it names, and saves the token answer to
// ~/.config/jwtidp/tokens.json with mode 0600 in a 0700 folder. Denied, it says so and writes
// no file.
func TestLoginDeviceCommand(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startDevice(t, clk)
	home := t.TempDir()
	run := func(decision string, args ...string) (string, error) {
		t.Helper()
		var out strings.Builder
		dora, waits := person(t), 0
		old := loginSleep
		t.Cleanup(func() { loginSleep = old })
		loginSleep = func(_ context.Context, d time.Duration) error {
			if waits++; waits == 2 { // the first poll was pending; the person answers now
				m := regexp.MustCompile(`\(or open (\S+)\)`).FindStringSubmatch(out.String())
				if m == nil {
					t.Fatalf("no verification URI in %q", out.String())
				}
				answerDevice(t, dora, m[1], decision)
			}
			clk.Advance(d)
			return nil
		}
		err := program().Run(context.Background(), append([]string{"idp", "login", "--device", "--url", p.URL}, args...),
			service.Env{Getenv: getenv("HOME=" + home), Stdout: &out, Stderr: &out})
		return out.String(), err
	}
	out, err := run("approve")
	if err != nil || !regexp.MustCompile(`enter the code [BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}\n`).MatchString(out) {
		t.Fatalf("idp login --device: %v\n%s", err, out)
	}
	file := filepath.Join(home, ".config", "jwtidp", "tokens.json")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file: %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(file)); di.Mode().Perm() != 0o700 {
		t.Fatalf("tokens folder mode %v", di.Mode())
	}
	b, _ := os.ReadFile(file)
	var saved map[string]any
	if json.Unmarshal(b, &saved) != nil || saved["access_token"] == nil || saved["refresh_token"] == nil || saved["id_token"] == nil {
		t.Fatalf("saved: %s", b)
	}
	proctest.Secret(saved["access_token"].(string), saved["refresh_token"].(string), saved["id_token"].(string))
	if strings.Contains(out, saved["access_token"].(string)) || !strings.Contains(out, file) {
		t.Fatalf("the output: %s", out)
	}

	// Denied, into --out: an error, no file.
	other := filepath.Join(t.TempDir(), "t.json")
	if out, err := run("deny", "--out", other); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("denied: %v\n%s", err, out)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("a denied login wrote %s: %v", other, err)
	}
}

// A person in Chromium connects a device: on the verification URI they type the code the device
// shows (in lower case, without the dash), sign in on the login page that sends them back, see
// the client's name and scopes, and click Approve; the device's next poll gets its tokens.
func TestDeviceApprovalInChromium(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startDevice(t, clk)
	a := deviceAuthorize(t, p.URL, url.Values{"client_id": {"tv"}, "scope": {"openid workitems:read"}}, "", "")
	m := a.json(t)
	if a.status != 200 {
		t.Fatalf("device authorization: %d %s", a.status, a.body)
	}
	deviceCode, userCode := m["device_code"].(string), m["user_code"].(string)
	proctest.Secret(deviceCode)

	br := proctest.NewBrowser(t, 60*time.Second)
	step, value := br.Step, br.Value
	step("open the verification URI", chromedp.Navigate(m["verification_uri"].(string)), chromedp.WaitVisible(`#user_code`))
	step("enter the code",
		chromedp.SendKeys(`#user_code`, strings.ToLower(strings.ReplaceAll(userCode, "-", ""))),
		chromedp.Click(`#continue`),
		chromedp.WaitVisible(`#username`),
	)
	// The form filled and its button clicked by the page's own script, not through DOM node ids:
	// under load, Chromium now and then renumbered the login page's nodes between the wait
	// above and the typing ("Could not find node with given id").
	if got := value(chromedp.Evaluate[string](`(() => {
		document.querySelector('#username').value = 'dora';
		document.querySelector('#password').value = 'correct-horse-9';
		document.querySelector('#username').form.querySelector('button[type=submit]').click();
		return 'submitted';
	})()`)); got != "submitted" {
		t.Fatalf("sign in: %q", got)
	}
	step("sign in", chromedp.WaitVisible(`#approve`))
	if name, code, scopes := value(chromedp.Text(`#client-name`)), value(chromedp.Text(`#user-code`)), value(chromedp.Text(`#scopes`)); name != "Living Room TV" ||
		code != userCode || !strings.Contains(scopes, "workitems:read") && !strings.Contains(scopes, "work items") {
		t.Fatalf("the confirmation page names %q, code %q, scopes %q", name, code, scopes)
	}
	step("approve", chromedp.Click(`#approve`), chromedp.WaitVisible(`#done`))
	if title := value(chromedp.Text(`h1`)); title != "Device connected" {
		t.Fatalf("after approving: %q", title)
	}
	poll := tokenCall(t, p.URL, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}, "client_id": {"tv"}}, "", "")
	tok := poll.json(t)
	if poll.status != 200 || tok["access_token"] == nil || tok["id_token"] == nil || tok["refresh_token"] != nil {
		t.Fatalf("the device's poll: %d %s", poll.status, poll.body)
	}
	proctest.Secret(tok["access_token"].(string), tok["id_token"].(string))
}

// Tokens once, also when an approved code is polled by many at once (a device's retries, an
// attacker who copied the code): one poll gets tokens, the rest invalid_grant.
func TestDeviceConcurrentPollsOneWinner(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startDevice(t, clk)
	m := deviceAuthorize(t, p.URL, url.Values{"client_id": {"tv"}}, "", "").json(t)
	code := m["device_code"].(string)
	proctest.Secret(code)
	answerDevice(t, person(t), m["verification_uri_complete"].(string), "approve")
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int]int{}
	for range 10 {
		wg.Go(func() {
			a := tokenCall(t, p.URL, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {code}, "client_id": {"tv"}}, "", "")
			if a.status == 200 {
				proctest.Secret(a.json(t)["access_token"].(string))
				if rt, ok := a.json(t)["refresh_token"].(string); ok {
					proctest.Secret(rt)
				}
				if it, ok := a.json(t)["id_token"].(string); ok {
					proctest.Secret(it)
				}
			}
			mu.Lock()
			got[a.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[200] != 1 || got[400] != 9 {
		t.Fatalf("answers by status: %v, want one 200 and nine 400", got)
	}
}

// The device grant and the refresh that follows, with panva's certified openid-client as the
// device (a referee nobody here wrote): it polls at the interval while dora approves on /device,
// gets tokens once, and refreshing them gives a fresh ID token that openid-client checks (same
// sub, the original auth_time, no nonce). Real time: its polls wait the 5 s interval.
func TestDeviceAndRefreshWithOpenIDClient(t *testing.T) {
	node := proctest.NodePackages(t, "testdata/openid-client", "openid-client")
	p := startIDPEnv(t, t.TempDir(), service.Env{}, "--clients", deviceClients(t), "--rate-limit", "0")
	signup(t, p.URL, "dora", "correct-horse-9")
	issuer := discoveryDoc(t, p.URL)["issuer"].(string)
	cmd := exec.Command(node, "device.mjs")
	cmd.Dir = "testdata/openid-client"
	cmd.Env = append(os.Environ(), "ISSUER="+issuer)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	var mu sync.Mutex
	var out strings.Builder
	verifyLine := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if v, ok := strings.CutPrefix(sc.Text(), "verify "); ok {
				verifyLine <- v
			}
		}
	}()
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	var verify string
	select {
	case verify = <-verifyLine:
	case <-time.After(30 * time.Second):
		t.Fatalf("openid-client printed no verification URI:\n%s", output())
	}
	if pg := answerDevice(t, person(t), verify, "approve"); pg.status != 200 {
		t.Fatalf("approving: %d %s", pg.status, pg.body)
	}
	select {
	case err := <-done:
		<-read
		if err != nil {
			t.Fatalf("openid-client: %v\n%s\nIdP log:\n%s", err, output(), p.Log())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("openid-client did not finish within 60 s:\n%s", output())
	}
	for _, want := range []string{"ok device grant: sub=", "ok refresh: an ID token for sub="} {
		if !strings.Contains(output(), want) {
			t.Fatalf("openid-client did not say %q:\n%s", want, output())
		}
	}
}

// RFC 8707 at /device/authorize (API.md's resource row): a resource the IdP knows becomes the
// access token's one audience; any other is invalid_target before a code is made.
func TestDeviceResource(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startDevice(t, clk, "--audience", "workitems,reports")
	oauthErr(t, "an unknown resource", deviceAuthorize(t, p.URL, url.Values{"client_id": {"tv"}, "scope": {"workitems:read"}, "resource": {"https://elsewhere.example/"}}, "", ""), 400, "invalid_target", "")
	a := deviceAuthorize(t, p.URL, url.Values{"client_id": {"tv"}, "scope": {"workitems:read"}, "resource": {"reports"}}, "", "")
	if a.status != 200 {
		t.Fatalf("device authorization: %d %s", a.status, a.body)
	}
	m := a.json(t)
	proctest.Secret(m["device_code"].(string))
	if pg := answerDevice(t, person(t), m["verification_uri_complete"].(string), "approve"); pg.status != 200 {
		t.Fatalf("approving: %d %s", pg.status, pg.body)
	}
	clk.Advance(5 * time.Second)
	poll := tokenCall(t, p.URL, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {m["device_code"].(string)}, "client_id": {"tv"}}, "", "")
	if poll.status != 200 {
		t.Fatalf("the poll: %d %s", poll.status, poll.body)
	}
	at := poll.json(t)["access_token"].(string)
	proctest.Secret(at)
	if aud := payload(t, at)["aud"]; fmt.Sprint(aud) != "[reports]" {
		t.Fatalf("the token's aud = %v, want [reports]", aud)
	}
}
