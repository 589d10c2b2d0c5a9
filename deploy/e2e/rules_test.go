package e2e

import (
	"bufio"
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"jwtidp/shared/proctest"
)

// The access rules' apps have host names, since a rule's domain ignores the port: two apps on
// 127.0.0.1 could not be told apart. Every name under rulesDomain is loopback, for Chromium
// (--host-resolver-rules) and for the test's own clients (rulesClient); the session cookie is
// shared across them (--cookie-domain), so the IdP's own account page, on a third name, sees
// the session an app's login made.
const (
	rulesDomain = "jwtidp.localtest"
	wwwHost     = "www." + rulesDomain   // app one: a public part, a two-factor admin area, an ops area
	adminHost   = "admin." + rulesDomain // app two: for the group admins only
	idpHost     = "idp." + rulesDomain   // the IdP itself, where a person sets up a second factor
	officeAddr  = "127.0.0.2"            // a client address outside the "guest network" 127.0.0.1
	rulesAdmin  = "rules-test-admin-token"
)

// rulesConfig is the IdP's configuration file: who may reach which of the two apps.
const rulesConfig = `
redirect_hosts: .` + rulesDomain + `
cookie_domain: ` + rulesDomain + `
trusted_proxies: 127.0.0.1
access_control:
  default_policy: deny
  rules:
    - domain: [` + wwwHost + `]           # app one's public pages: anyone, signed in or not
      resources: ["^/public([/?].*)?$"]
      policy: bypass
    - domain: [` + wwwHost + `]           # its admin area: admins, with two factors
      resources: ["^/admin([/?].*)?$"]
      subject: ["group:admins"]
      policy: two_factor
    - domain: [` + wwwHost + `]           # and nobody else
      resources: ["^/admin([/?].*)?$"]
      policy: deny
    - domain: [` + wwwHost + `]           # its ops area: never from the guest network
      resources: ["^/ops([/?].*)?$"]
      networks: [127.0.0.1/32]
      policy: deny
    - domain: [` + wwwHost + `]           # the rest of app one: anyone signed in
      policy: one_factor
    - domain: [` + adminHost + `]         # app two: admins only; everyone else the default deny
      subject: ["group:admins"]
      policy: one_factor
`

// rulesStack is the IdP with rulesConfig, and each app behind its own nginx running the
// shipped deploy/nginx/nginx.conf.
type rulesStack struct {
	idp        *proctest.Proc
	www, admin *app
	wwwURL     string // http://www.jwtidp.localtest:PORT
	adminURL   string
	idpURL     string // the IdP under its name in rulesDomain
}

func startRulesStack(t *testing.T) *rulesStack {
	t.Helper()
	need(t, "nginx")
	cfg := filepath.Join(t.TempDir(), "idp.yaml")
	if err := os.WriteFile(cfg, []byte(rulesConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := proctest.Run(idpBin, []string{"config", "check", cfg}); err != nil {
		t.Fatalf("idp config check: %v\n%s", err, out)
	}
	proctest.Secret(rulesAdmin)
	s := &rulesStack{
		www:   newAppWith(t, rulesPage("App one")),
		admin: newAppWith(t, rulesPage("App two")),
	}
	s.idp = proctest.Start(t, idpBin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--config", cfg, "--admin-token", rulesAdmin}, proctest.FastArgon...))
	proxy := func(a *app, host string) string {
		listen := proctest.FreeAddr(t)
		startNginxFor(t, listen, s.idp.Addr, strings.TrimPrefix(a.srv.URL, "http://"), host)
		_, port, _ := net.SplitHostPort(listen)
		return "http://" + host + ":" + port
	}
	s.wwwURL, s.adminURL = proxy(s.www, wwwHost), proxy(s.admin, adminHost)
	_, port, _ := net.SplitHostPort(s.idp.Addr)
	s.idpURL = "http://" + idpHost + ":" + port
	return s
}

// rulesPage is an app's page: its name and the user nginx passed on ("" for none).
func rulesPage(name string) func(http.Header) string {
	return func(h http.Header) string {
		return fmt.Sprintf(`<!doctype html><title>%s</title><h1 id="app">%s</h1><p>User: <span id="user">%s</span></p>`,
			name, name, html.EscapeString(h.Get("X-Auth-User")))
	}
}

// rulesClient is an HTTP client that resolves every name in rulesDomain to loopback and
// connects from the address from (127.0.0.1 when empty); it shows redirects, not follows them.
func rulesClient(t *testing.T, from string, jar http.CookieJar) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && (host == rulesDomain || strings.HasSuffix(host, "."+rulesDomain)) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c := client(jar)
	c.Transport = tr
	return c
}

// rulesBrowser is Chromium with rulesDomain's names mapped to loopback.
func rulesBrowser(t *testing.T, s *rulesStack) *proctest.Browser {
	br := proctest.NewBrowser(t, 30*time.Second, chromedp.Flag("host-resolver-rules", "MAP *."+rulesDomain+" 127.0.0.1"))
	br.Context = func() string { return "the IdP's log:\n" + s.idp.Log() }
	return br
}

// The edge test: nginx in front of two apps, the IdP's access rules deciding — a
// bypass path anyone reaches, a host for a group only, a path that asks for two factors, a
// path refused to a network — with Chromium signing in as a member and as a non-member, and
// the member stepping up with a TOTP code the test computes from the secret the account page
// shows.
func TestEdgeRulesThroughNginx(t *testing.T) {
	need(t, "chromium") // before starting anything
	s := startRulesStack(t)
	signupAndToken(t, s.idp.URL, "alice") // a member of admins
	bobToken, _ := signupAndToken(t, s.idp.URL, "bob")
	for _, args := range [][]string{{"add", "admins"}, {"add-member", "admins", "alice"}} {
		if out, err := proctest.Run(idpBin, append(append([]string{"groups"}, args...), "--url", s.idp.URL, "--admin-token", rulesAdmin)); err != nil {
			t.Fatalf("idp groups %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	t.Run("plain clients", func(t *testing.T) {
		anon, office := rulesClient(t, "", nil), rulesClient(t, officeAddr, nil)
		// The bypass path: no session at all, and the identity a client forges is dropped.
		resp, body := get(t, anon, s.wwwURL+"/public/news?page=2", "X-Auth-User", "root", "Remote-User", "root", "Remote-Groups", "admins", "Remote-Email", "ceo@example.com")
		if resp.StatusCode != 200 || !strings.Contains(body, `<span id="user"></span>`) {
			t.Fatalf("the bypass path without a session: %d %s", resp.StatusCode, body)
		}
		reqs := s.www.requests()
		if h := reqs[len(reqs)-1]; h.Get("X-Auth-User") != "" || h.Get("Remote-User") != "" || h.Get("X-Auth-Subject") != "" ||
			h.Get("Remote-Groups") != "" || h.Get("Remote-Email") != "" {
			t.Fatalf("the app saw identity headers on the bypass path: %v", h)
		}
		// App one's nginx serves app one's host only: a request naming app two's host, in the
		// Host header or in an absolute request line beside app one's Host, is refused there,
		// never judged by app two's rules (which let any admin in with one factor).
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.wwwURL, "http://"))
		for _, req := range []string{
			"GET /admin/ HTTP/1.1\r\nHost: " + adminHost + ":" + port + "\r\nConnection: close\r\n\r\n",
			"GET http://" + adminHost + ":" + port + "/admin/ HTTP/1.1\r\nHost: " + wwwHost + ":" + port + "\r\nConnection: close\r\n\r\n",
		} {
			if status := rawStatus(t, "127.0.0.1:"+port, req); status != "421" {
				t.Errorf("app one's nginx, asked for app two's host: %s, want 421\n%q", status, req)
			}
		}
		// Beside it, app one wants a sign-in.
		if resp, _ := get(t, anon, s.wwwURL+"/news"); resp.StatusCode != 302 || !strings.Contains(resp.Header.Get("Location"), "/login?rd=") {
			t.Fatalf("app one without a session: %d %q, want the login page", resp.StatusCode, resp.Header.Get("Location"))
		}
		// The ops area is refused to the guest network (127.0.0.1) and open from elsewhere.
		auth := []string{"Authorization", "Bearer " + bobToken}
		if resp, _ := get(t, anon, s.wwwURL+"/ops/status", auth...); resp.StatusCode != 403 {
			t.Errorf("the ops area from the guest network: %d, want 403", resp.StatusCode)
		}
		if resp, body := get(t, office, s.wwwURL+"/ops/status", auth...); resp.StatusCode != 200 || !strings.Contains(body, ">bob<") {
			t.Errorf("the ops area from %s: %d %s, want bob's page", officeAddr, resp.StatusCode, body)
		}
		// App two is for admins only, from anywhere: a non-member's token gets the 403, and a
		// non-member's browser session the login page's "not allowed" (a 403 too), not the form.
		if resp, _ := get(t, office, s.adminURL+"/", auth...); resp.StatusCode != 403 {
			t.Errorf("app two, a non-member's token: %d, want 403", resp.StatusCode)
		}
		jar, _ := cookiejar.New(nil)
		bob := rulesClient(t, "", jar)
		if resp := browserLogin(t, bob, s.adminURL, "bob", "correct-horse-9", s.adminURL+"/reports"); resp.StatusCode != 303 {
			t.Fatalf("bob's sign-in at app two: %d", resp.StatusCode)
		}
		resp, _ = get(t, bob, s.adminURL+"/reports")
		to := resp.Header.Get("Location")
		if resp.StatusCode != 302 || !strings.HasPrefix(to, s.adminURL+"/login?rd=") {
			t.Fatalf("app two, a non-member's session: %d → %q, want the login page", resp.StatusCode, to)
		}
		if resp, body := get(t, bob, to); resp.StatusCode != 403 || !strings.Contains(body, `id="denied"`) || strings.Contains(body, `name="password"`) {
			t.Fatalf("the login page for a signed-in non-member: %d\n%s\nwant 403, \"not allowed\" and no form", resp.StatusCode, body)
		}
	})

	t.Run("non-member in Chromium", func(t *testing.T) {
		br := rulesBrowser(t, s)
		step, value := br.Step, br.Value
		public := s.wwwURL + "/public/welcome"
		step("open the public page", chromedp.Navigate(public), chromedp.WaitVisible(`#app`))
		if url, user := value(chromedp.Location()), value(chromedp.Text(`#user`)); url != public || user != "" {
			t.Fatalf("the public page: at %s showing user %q; want %s and no one", url, user, public)
		}
		before := len(s.admin.requests())
		step("open app two", chromedp.Navigate(s.adminURL+"/reports"), chromedp.WaitVisible(`#username`))
		// Signed in, bob is not an admin: the login page says "not allowed" and asks for nothing.
		step("sign in",
			chromedp.SendKeys(`#username`, "bob"),
			chromedp.SendKeys(`#password`, "correct-horse-9"),
			chromedp.Click(`button[type=submit]`),
			chromedp.WaitVisible(`#denied`),
		)
		notAllowed := func(where string) {
			t.Helper()
			url, title, page := value(chromedp.Location()), value(chromedp.Title()), value(chromedp.OuterHTML("html"))
			if !strings.Contains(url, "/login?rd=") || title != "Not allowed" || !strings.Contains(page, "<strong>bob</strong>") || strings.Contains(page, `name="password"`) {
				t.Fatalf("%s: at %s, %q; want the login page's \"not allowed\" for bob, without a form:\n%s", where, url, title, page)
			}
		}
		notAllowed("app two")
		if n := len(s.admin.requests()); n != before {
			t.Fatalf("app two was reached %d times by a non-member", n-before)
		}
		step("open app one's admin area", chromedp.Navigate(s.wwwURL+"/admin/users"), chromedp.WaitVisible(`#denied`))
		notAllowed("app one's admin area")
		step("open app one", chromedp.Navigate(s.wwwURL+"/news"), chromedp.WaitVisible(`#app`))
		if user := value(chromedp.Text(`#user`)); user != "bob" {
			t.Fatalf("app one shows %q, want bob", user)
		}
	})

	t.Run("member in Chromium", func(t *testing.T) {
		br := rulesBrowser(t, s)
		step, value := br.Step, br.Value
		admin := s.wwwURL + "/admin/users?sort=name"
		step("open app one's admin area", chromedp.Navigate(admin), chromedp.WaitVisible(`#username`))
		// A password is one factor: alice, with no second factor yet, is told to set one up.
		step("sign in",
			chromedp.SendKeys(`#username`, "alice"),
			chromedp.SendKeys(`#password`, "correct-horse-9"),
			chromedp.Click(`button[type=submit]`),
			chromedp.WaitVisible(`#setup`),
		)
		if url := value(chromedp.Location()); !strings.HasPrefix(url, s.wwwURL+"/login/stepup?rd=") {
			t.Fatalf("the admin area with one factor and none to add: at %s, want the step-up page", url)
		}
		// One factor is enough for app two, which is the admins' alone.
		step("open app two", chromedp.Navigate(s.adminURL+"/"), chromedp.WaitVisible(`#app`))
		if app, user := value(chromedp.Text(`#app`)), value(chromedp.Text(`#user`)); app != "App two" || user != "alice" {
			t.Fatalf("app two shows %q for %q, want App two for alice", app, user)
		}
		// The ops area is refused to the guest network, signed in or not: "not allowed".
		step("open the ops area", chromedp.Navigate(s.wwwURL+"/ops/status"), chromedp.WaitVisible(`#denied`))

		// alice turns on an authenticator app on the IdP's own page, which keeps her session.
		step("set up an authenticator app",
			chromedp.Navigate(s.idpURL+"/account/passkeys"),
			chromedp.Click(`#setup-totp`),
			chromedp.WaitVisible(`#totp-secret`),
		)
		secret := value(chromedp.Text(`#totp-secret`))
		proctest.Secret(secret)
		code, err := totp.GenerateCode(secret, time.Now())
		if err != nil {
			t.Fatalf("the page's key is not a TOTP secret: %v", err)
		}
		step("turn it on", chromedp.SendKeys(`#totp-code`, code), chromedp.Click(`#confirm-totp`), chromedp.WaitVisible(`#recovery-codes`))

		// Now the admin area asks for a code. The IdP accepts each 30-second step once and
		// allows a clock one step ahead: the next step's code is new, without waiting for it.
		step("open the admin area again", chromedp.Navigate(admin), chromedp.WaitVisible(`#otp`))
		if url := value(chromedp.Location()); !strings.HasPrefix(url, s.wwwURL+"/login/stepup?rd=") {
			t.Fatalf("the admin area with one factor: at %s, want the step-up page", url)
		}
		code, _ = totp.GenerateCode(secret, time.Now().Add(30*time.Second))
		step("enter the code", chromedp.SendKeys(`#otp`, code), chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#app`))
		if url, user := value(chromedp.Location()), value(chromedp.Text(`#user`)); url != admin || user != "alice" {
			t.Fatalf("after the step-up: at %s showing %q; want %s showing alice", url, user, admin)
		}
	})
}

// rawStatus sends req as written to addr and reads the answer's status code: a request Go's
// client would not send (an absolute request line beside another Host).
func rawStatus(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if f := strings.Fields(line); err == nil && len(f) >= 2 {
		return f[1]
	}
	return fmt.Sprintf("no answer (%v)", err)
}
