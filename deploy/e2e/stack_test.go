package e2e

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

var idpBin, wiBin string

func TestMain(m *testing.M) {
	proctest.Main(m, map[*string]string{&idpBin: "jwtidp/idp", &wiBin: "jwtidp/workitems"})
}

// need skips the test when a tool is missing, or fails it where integration is required.
func need(t *testing.T, tool string) string { return proctest.Need(t, tool) }

// app is the upstream behind the proxy: it shows who is logged in and records what reached it.
type app struct {
	srv *httptest.Server
	mu  sync.Mutex
	hdr []http.Header
}

// forwardAuthPage is the page of the app behind forward auth: the user the proxy named, and a
// plain "log out" button.
func forwardAuthPage(h http.Header) string {
	return fmt.Sprintf(`<!doctype html><title>App</title><p>Hello, <span id="user">%s</span></p>
<form method="post" action="/logout"><button id="logout" type="submit">Log out</button></form>`,
		html.EscapeString(h.Get("X-Auth-User")))
}

func newApp(t *testing.T) *app { return newAppWith(t, forwardAuthPage) }

// newAppWith is an app whose page page makes from the request's headers.
func newAppWith(t *testing.T, page func(http.Header) string) *app {
	a := &app{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hdr = append(a.hdr, r.Header.Clone())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page(r.Header))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) requests() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.hdr...)
}

type stack struct {
	idp   *proctest.Proc
	app   *app
	proxy string // http://127.0.0.1:port
}

// startNginx runs nginx with deploy/nginx/nginx.conf, its addresses pointed at this test's
// servers, and returns its base URL.
func startNginx(t *testing.T, listen, idpAddr, appAddr string) string {
	t.Helper()
	return startNginxFor(t, listen, idpAddr, appAddr, "127.0.0.1 localhost")
}

// startNginxFor is startNginx for an app whose host names are names (space-separated).
func startNginxFor(t *testing.T, listen, idpAddr, appAddr, names string) string {
	t.Helper()
	return runNginx(t, "../nginx/nginx.conf", listen, map[string]string{
		"server 127.0.0.1:8080;":                "server " + idpAddr + ";",
		"server 127.0.0.1:9000;":                "server " + appAddr + ";",
		"listen 127.0.0.1:8000 default_server;": "listen " + listen + " default_server;",
		"listen 127.0.0.1:8000;":                "listen " + listen + ";",
		"server_name 127.0.0.1 localhost;":      "server_name " + names + ";",
	})
}

// runNginx runs nginx with the config file at path, after the given replacements (each must
// be found, so the test notices when the config drifts).
func runNginx(t *testing.T, path, listen string, replace map[string]string) string {
	t.Helper()
	bin := need(t, "nginx")
	conf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := string(conf)
	for old, repl := range replace {
		if !strings.Contains(c, old) {
			t.Fatalf("%s no longer has %q", path, old)
		}
		c = strings.Replace(c, old, repl, 1)
	}
	dir := t.TempDir()
	path = filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	startServer(t, "nginx", cmd, dir, 10*time.Second, func() bool { return proctest.Listening(listen, 0) })
	return "http://" + listen
}

// fileLog reads the log file at path, registered with the secret-leak check under name; what
// it holds when the test ends is kept, so the check (after every test, its files gone) still
// reads it.
func fileLog(t *testing.T, name, path string) func() string {
	var mu sync.Mutex
	var kept *string
	read := func() string {
		mu.Lock()
		defer mu.Unlock()
		if kept != nil {
			return *kept
		}
		b, _ := os.ReadFile(path)
		return string(b)
	}
	t.Cleanup(func() { // before t.TempDir's removal, which was registered earlier
		s := read()
		mu.Lock()
		kept = &s
		mu.Unlock()
	})
	proctest.RememberLog(name, read)
	return read
}

// startServer starts cmd, a server nobody here wrote, in its own process group with its output
// in a file in dir (a file, not a pipe: workers that inherit it would keep Wait waiting on a
// pipe), registered with the secret-leak check under name; it is stopped at the test's end
// (SIGTERM, then SIGKILL to the group after 5 s). It waits up to timeout for up, failing the
// test with the output if the server exits or never comes up, and returns the output's reader.
func startServer(t *testing.T, name string, cmd *exec.Cmd, dir string, timeout time.Duration, up func() bool) (output func() string) {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	output = fileLog(t, name, out.Name())
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // nginx's master stops its workers
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		out.Close()
	})
	ok := proctest.Eventually(timeout, func() bool {
		select {
		case <-done:
			return false
		default:
		}
		return up()
	})
	if !ok {
		t.Fatalf("%s did not come up:\n%s", name, output())
	}
	return output
}

// startStack runs the IdP (allowing logins to return to the proxy), the app and nginx.
func startStack(t *testing.T, idpArgs ...string) *stack {
	t.Helper()
	need(t, "nginx")
	s := &stack{app: newApp(t)}
	listen := proctest.FreeAddr(t)
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--redirect-hosts", listen, "--trusted-proxies", "127.0.0.1"}, proctest.FastArgon...)
	s.idp = proctest.Start(t, idpBin, append(args, idpArgs...))
	s.proxy = startNginx(t, listen, s.idp.Addr, strings.TrimPrefix(s.app.srv.URL, "http://"))
	return s
}
