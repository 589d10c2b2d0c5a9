package e2e

import (
	"fmt"
	"html"
	"io"
	"net"
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

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

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
	return runNginx(t, "../nginx/nginx.conf", listen, map[string]string{
		"server 127.0.0.1:8080;": "server " + idpAddr + ";",
		"server 127.0.0.1:9000;": "server " + appAddr + ";",
		"listen 127.0.0.1:8000;": "listen " + listen + ";",
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
	// A file, not a pipe: nginx's workers inherit it, and a pipe would keep Wait waiting on them.
	logf, err := os.Create(filepath.Join(dir, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // the master stops its workers
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	})
	base := "http://" + listen
	if !proctest.Listening(listen, 10*time.Second) {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("nginx did not listen: %s", b)
	}
	return base
}

// startStack runs the IdP (allowing logins to return to the proxy), the app and nginx.
func startStack(t *testing.T, idpArgs ...string) *stack {
	t.Helper()
	need(t, "nginx")
	s := &stack{app: newApp(t)}
	listen := freeAddr(t)
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--redirect-hosts", listen, "--trusted-proxies", "127.0.0.1"}, proctest.FastArgon...)
	s.idp = proctest.Start(t, idpBin, append(args, idpArgs...))
	s.proxy = startNginx(t, listen, s.idp.Addr, strings.TrimPrefix(s.app.srv.URL, "http://"))
	return s
}
