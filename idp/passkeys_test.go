package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"jwtidp/shared/proctest"
)

// virtualAuthenticator turns on the DevTools protocol's WebAuthn domain and adds a platform
// authenticator that holds discoverable credentials and verifies its user (no UI, presence
// simulated), as a laptop's passkey store would.
func virtualAuthenticator() chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true,
			},
		})
		return chromedp.Void{}, err
	}
}

// assertJS runs navigator.credentials.get in the page with the options a /login/passkey/begin
// gave, and returns the PublicKeyCredential as the finish route takes it.
const assertJS = `(async () => {
  const o = %s;
  const dec = s => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=')), c => c.charCodeAt(0)).buffer;
  const enc = b => b ? btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') : undefined;
  const pk = o.publicKey;
  pk.challenge = dec(pk.challenge);
  pk.allowCredentials = (pk.allowCredentials || []).map(c => ({ type: c.type, id: dec(c.id) }));
  const c = await navigator.credentials.get({ publicKey: pk });
  const r = c.response;
  return JSON.stringify({ id: c.id, rawId: enc(c.rawId), type: c.type, clientExtensionResults: {}, response: {
    clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData), signature: enc(r.signature), userHandle: enc(r.userHandle) } });
})()`

// passkeyBegin starts a passkey sign-in as the login page's script does, from Go: the login
// form's CSRF cookie and token, then begin. It returns the options and the ceremony's cookie.
func passkeyBegin(t *testing.T, base string) (string, *http.Cookie) {
	t.Helper()
	resp, err := http.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "jwtidp_csrf" {
			csrf = c
		}
	}
	if m == nil || csrf == nil {
		t.Fatalf("login page without a CSRF token or cookie: %s", page)
	}
	req, _ := http.NewRequest("POST", base+"/login/passkey/begin", strings.NewReader("csrf="+string(m[1])))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	opts, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("begin: %d %s", resp.StatusCode, opts)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "jwtidp_passkey_login" {
			return string(opts), c
		}
	}
	t.Fatalf("begin set no ceremony cookie: %v", resp.Header["Set-Cookie"])
	return "", nil
}

// passkeyFinish posts an assertion with the ceremony's cookie, as the page at base would.
func passkeyFinish(t *testing.T, base string, state *http.Cookie, body string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/login/passkey/finish?rd=/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	req.AddCookie(&http.Cookie{Name: state.Name, Value: state.Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// Passkeys in Chromium with a virtual authenticator: a user signs in with the password, adds a
// passkey on /account/passkeys, signs out, and signs in to an app through the IdP with the
// passkey and no password — the ID token's amr says hwk and user. An assertion made on another
// origin and a replayed one are refused. The passkey is listed, removed, and then no longer
// signs anyone in.
func TestPasskeysInChromium(t *testing.T) {
	rp, file := browserApp(t)
	// WebAuthn wants a domain as the RP id, not an IP address: the issuer is on localhost.
	port := proctest.FreePort(t)
	base := fmt.Sprintf("http://localhost:%d", port)
	startIDP(t, t.TempDir(), "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--issuer", base, "--clients", file, "--admin-token", "audit-admin")
	rp.issuer = base
	signupEmail(t, base, "hedda", "correct-horse-9", "hedda@example.com")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>Elsewhere</title><p>another origin</p>`)
	}))
	t.Cleanup(other.Close)
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)

	br := proctest.NewBrowser(t, 90*time.Second)
	step, value := br.Step, br.Value
	step("a virtual authenticator", virtualAuthenticator())

	step("sign in with the password",
		chromedp.Navigate(base+"/login?rd=/account/passkeys"), chromedp.WaitVisible(`#username`),
		chromedp.SendKeys(`#username`, "hedda"), chromedp.SendKeys(`#password`, "correct-horse-9"),
		chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#add-passkey`))
	if n := value(chromedp.Text(`#no-passkeys`)); n != "No passkeys yet." {
		t.Fatalf("a new user's passkeys: %q", n)
	}
	step("add a passkey",
		chromedp.SetValue(`#passkey-name`, "laptop"), chromedp.Click(`#add-passkey`), chromedp.WaitVisible(`li.passkey`))
	if name := value(chromedp.Text(`li.passkey .name`)); name != "laptop" {
		t.Fatalf("the passkey is listed as %q", name)
	}

	step("sign out", chromedp.Navigate(base+"/logout"), chromedp.WaitVisible(`#confirm-logout`),
		chromedp.Click(`#confirm-logout`), chromedp.WaitVisible(`#username`))

	step("open the app and sign in with the passkey",
		chromedp.Navigate(rp.srv.URL+"/"), chromedp.WaitVisible(`#passkey`),
		chromedp.Click(`#passkey`), chromedp.WaitVisible(`#allow`))
	step("allow", chromedp.Click(`#allow`), chromedp.WaitVisible(`#user`))
	if user, amr := value(chromedp.Text(`#user`)), value(chromedp.Text(`#amr`)); user != "hedda" || amr != "hwk user mfa" {
		t.Fatalf("back in the app: %q with amr %q", user, amr)
	}

	// An assertion made on another origin (same RP id, localhost) for a ceremony of the IdP.
	opts, state := passkeyBegin(t, base)
	step("an assertion on another origin", chromedp.Navigate(otherURL+"/"), chromedp.WaitVisible(`p`))
	body := value(chromedp.Evaluate[string](fmt.Sprintf(assertJS, opts), chromedp.EvalAwaitPromise))
	if a := passkeyFinish(t, base, state, body); a.status != 401 {
		t.Fatalf("an assertion made on %s: %d %s", otherURL, a.status, a.body)
	}

	// The same assertion twice, each with the ceremony's cookie: only the first signs in.
	opts, state = passkeyBegin(t, base)
	step("an assertion on the IdP's page", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(`#passkey`))
	body = value(chromedp.Evaluate[string](fmt.Sprintf(assertJS, opts), chromedp.EvalAwaitPromise))
	if a := passkeyFinish(t, base, state, body); a.status != 200 || !strings.Contains(strings.Join(a.header.Values("Set-Cookie"), "\n"), "jwtidp_session=") {
		t.Fatalf("a fresh assertion: %d %s", a.status, a.body)
	}
	if a := passkeyFinish(t, base, state, body); a.status != 401 || strings.Contains(strings.Join(a.header.Values("Set-Cookie"), "\n"), "jwtidp_session=") {
		t.Fatalf("the assertion replayed: %d %s", a.status, a.body)
	}
	// Both passkey sign-ins ended in the one finisher, which recorded each once; the replay, none.
	events, _ := auditEvents(t, base, "type=login&user="+userOf(t, base, "hedda"))
	passkeySignIns := 0
	for _, e := range events {
		if e.Outcome == "success" && e.Detail == "passkey" {
			passkeySignIns++
		}
	}
	if passkeySignIns != 2 {
		t.Fatalf("%d passkey sign-ins recorded, want 2", passkeySignIns)
	}

	// First-party API clients remove passkeys by id; an unknown one is not found.
	tok := login(t, base, "hedda", "correct-horse-9")["access_token"].(string)
	if a := bearerJSON(t, "DELETE", base+"/account/passkeys/AAAA", tok, ""); a.status != 404 {
		t.Fatalf("removing an unknown passkey: %d %s", a.status, a.body)
	}

	step("remove the passkey",
		chromedp.Navigate(base+"/account/passkeys"), chromedp.WaitVisible(`li.passkey`),
		chromedp.Click(`button.remove`), chromedp.WaitVisible(`#no-passkeys`))

	step("sign out again", chromedp.Navigate(base+"/logout"), chromedp.WaitVisible(`#confirm-logout`),
		chromedp.Click(`#confirm-logout`), chromedp.WaitVisible(`#passkey`))
	// The authenticator still holds the credential; the IdP no longer takes it.
	step("the removed passkey", chromedp.Click(`#passkey`), chromedp.WaitVisible(`#passkey-error`))
	if title := value(chromedp.Title()); title != "Sign in" {
		t.Fatalf("after the removed passkey: %q", title)
	}
}
