package proctest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
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
)

// OIDCProvider is panva's oidc-provider (npm), a certified OpenID provider, run by a test as
// the upstream of an oidc connector: its script and pinned package.json live in dir (e.g.
// idp/testdata/oidc-provider), installed with npm ci into dir's node_modules on first use.
type OIDCProvider struct {
	Issuer       string // http://127.0.0.1:PORT
	ClientID     string // jwtidp
	ClientSecret string
	log          *LogBuffer
}

// Log is what the provider printed.
func (p *OIDCProvider) Log() string { return p.log.String() }

var npmOnce sync.Map // dir → *sync.Once

// NodePackages is node's path once dir's pinned packages (package.json and its lock) are
// installed in dir's node_modules (npm ci, once per test binary, when pkg is missing there). It
// skips (or fails under JWTIDP_REQUIRE_INTEGRATION) without node and npm.
func NodePackages(t testing.TB, dir, pkg string) string {
	t.Helper()
	node := Need(t, "node")
	Need(t, "npm")
	npmCI(t, dir, pkg)
	return node
}

// npmCI installs dir's pinned packages once per test binary when node_modules lacks pkg.
func npmCI(t testing.TB, dir, pkg string) {
	t.Helper()
	once, _ := npmOnce.LoadOrStore(dir, &sync.Once{})
	var err error
	once.(*sync.Once).Do(func() {
		if _, statErr := os.Stat(filepath.Join(dir, "node_modules", pkg)); statErr == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		var out []byte
		if out, err = cmd.CombinedOutput(); err != nil {
			err = fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "node_modules", pkg)); statErr != nil {
		t.Fatalf("npm ci in %s did not install %s (an earlier attempt failed?)", dir, pkg)
	}
}

// StartOIDCProvider starts oidc-provider on port (FreePort) with one client, jwtidp, whose only
// redirect URI is redirectURI; every account is in groups. It skips (or fails under
// JWTIDP_REQUIRE_INTEGRATION) without node and npm, and stops when the test ends.
func StartOIDCProvider(t testing.TB, dir string, port int, redirectURI string, groups ...string) *OIDCProvider {
	t.Helper()
	node := Need(t, "node")
	Need(t, "npm")
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	npmCI(t, dir, "oidc-provider")
	p := &OIDCProvider{ClientID: "jwtidp", ClientSecret: "upstream-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36), log: &LogBuffer{}}
	Secret(p.ClientSecret)
	if len(groups) == 0 {
		groups = []string{"devs", "ops"}
	}
	cmd := exec.Command(node, "provider.js")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "PORT="+strconv.Itoa(port), "REDIRECT_URI="+redirectURI,
		"CLIENT_SECRET="+p.ClientSecret, "GROUPS="+strings.Join(groups, ","), "NODE_ENV=test")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.log.Write([]byte(line + "\n"))
			if rest, ok := strings.CutPrefix(line, "ready "); ok {
				select {
				case ready <- rest:
				default:
				}
			}
		}
	}()
	select {
	case p.Issuer = <-ready:
	case <-done:
		t.Fatalf("oidc-provider exited before listening:\n%s", p.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider did not listen within 30s:\n%s", p.log.String())
	}
	return p
}

// SignIn follows a browser's way from start (a URL that leads to the provider) through the
// provider's own login and consent forms (devInteractions) as login, with c (which keeps
// cookies and follows redirects), and returns the first answer from off the provider.
func (p *OIDCProvider) SignIn(t testing.TB, c *http.Client, start, login string) *http.Response {
	t.Helper()
	action := regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	resp, err := c.Get(start)
	for step := 0; ; step++ {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.Request.URL.String(), p.Issuer+"/") {
			return resp
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := action.FindSubmatch(body)
		if m == nil || step == 4 {
			t.Fatalf("no way on at %s (%d): %s", resp.Request.URL, resp.StatusCode, body)
		}
		to, _ := resp.Request.URL.Parse(string(m[1]))
		form := url.Values{"prompt": {"consent"}}
		if strings.Contains(string(body), `name="login"`) {
			form = url.Values{"prompt": {"login"}, "login": {login}, "password": {"anything"}}
		}
		resp, err = c.PostForm(to.String(), form)
	}
}
