package main

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// fakeDiscovery is an upstream that answers discovery and nothing else well: its token
// endpoint fails, as a provider in trouble does.
func fakeDiscovery(t *testing.T) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/auth",
				"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/jwks"})
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// upstreamConfig is a configuration file with oidc connectors (id → issuer), their client
// secret in a file.
func upstreamConfig(t *testing.T, secret string, extra string, issuers ...string) string {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	writeFile(t, secretFile, secret+"\n")
	var b strings.Builder
	b.WriteString("admin_token: upstream-admin-token\nconnectors:\n")
	for i := 0; i+1 < len(issuers); i += 2 {
		b.WriteString("  - id: " + issuers[i] + "\n    type: oidc\n    name: " + strings.ToUpper(issuers[i][:1]) + issuers[i][1:] + "\n" +
			"    issuer: " + issuers[i+1] + "\n    client_id: jwtidp\n    client_secret_file: " + secretFile + "\n" +
			"    scopes: [openid, profile, email, groups]\n    claims: {username: preferred_username, email: email, groups: groups}\n" + extra)
	}
	path := filepath.Join(dir, "idp.yaml")
	writeFile(t, path, b.String())
	return path
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, u string, cookies ...*http.Cookie) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func setCookie(a answer, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestUpstreamCallbackRefusals: the flow's start and callback refuse what is not this
// browser's flow (no cookie, another state, a forged cookie) with a 400 page and no session;
// an upstream that is down or failing is a clear page with the way back, recorded in
// /admin/connectors, and local sign-in keeps working.
func TestUpstreamCallbackRefusals(t *testing.T) {
	up := fakeDiscovery(t)
	closed := "http://127.0.0.1:" + strconv.Itoa(proctest.FreePort(t))
	const secret = "upstream-client-secret-1"
	proctest.Secret(secret)
	p := startIDP(t, t.TempDir(), "--config", upstreamConfig(t, secret, "", "company", up.URL, "down", closed))

	page := get(t, p.URL+"/login?rd=/app")
	for _, want := range []string{`href="login/upstream/company?rd=%2Fapp"`, "Sign in with Company", "Sign in with Down"} {
		if !strings.Contains(string(page.body), want) {
			t.Fatalf("the login page lacks %s:\n%s", want, page.body)
		}
	}
	if a := get(t, p.URL+"/login/upstream/nope"); a.status != 404 {
		t.Fatalf("an unknown connector: %d", a.status)
	}
	a := get(t, p.URL+"/login/upstream/down?rd=/app")
	if a.status != 503 || !strings.Contains(string(a.body), "Down cannot be reached") || !strings.Contains(string(a.body), `href="/login?rd=%2Fapp"`) {
		t.Fatalf("an upstream that is down: %d %s", a.status, a.body)
	}

	a = get(t, p.URL+"/login/upstream/company?rd=/app")
	if a.status != 303 {
		t.Fatalf("start: %d %s", a.status, a.body)
	}
	to, _ := url.Parse(a.header.Get("Location"))
	q := to.Query()
	if !strings.HasPrefix(to.String(), up.URL+"/auth?") || q.Get("state") == "" || q.Get("nonce") == "" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("redirect_uri") != p.URL+"/login/upstream/company/callback" {
		t.Fatalf("the way to the upstream: %s", to)
	}
	ck := setCookie(a, "jwtidp_upstream")
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/login/upstream/company/callback" || ck.MaxAge <= 0 || ck.MaxAge > 900 {
		t.Fatalf("the state cookie: %+v", ck)
	}
	if strings.Contains(ck.Value, q.Get("nonce")) {
		t.Fatal("the cookie carries the nonce in the clear")
	}
	state := q.Get("state")
	callback := p.URL + "/login/upstream/company/callback?code=c&state="
	noSession := func(what string, a answer, status int) {
		t.Helper()
		if a.status != status {
			t.Fatalf("%s: %d, want %d: %s", what, a.status, status, a.body)
		}
		for _, c := range (&http.Response{Header: a.header}).Cookies() {
			if c.Name == "jwtidp_session" || c.Name == "jwtidp_pending" {
				t.Fatalf("%s set %s", what, c.Name)
			}
		}
	}
	noSession("no cookie", get(t, callback+url.QueryEscape(state)), 400)
	noSession("another state", get(t, callback+"other", ck), 400)
	noSession("no state", get(t, p.URL+"/login/upstream/company/callback?code=c", ck), 400)
	forged := *ck
	forged.Value = "other" + ck.Value[strings.Index(ck.Value, "."):]
	noSession("a forged cookie", get(t, callback+"other", &forged), 400)
	noSession("another connector's cookie", get(t, p.URL+"/login/upstream/down/callback?code=c&state="+url.QueryEscape(state), ck), 400)

	a = get(t, callback+url.QueryEscape(state)+"&error=access_denied", ck)
	noSession("the upstream's error", a, 401)
	if !strings.Contains(string(a.body), "access_denied") {
		t.Fatalf("the upstream's error page: %s", a.body)
	}
	if c := setCookie(a, "jwtidp_upstream"); c == nil || c.MaxAge >= 0 {
		t.Fatalf("the state cookie was not cleared: %+v", c)
	}
	a = get(t, callback+url.QueryEscape(state), ck)
	noSession("a failing token endpoint", a, 503)
	if !strings.Contains(string(a.body), "Company cannot be reached") {
		t.Fatalf("the failing token endpoint's page: %s", a.body)
	}

	list := do(t, "GET", p.URL+"/admin/connectors", "", nil, "Authorization", "Bearer upstream-admin-token")
	if list.status != 200 || strings.Contains(string(list.body), secret) {
		t.Fatalf("/admin/connectors: %d %s", list.status, list.body)
	}
	var st struct {
		Result []map[string]any `json:"result"`
	}
	json.Unmarshal(list.body, &st)
	if len(st.Result) != 2 || st.Result[0]["id"] != "company" || st.Result[0]["last_error"] == nil || st.Result[1]["last_error"] == nil || st.Result[0]["type"] != "oidc" {
		t.Fatalf("/admin/connectors: %s", list.body)
	}
	if a := do(t, "GET", p.URL+"/admin/connectors", "", nil); a.status != 401 && a.status != 404 {
		t.Fatalf("/admin/connectors without a credential: %d", a.status)
	}
	out, err := runIDP([]string{"connectors", "list", "--url", p.URL, "--admin-token", "upstream-admin-token"})
	if err != nil || !strings.Contains(out, "company\toidc\tCompany\t") || !strings.Contains(out, "down\toidc\tDown\t") || strings.Contains(out, secret) {
		t.Fatalf("idp connectors list: %v\n%s", err, out)
	}

	// Local sign-in does not care.
	signup(t, p.URL, "local-user", "correct-horse-9")
	login(t, p.URL, "local-user", "correct-horse-9")
}

// TestUpstreamLinkExisting: with link: existing, the first upstream sign-in asks for the local
// account's password (a wrong one signs nobody in), links it, and the next upstream sign-in
// goes straight through. The upstream is oidc-provider, signed in to with its own forms.
func TestUpstreamLinkExisting(t *testing.T) {
	idpAddr, upPort := "127.0.0.1:"+strconv.Itoa(proctest.FreePort(t)), proctest.FreePort(t)
	up := proctest.StartOIDCProvider(t, "testdata/oidc-provider", upPort, "http://"+idpAddr+"/login/upstream/company/callback")
	p := startIDP(t, t.TempDir(), "--addr", idpAddr, "--config", upstreamConfig(t, up.ClientSecret, "    link: existing\n", "company", up.Issuer))
	signup(t, p.URL, "kim", "correct-horse-9")

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	session := func() bool {
		for _, ck := range jar.Cookies(mustURL(p.URL)) {
			if ck.Name == "jwtidp_session" {
				return true
			}
		}
		return false
	}
	resp := up.SignIn(t, c, p.URL+"/login/upstream/company?rd=/done", "kim-upstream")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Link your account") || session() {
		t.Fatalf("the first upstream sign-in: %d at %s, session %v:\n%s", resp.StatusCode, resp.Request.URL, session(), body)
	}
	field := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("the link form has no %s", name)
		}
		return html.UnescapeString(string(m[1]))
	}
	form := url.Values{"csrf": {field("csrf")}, "rd": {field("rd")}, "ticket": {field("ticket")}, "connector": {field("connector")}, "username": {"kim"}}
	post := func(pw string) *http.Response {
		form.Set("password", pw)
		req, _ := http.NewRequest("POST", p.URL+"/login/upstream/link", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", p.URL)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("wrong-horse-9"); resp.StatusCode != 401 || session() {
		t.Fatalf("a wrong password: %d, session %v", resp.StatusCode, session())
	}
	bad := form.Get("csrf")
	form.Set("csrf", "x"+bad)
	if resp := post("correct-horse-9"); resp.StatusCode != 403 || session() {
		t.Fatalf("a wrong CSRF token: %d, session %v", resp.StatusCode, session())
	}
	form.Set("csrf", bad)
	if resp := post("correct-horse-9"); resp.Request.URL.Path != "/done" || !session() {
		t.Fatalf("the right password: %d at %s, session %v", resp.StatusCode, resp.Request.URL, session())
	}

	// Linked: a fresh browser goes straight through.
	jar, _ = cookiejar.New(nil)
	c.Jar = jar
	resp = up.SignIn(t, c, p.URL+"/login/upstream/company?rd=/done", "kim-upstream")
	resp.Body.Close()
	if resp.Request.URL.Path != "/done" || !session() {
		t.Fatalf("the second upstream sign-in: %d at %s, session %v", resp.StatusCode, resp.Request.URL, session())
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }
