package e2e

import (
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// startCaddy runs caddy with deploy/caddy/Caddyfile pointed at this test's servers.
func startCaddy(t *testing.T, listen, idpAddr, appAddr string) string {
	t.Helper()
	bin := need(t, "caddy")
	conf, err := os.ReadFile("../caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	c := string(conf)
	for old, repl := range map[string]string{"127.0.0.1:8080": idpAddr, "127.0.0.1:9000": appAddr, "http://127.0.0.1:8000": "http://" + listen} {
		if !strings.Contains(c, old) {
			t.Fatalf("deploy/caddy/Caddyfile no longer has %q", old)
		}
		c = strings.ReplaceAll(c, old, repl)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	os.WriteFile(path, []byte(c), 0o644)
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	startServer(t, "caddy", cmd, dir, 15*time.Second, func() bool { return proctest.Listening(listen, 0) })
	return "http://" + listen
}

func TestCaddyForwardAuth(t *testing.T) {
	need(t, "caddy")
	a := newApp(t)
	listen := proctest.FreeAddr(t)
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--redirect-hosts", listen, "--trusted-proxies", "127.0.0.1"}, proctest.FastArgon...)
	idp := proctest.Start(t, idpBin, args)
	proxy := startCaddy(t, listen, idp.Addr, strings.TrimPrefix(a.srv.URL, "http://"))
	c := client(nil)

	resp, _ := get(t, c, proxy+"/reports?x=1")
	if resp.StatusCode != 302 || !strings.Contains(resp.Header.Get("Location"), "/login?rd=") {
		t.Fatalf("no session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	access, _ := signupAndToken(t, idp.URL, "gus")
	resp, body := get(t, c, proxy+"/hello", "Authorization", "Bearer "+access, "X-Auth-User", "root", "Remote-User", "root",
		"Remote-Groups", "admins", "Remote-Email", "ceo@example.com")
	if resp.StatusCode != 200 || !strings.Contains(body, ">gus<") {
		t.Fatalf("bearer: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, proxy+"/hello", "Authorization", "Bearer forged.token.here"); resp.StatusCode != 401 {
		t.Fatalf("forged bearer: %d, want 401", resp.StatusCode)
	}
	// A forged identity without any token never reaches the app either.
	if resp, _ := get(t, c, proxy+"/hello", "X-Auth-User", "root"); resp.StatusCode != 302 {
		t.Fatalf("forged header alone: %d", resp.StatusCode)
	}

	jar, _ := cookiejar.New(nil)
	bc := client(jar)
	if r := browserLogin(t, bc, proxy, "gus", "correct-horse-9", proxy+"/page"); r.StatusCode != 303 || r.Header.Get("Location") != proxy+"/page" {
		t.Fatalf("login: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	pu, _ := url.Parse(proxy)
	var session string
	for _, ck := range jar.Cookies(pu) {
		if ck.Name == "jwtidp_session" {
			session = ck.Value
		}
	}
	// Two copies of the session cookie are no session (one may have been planted)…
	if resp, _ = get(t, bc, proxy+"/page", "Cookie", "theme=dark; jwtidp_session="+session); resp.StatusCode != 302 {
		t.Fatalf("two session cookies through caddy: %d, want the login redirect", resp.StatusCode)
	}
	// …and with a bearer token beside them, every copy is still hidden from the app.
	if resp, _ = get(t, bc, proxy+"/page", "Cookie", "jwtidp_session="+session+"; theme=dark", "Authorization", "Bearer "+access); resp.StatusCode != 200 {
		t.Fatalf("bearer with two session cookies: %d", resp.StatusCode)
	}
	resp, body = get(t, bc, proxy+"/page", "Cookie", "theme=dark")
	if resp.StatusCode != 200 || !strings.Contains(body, ">gus<") {
		t.Fatalf("session through caddy: %d %s", resp.StatusCode, body)
	}
	for _, h := range a.requests() {
		// gus is in no group and has no verified address: a client's copies of those are gone.
		if ck := h.Get("Cookie"); h.Get("X-Auth-User") != "gus" || h.Get("Remote-User") != "gus" || strings.Contains(ck, session) ||
			h.Get("Remote-Groups") != "" || h.Get("Remote-Email") != "" {
			t.Fatalf("the app saw %v", h)
		}
	}
}
