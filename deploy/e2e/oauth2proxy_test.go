package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jwtidp/shared/proctest"
)

// oauth2ProxyVersion is the release deploy/oauth2-proxy is written for and .ci/run installs.
const oauth2ProxyVersion = "v7.15.6"

// The real oauth2-proxy with deploy/oauth2-proxy's configuration, in front of an app, with the
// IdP as its OpenID Provider. Without a session the proxy lets nothing through; a person in
// Chromium opens the app, is sent to the proxy's sign-in page, then to the IdP's login page,
// signs in, allows the client on the consent page (it is not first-party) and lands on the
// page they asked for, which shows the username and email the proxy passed in its headers.
func TestOAuth2ProxyLogin(t *testing.T) {
	proxyBin := needOAuth2Proxy(t)
	need(t, "chromium") // before starting anything

	listen := proctest.FreeAddr(t)
	clientSecret, cookieSecret := randomText(t, 32), base64.URLEncoding.EncodeToString(randomBytes(t, 32))
	const user, pw, email, adminToken = "olga", "correct-horse-9", "Olga@Example.com", "oauth2-proxy-test-admin-token"
	proctest.Secret(clientSecret, cookieSecret, pw, adminToken)

	idp := startIdPForOAuth2Proxy(t, listen, clientSecret, adminToken, nil)
	// A user with an email, verified by an admin: oauth2-proxy refuses unverified ones.
	signupVerified(t, idp.URL, adminToken, user, pw, email)

	app := newAppWith(t, oauth2ProxyPage)
	proxy := startOAuth2Proxy(t, proxyBin, listen, idp.URL, app.srv.URL, map[string]string{
		"OAUTH2_PROXY_CLIENT_SECRET": clientSecret,
		"OAUTH2_PROXY_COOKIE_SECRET": cookieSecret,
	}, nil)

	// Without signing in, nothing reaches the app, whatever identity headers the request carries.
	page := proxy + "/projects/42?tab=files"
	for name, hdr := range map[string][]string{
		"no cookie":      nil,
		"forged headers": {"X-Forwarded-User", "admin", "X-Forwarded-Email", email, "X-Forwarded-Preferred-Username", user},
		"forged cookie":  {"Cookie", "_oauth2_proxy=" + base64.URLEncoding.EncodeToString(randomBytes(t, 96))},
	} {
		resp, body := get(t, client(nil), page, hdr...)
		if resp.StatusCode == 200 || strings.Contains(body, `id="user"`) {
			t.Fatalf("%s: the proxy answered %d:\n%s", name, resp.StatusCode, body)
		}
	}
	if n := len(app.requests()); n != 0 {
		t.Fatalf("%d requests reached the app without a login", n)
	}

	br := proctest.NewBrowser(t, 60*time.Second)
	br.Context = func() string { return "oauth2-proxy's log:\n" + proxyLog(t) }
	step, value := br.Step, br.Value

	signIn := `form[action="/oauth2/start"] button`
	step("open the app through the proxy", chromedp.Navigate(page), chromedp.WaitVisible(signIn))
	if url := value(chromedp.Location()); !strings.HasPrefix(url, proxy+"/") {
		t.Fatalf("the sign-in page is at %s, want the proxy", url)
	}
	step("the proxy's sign-in", chromedp.Click(signIn), chromedp.WaitVisible(`#username`))
	if title, url := value(chromedp.Title()), value(chromedp.Location()); title != "Sign in" || !strings.HasPrefix(url, idp.URL+"/login?") {
		t.Fatalf("landed on %q (%s), want the IdP's login page", title, url)
	}
	step("sign in at the IdP",
		chromedp.SendKeys(`#username`, user),
		chromedp.SendKeys(`#password`, pw),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`#allow`),
	)
	if name, scopes := value(chromedp.Text(`#client-name`)), value(chromedp.Text(`#scopes`)); name != "The app behind oauth2-proxy" || !strings.Contains(scopes, "email") {
		t.Fatalf("consent page for %q asking for %q", name, scopes)
	}
	// Back at the app, or on one of oauth2-proxy's pages: its error page (a failed code
	// exchange, say) or its sign-in page again (an ID token it refused).
	step("allow", chromedp.Click(`#allow`), chromedp.WaitVisible(`#user, .status-code, `+signIn))
	if title := value(chromedp.Title()); title != "App" {
		t.Fatalf("after consent: %q at %s\noauth2-proxy's log:\n%s", title, value(chromedp.Location()), proxyLog(t))
	}
	if got, url := value(chromedp.Text(`#user`)), value(chromedp.Location()); got != user || url != page {
		t.Fatalf("after sign-in: at %s showing %q; want %s showing %s", url, got, page, user)
	}
	if got := value(chromedp.Text(`#email`)); got != email {
		t.Fatalf("the app shows email %q, want %q", got, email)
	}
	reqs := app.requests()
	last := reqs[len(reqs)-1]
	if sub := last.Get("X-Forwarded-User"); sub == "" || strings.EqualFold(sub, user) {
		t.Fatalf("X-Forwarded-User %q: want the IdP's opaque sub", sub)
	}

	// The session is the proxy's cookie: the next page needs no IdP.
	step("another page", chromedp.Navigate(proxy+"/other"), chromedp.WaitVisible(`#user`))
	if got := value(chromedp.Text(`#user`)); got != user {
		t.Fatalf("the next page shows %q", got)
	}
	// Signing out of the proxy ends its session: the app is closed again.
	step("sign out of the proxy", chromedp.Navigate(proxy+"/oauth2/sign_out"), chromedp.Navigate(page), chromedp.WaitVisible(signIn))
}

// The real oauth2-proxy with deploy/oauth2-proxy's configuration and its commented
// allowed_groups example turned on (allowed_groups = ["admins"], scope groups added, the client
// registered for it): the IdP only says which groups a user is in, in the ID token's groups
// claim, and oauth2-proxy alone decides. A member of admins signs in and reaches the app, which
// gets X-Forwarded-Groups; a user who is not gets oauth2-proxy's 403 at the callback and the app
// never sees them; added to admins, the same user gets in at the next sign-in.
func TestOAuth2ProxyAllowedGroup(t *testing.T) {
	proxyBin := needOAuth2Proxy(t)

	listen := proctest.FreeAddr(t)
	clientSecret, cookieSecret := randomText(t, 32), base64.URLEncoding.EncodeToString(randomBytes(t, 32))
	const pw, adminToken = "correct-horse-9", "oauth2-proxy-groups-test-admin-token"
	proctest.Secret(clientSecret, cookieSecret, pw, adminToken)

	idp := startIdPForOAuth2Proxy(t, listen, clientSecret, adminToken, map[string]string{
		`"scopes": ["openid", "profile", "email"]`: `"scopes": ["openid", "profile", "email", "groups"]`,
	})
	// Both have a verified email, so the group is the only difference between them.
	signupVerified(t, idp.URL, adminToken, "ada", pw, "ada@example.com")
	signupVerified(t, idp.URL, adminToken, "bert", pw, "bert@example.com")
	idpCLI(t, idp.URL, adminToken, "groups", "add", "admins")
	idpCLI(t, idp.URL, adminToken, "groups", "add", "staff")
	idpCLI(t, idp.URL, adminToken, "groups", "add-member", "admins", "ada")
	idpCLI(t, idp.URL, adminToken, "groups", "add-member", "staff", "bert")

	app := newAppWith(t, oauth2ProxyPage)
	proxy := startOAuth2Proxy(t, proxyBin, listen, idp.URL, app.srv.URL, map[string]string{
		"OAUTH2_PROXY_CLIENT_SECRET": clientSecret,
		"OAUTH2_PROXY_COOKIE_SECRET": cookieSecret,
	}, map[string]string{
		`scope = "openid profile email"`: `scope = "openid profile email groups"`,
		`# allowed_groups = ["admins"]`:  `allowed_groups = ["admins"]`,
	})
	page := proxy + "/reports/q3?year=2026"

	// signIn opens the page in a fresh browser, presses the proxy's "Sign in with jwtidp" and
	// passes the IdP's login and consent pages.
	signIn := func(c *http.Client, user string) (*http.Response, string) {
		t.Helper()
		resp, body := get(t, c, page)
		if resp.StatusCode == 200 || !strings.Contains(body, `action="/oauth2/start"`) {
			t.Fatalf("%s without a session: %d, not the proxy's sign-in page:\n%s", user, resp.StatusCode, body)
		}
		resp, body = submitForm(t, c, resp, body)
		return idpSignIn(t, c, resp, body, idp.URL, user, pw)
	}

	ada := browser(t)
	resp, body := signIn(ada, "ada")
	if resp.StatusCode != 200 || resp.Request.URL.String() != page || !strings.Contains(body, `<span id="user">ada</span>`) {
		t.Fatalf("ada, in admins: %d at %s:\n%s\noauth2-proxy's log:\n%s", resp.StatusCode, where(resp), body, proxyLog(t))
	}
	reqs := app.requests()
	if got := reqs[len(reqs)-1].Get("X-Forwarded-Groups"); got != "admins" {
		t.Fatalf("the app got X-Forwarded-Groups %q, want admins", got)
	}

	before := len(app.requests())
	bert := browser(t)
	resp, body = signIn(bert, "bert")
	if resp.StatusCode != 403 || resp.Request.URL.Path != "/oauth2/callback" || strings.Contains(body, `id="user"`) {
		t.Fatalf("bert, not in admins: %d at %s, want oauth2-proxy's 403 at its callback:\n%s", resp.StatusCode, where(resp), body)
	}
	// oauth2-proxy's reason is its group check (not, say, an unverified email or a failed
	// code exchange, which are 403 or 500 pages too). It may finish writing that line just
	// after the answer.
	refused := regexp.MustCompile(`bert@example\.com \[[^]]*\] \[AuthFailure\] Invalid authentication via OAuth2: unauthorized`)
	if !proctest.Eventually(5*time.Second, func() bool { return refused.MatchString(proxyLog(t)) }) {
		t.Fatalf("oauth2-proxy did not log refusing bert for his groups:\n%s", proxyLog(t))
	}
	// He has no session at the proxy: the page is still its sign-in page, and the app saw nothing.
	if resp, body := get(t, bert, page); resp.StatusCode == 200 || !strings.Contains(body, `action="/oauth2/start"`) {
		t.Fatalf("bert after the refusal: %d\n%s", resp.StatusCode, body)
	}
	if n := len(app.requests()); n != before {
		t.Fatalf("%d requests of bert reached the app", n-before)
	}

	// An admin adds him to admins; his next sign-in (the IdP's session and his consent are
	// remembered, so it goes straight through) carries the group and he is let in.
	idpCLI(t, idp.URL, adminToken, "groups", "add-member", "admins", "bert")
	resp, body = signIn(bert, "bert")
	if resp.StatusCode != 200 || !strings.Contains(body, `<span id="user">bert</span>`) {
		t.Fatalf("bert, added to admins: %d at %s:\n%s", resp.StatusCode, where(resp), body)
	}
	reqs = app.requests()
	if got := reqs[len(reqs)-1].Get("X-Forwarded-Groups"); got != "admins,staff" && got != "staff,admins" {
		t.Fatalf("the app got X-Forwarded-Groups %q for bert, want admins and staff", got)
	}
}

// oauth2-proxy keyed on the email domain admits a user only once they followed the link the IdP
// mailed to their address (through a real SMTP server, Mailpit): before, the ID token's
// email_verified is false, and oauth2-proxy refuses the sign-in.
func TestOAuth2ProxyEmailDomainAfterVerification(t *testing.T) {
	proxyBin := needOAuth2Proxy(t)
	mp := proctest.StartMailpit(t)

	listen := proctest.FreeAddr(t)
	clientSecret, cookieSecret := randomText(t, 32), base64.URLEncoding.EncodeToString(randomBytes(t, 32))
	const pw, adminToken = "correct-horse-9", "oauth2-proxy-email-test-admin-token"
	proctest.Secret(clientSecret, cookieSecret, pw, adminToken)
	idp := startIdPForOAuth2Proxy(t, listen, clientSecret, adminToken, nil,
		"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>")
	body, _ := json.Marshal(map[string]string{"username": "cora", "password": pw, "email": "cora@example.com"})
	r, err := http.Post(idp.URL+"/signup", "application/json", bytes.NewReader(body))
	if err != nil || r.StatusCode != 201 {
		t.Fatalf("signup: %v %v", r, err)
	}
	r.Body.Close()

	app := newAppWith(t, oauth2ProxyPage)
	proxy := startOAuth2Proxy(t, proxyBin, listen, idp.URL, app.srv.URL, map[string]string{
		"OAUTH2_PROXY_CLIENT_SECRET": clientSecret,
		"OAUTH2_PROXY_COOKIE_SECRET": cookieSecret,
	}, map[string]string{`email_domains = ["*"]`: `email_domains = ["example.com"]`})
	page := proxy + "/inbox"
	signIn := func(c *http.Client) (*http.Response, string) {
		t.Helper()
		resp, body := get(t, c, page)
		if resp.StatusCode == 200 || !strings.Contains(body, `action="/oauth2/start"`) {
			t.Fatalf("without a session: %d, not the proxy's sign-in page:\n%s", resp.StatusCode, body)
		}
		resp, body = submitForm(t, c, resp, body)
		return idpSignIn(t, c, resp, body, idp.URL, "cora", pw)
	}
	// Unverified: oauth2-proxy refuses, and nothing reaches the app.
	c := browser(t)
	if resp, body := signIn(c); resp.StatusCode == 200 || strings.Contains(body, `id="user"`) || len(app.requests()) != 0 {
		t.Fatalf("cora, unverified: %d at %s:\n%s", resp.StatusCode, where(resp), body)
	}
	// She follows the mailed link and presses its button.
	got := mp.WaitFor(t, "cora@example.com", 1)
	text, _, _ := mp.Message(t, got[0].ID)
	link := regexp.MustCompile(`http://\S+/email/verify\?token=[A-Za-z0-9_-]+`).FindString(text)
	if link == "" {
		t.Fatalf("no confirmation link in the mail:\n%s", text)
	}
	proctest.Secret(link)
	form := url.Values{"token": {link[strings.Index(link, "token=")+len("token="):]}}
	r, err = http.PostForm(idp.URL+"/email/verify", form)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("the confirmation: %v %v", r, err)
	}
	r.Body.Close()
	// Her next sign-in is admitted.
	if resp, body := signIn(browser(t)); resp.StatusCode != 200 || !strings.Contains(body, `<span id="user">cora</span>`) {
		t.Fatalf("cora, verified: %d at %s:\n%s\noauth2-proxy's log:\n%s", resp.StatusCode, where(resp), body, proxyLog(t))
	}
}

// startIdPForOAuth2Proxy runs the IdP with the client registration README.md gives
// (clients.example.json), its callback moved to this test's proxy at listen, the example secret
// replaced and the edits made (each must be found), the admin token, and extra arguments.
func startIdPForOAuth2Proxy(t *testing.T, listen, clientSecret, adminToken string, edits map[string]string, extra ...string) *proctest.Proc {
	t.Helper()
	replace := map[string]string{
		"http://127.0.0.1:4180/oauth2/callback":                      "http://" + listen + "/oauth2/callback",
		"EXAMPLE-ONLY-not-a-secret-replace-with-openssl-rand-hex-32": clientSecret,
	}
	for k, v := range edits {
		replace[k] = v
	}
	clients := readReplaced(t, "../oauth2-proxy/clients.example.json", replace)
	clientsFile := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(clientsFile, []byte(clients), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--clients", clientsFile,
		"--admin-token", adminToken}, proctest.FastArgon...)
	return proctest.Start(t, idpBin, append(args, extra...))
}

// signupVerified signs a user up with an email, which an admin then verifies (the IdP has no
// mail server here): oauth2-proxy refuses an unverified one.
func signupVerified(t *testing.T, idpURL, adminToken, user, pw, email string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pw, "email": email})
	r, err := http.Post(idpURL+"/signup", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 201 {
		t.Fatalf("signup %s: %d", user, r.StatusCode)
	}
	idpCLI(t, idpURL, adminToken, "users", "verify-email", user, email)
}

// idpCLI runs `idp ARGS… --url idpURL --admin-token adminToken` against the running IdP.
func idpCLI(t *testing.T, idpURL, adminToken string, args ...string) string {
	t.Helper()
	out, err := proctest.Run(idpBin, append(args, "--url", idpURL, "--admin-token", adminToken))
	if err != nil {
		t.Fatalf("idp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// browser is a browser without JavaScript: its own cookie jar, following redirects as a
// browser does (and, as a browser, sending Secure cookies to 127.0.0.1 over http), and asking
// for HTML as a browser does — mod_auth_openidc answers a request that does not take HTML
// (an API client's) 401 instead of sending it to the IdP.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: acceptHTML{}}
}

type acceptHTML struct{}

func (acceptHTML) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	}
	return http.DefaultTransport.RoundTrip(r)
}

var (
	htmlForm    = regexp.MustCompile(`(?s)<form method="(?i:get|post)" action="([^"]*)"[^>]*>(.*?)</form>`)
	formMethod  = regexp.MustCompile(`^<form method="([^"]+)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// submitForm submits the first form of the page (body, fetched as resp) as a browser does: its
// hidden fields and the given name, value pairs, to its action, with its method; and returns the
// page it ends on.
func submitForm(t *testing.T, c *http.Client, resp *http.Response, body string, fields ...string) (*http.Response, string) {
	t.Helper()
	m := htmlForm.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form on %s (%d):\n%s", where(resp), resp.StatusCode, body)
	}
	form := url.Values{}
	for _, h := range hiddenInput.FindAllStringSubmatch(m[2], -1) {
		form.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if strings.EqualFold(formMethod.FindStringSubmatch(m[0])[1], "get") {
		action.RawQuery = form.Encode()
		return get(t, c, action.String())
	}
	r, err := c.PostForm(action.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r, string(b)
}

// where is the address of the page resp answered, without its query: it may carry an
// authorization code, which no log gets.
func where(resp *http.Response) string {
	u := *resp.Request.URL
	u.RawQuery = ""
	return u.String()
}

// idpSignIn passes the IdP's pages a relying party sent the browser c to: the login form (unless
// the IdP's session is still there) with user and pw, and the consent page (unless the user
// allowed the client before), allowing. It returns the page the browser ends on, back at the
// relying party.
func idpSignIn(t *testing.T, c *http.Client, resp *http.Response, body, idpURL, user, pw string) (*http.Response, string) {
	t.Helper()
	onIdP := func(path string) bool {
		u := resp.Request.URL
		return "http://"+u.Host == idpURL && u.Path == path
	}
	if onIdP("/login") {
		resp, body = submitForm(t, c, resp, body, "username", user, "password", pw)
		if onIdP("/login") {
			t.Fatalf("the IdP did not sign %s in: %d at %s:\n%s", user, resp.StatusCode, where(resp), body)
		}
	}
	if strings.Contains(body, `id="allow"`) {
		resp, body = submitForm(t, c, resp, body, "decision", "allow")
	}
	if strings.HasPrefix(resp.Request.URL.String(), idpURL+"/") {
		t.Fatalf("%s is still at the IdP: %d at %s:\n%s", user, resp.StatusCode, where(resp), body)
	}
	return resp, body
}

// needOAuth2Proxy finds the oauth2-proxy binary in PATH or where `go install` puts it (.ci/run
// installs it there), or skips — fails where integration is required, as need does.
func needOAuth2Proxy(t *testing.T) string {
	t.Helper()
	return proctest.GoTool(t, "oauth2-proxy", oauth2ProxyVersion)
}

// startOAuth2Proxy runs oauth2-proxy with deploy/oauth2-proxy/oauth2-proxy.cfg, its addresses
// pointed at this test's servers and the edits made (each must be found, so the test notices
// when the file drifts), and returns its base URL once it answers.
func startOAuth2Proxy(t *testing.T, bin, listen, issuer, upstream string, env, edits map[string]string) string {
	t.Helper()
	replace := map[string]string{
		`http_address = "127.0.0.1:4180"`:                        `http_address = "` + listen + `"`,
		`redirect_url = "http://127.0.0.1:4180/oauth2/callback"`: `redirect_url = "http://` + listen + `/oauth2/callback"`,
		`oidc_issuer_url = "http://127.0.0.1:8080"`:              `oidc_issuer_url = "` + issuer + `"`,
		`upstreams = ["http://127.0.0.1:9000/"]`:                 `upstreams = ["` + upstream + `/"]`,
	}
	for k, v := range edits {
		replace[k] = v
	}
	cfg := readReplaced(t, "../oauth2-proxy/oauth2-proxy.cfg", replace)
	// What the issue asks of the file, and what this test shows works as it is.
	for _, setting := range []string{`provider = "oidc"`, `client_id = "oauth2-proxy"`, `code_challenge_method = "S256"`,
		`insecure_oidc_allow_unverified_email = false`, `insecure_oidc_skip_nonce = false`, `cookie_secure = true`, `pass_user_headers = true`} {
		if !strings.Contains(cfg, "\n"+setting+"\n") {
			t.Fatalf("oauth2-proxy.cfg no longer has %s", setting)
		}
	}
	path := filepath.Join(t.TempDir(), "oauth2-proxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path)
	// The secrets come from the environment, as the README says; a developer's own
	// OAUTH2_PROXY_* settings must not change what runs.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OAUTH2_PROXY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	base := "http://" + listen
	log := startServer(t, "oauth2-proxy", cmd, filepath.Dir(path), 30*time.Second, func() bool {
		resp, err := http.Get(base + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	proxyLogs.Store(t.Name(), log)
	return base
}

var proxyLogs sync.Map // test name → its oauth2-proxy's output reader

func proxyLog(t *testing.T) string {
	if l, ok := proxyLogs.Load(t.Name()); ok {
		return l.(func() string)()
	}
	return ""
}

// oauth2ProxyPage is the page of the app behind oauth2-proxy: the identity headers it set.
func oauth2ProxyPage(h http.Header) string {
	return fmt.Sprintf(`<!doctype html><title>App</title><p>Hello, <span id="user">%s</span>
(<span id="email">%s</span>, <span id="sub">%s</span>)</p>`,
		html.EscapeString(h.Get("X-Forwarded-Preferred-Username")),
		html.EscapeString(h.Get("X-Forwarded-Email")),
		html.EscapeString(h.Get("X-Forwarded-User")))
}

// readReplaced reads a file of deploy/ with replacements, each of which must be found.
func readReplaced(t *testing.T, path string, replace map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, repl := range replace {
		if !strings.Contains(s, old) {
			t.Fatalf("%s no longer has %q", path, old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomText(t *testing.T, n int) string { return hex.EncodeToString(randomBytes(t, n)) }
