// Package proctest builds this module's binaries and runs them as a user would, on port 0 with
// a temporary data folder, for end-to-end tests. It is imported by tests only.
package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"jwtidp/shared/freeport"
)

// Build compiles the package at pkg (e.g. "jwtidp/idp") into dir and returns the binary's path.
func Build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	tags, cgo := buildTags()
	cmd := exec.Command("go", "build", "-tags", tags, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	files, err := exec.Command("go", "list", "-tags", tags, "-deps", "-f",
		`{{if and .Module .Module.Main}}{{range .GoFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{end}}`, pkg).Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %v", pkg, err)
	}
	sources.Lock()
	sources.files = append(sources.files, strings.Fields(string(files))...)
	sources.Unlock()
	return out, nil
}

// buildTags are the build tags this test binary was built with (go test -tags …), and its
// CGO_ENABLED, so the binaries it builds are the same build: with cgo they load libcrypto and
// sign through OpenSSL as the in-process IdPs do (--signer auto), without it they sign with Go.
func buildTags() (tags, cgo string) {
	cgo = "0"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "-tags":
				tags = s.Value
			case "CGO_ENABLED":
				cgo = s.Value
			}
		}
	}
	return tags, cgo
}

// sources are the module's files the built binaries are made of. Go's test cache knows the
// files a test opens, not what a subprocess it runs was built from, so the first test that runs
// a binary opens them all (readSources): a change to any of them then reruns the package's
// tests, as a change to its own code does, and `go test` needs no -count=1.
var sources struct {
	sync.Mutex
	files []string
	once  sync.Once
}

func readSources() {
	sources.once.Do(func() {
		sources.Lock()
		defer sources.Unlock()
		for _, f := range sources.files {
			if fh, err := os.Open(f); err == nil {
				fh.Close()
			}
		}
	})
}

// Proc is a running binary.
type Proc struct {
	Cmd  *exec.Cmd
	Addr string // host:port it listens on
	URL  string // http://Addr
	log  *LogBuffer
	done chan struct{}
	err  error
}

// Log returns everything the process has written to stderr so far.
func (p *Proc) Log() string { return p.log.String() }

// WaitLog waits until cond holds of the process's stderr so far, checking it at once and after
// each line the process writes, and reports whether it held within timeout. A line reaches Log
// through a pipe read by another goroutine, after the process wrote it: a test that looks for
// the line of something it just did waits with this, not with a single look.
func (p *Proc) WaitLog(timeout time.Duration, cond func(log string) bool) bool {
	return p.log.Wait(timeout, cond)
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// Start runs bin with args and extra environment, waits for its "listening" log line and stops
// it when the test ends (end).
func Start(t testing.TB, bin string, args []string, env ...string) *Proc {
	t.Helper()
	p, err := StartErr(bin, args, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.end)
	return p
}

// end stops the process as a service manager would, unless it has exited: SIGTERM, and SIGKILL
// when it is still running 5 s later. A service writes its log lines from a goroutine of its
// own (service.lineWriter), so a stop it handles is what brings every line it logged into Log,
// and LeakedSecrets; a kill can cut off the last.
func (p *Proc) end() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	if p.Wait(5*time.Second) != nil {
		p.Kill()
	}
}

// StartErr is Start without a test: it returns an error when the process exits or does not
// listen within 30 s.
func StartErr(bin string, args []string, env ...string) (*Proc, error) {
	readSources()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = io.Discard
	p := &Proc{Cmd: cmd, log: &LogBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.log.WriteLine(line)
			if m := listening.FindStringSubmatch(line); m != nil && !sent {
				addrc <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	select {
	case p.Addr = <-addrc:
		p.URL = "http://" + p.Addr
		remember(p)
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before listening: %v\n%s", filepath.Base(bin), p.err, p.log.String())
	case <-time.After(30 * time.Second):
		p.Kill()
		return nil, fmt.Errorf("%s did not listen within 30s\n%s", filepath.Base(bin), p.log.String())
	}
}

// cleanEnv drops the services' own variables from the test's environment, so a developer's
// settings cannot change what a test runs. JWTIDP_TEST_SIGNER, which CI sets to run the suite
// once per signer, becomes the IdP's IDP_SIGNER (the in-process IdPs take it as --signer's
// default).
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "IDP_") || strings.HasPrefix(kv, "WORKITEMS_") {
			continue
		}
		out = append(out, kv)
	}
	if s := os.Getenv("JWTIDP_TEST_SIGNER"); s != "" {
		out = append(out, "IDP_SIGNER="+s)
	}
	return out
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits for the process to exit (at most timeout) and returns its exit error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("process did not exit within %s", timeout)
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *Proc) Stop() error {
	p.Signal(syscall.SIGTERM)
	return p.Wait(20 * time.Second)
}

// Kill ends the process at once (kill -9) and waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Kill()
	<-p.done
}

// Run runs bin to completion and returns its combined output and exit error.
func Run(bin string, args []string, env ...string) (string, error) {
	readSources()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// LogBuffer is a log a program writes while a test reads it: a binary's stderr (Proc) or an
// in-process service's output (servicetest.Instance). Wait waits on its writes, not a timer.
type LogBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{} // closed by the next write; nil until someone waits
}

// Write appends p (an in-process logger writes a line at a time) and wakes any Wait.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	b.wake()
	return n, err
}

// WriteLine appends s and a newline, and wakes any Wait.
func (b *LogBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
	b.buf.WriteByte('\n')
	b.wake()
}

func (b *LogBuffer) wake() {
	if b.more != nil {
		close(b.more)
		b.more = nil
	}
}

// snapshot is the buffer so far and a channel closed when the next write comes.
func (b *LogBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.more == nil {
		b.more = make(chan struct{})
	}
	return b.buf.String(), b.more
}

// String is the log so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Wait waits until cond holds of the log so far, checking it at once and after each write,
// and reports whether it held within timeout.
func (b *LogBuffer) Wait(timeout time.Duration, cond func(log string) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		log, more := b.snapshot()
		if cond(log) {
			return true
		}
		select {
		case <-more:
		case <-deadline.C:
			return false
		}
	}
}

// Eventually checks cond until it holds or timeout passes, and reports whether it held. It is
// the one place the tests poll: for what has no event to wait on (another process's port or
// readiness, a counter kept elsewhere; a log line has one: Proc.WaitLog, Instance.WaitLog); it checks
// at once, then every 10ms.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// WaitReady polls url+"/readyz" until it answers 200 or timeout passes.
func WaitReady(url string, timeout time.Duration) error {
	var err error
	ok := Eventually(timeout, func() bool {
		var resp *http.Response
		resp, err = http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		return fmt.Errorf("%s not ready within %s (last: %v)", url, timeout, err)
	}
	return nil
}

// Listening waits until addr accepts a TCP connection, or timeout passes.
func Listening(addr string, timeout time.Duration) bool {
	return Eventually(timeout, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// FastArgon are argon2id settings that keep end-to-end tests quick; the defaults are tested
// where cost matters.
var FastArgon = []string{"--argon2-memory", "1024", "--argon2-time", "1"}

// The secrets the tests used (passwords, tokens) and the log of every process and in-process
// service they started, so that after the whole suite LeakedSecrets can look for any secret in
// any log.
var registry struct {
	sync.Mutex
	logs    []namedLog
	secrets map[string]bool
}

type namedLog struct {
	name string
	log  func() string
}

func remember(p *Proc) { RememberLog(filepath.Base(p.Cmd.Path), p.Log) }

// RememberLog adds a log to those LeakedSecrets searches: servicetest adds each service it
// runs in the test's process, name saying which in a report.
func RememberLog(name string, log func() string) {
	registry.Lock()
	defer registry.Unlock()
	registry.logs = append(registry.logs, namedLog{name, log})
}

// Secret records values that must never appear in a log.
func Secret(values ...string) {
	registry.Lock()
	defer registry.Unlock()
	if registry.secrets == nil {
		registry.secrets = map[string]bool{}
	}
	for _, v := range values {
		if len(v) >= 8 {
			registry.secrets[v] = true
		}
	}
}

// LeakedSecrets lists each recorded secret found in the log of any process the tests ran.
func LeakedSecrets() []string {
	registry.Lock()
	defer registry.Unlock()
	var leaks []string
	for _, l := range registry.logs {
		log := l.log()
		for s := range registry.secrets {
			if strings.Contains(log, s) {
				leaks = append(leaks, fmt.Sprintf("%s… (%d bytes) in the log of %s", s[:4], len(s), l.name))
			}
		}
	}
	return leaks
}

// CheckLogs is for TestMain, after m.Run: it fails the run when any secret reached any log.
func CheckLogs(code int) int {
	leaks := LeakedSecrets()
	for _, l := range leaks {
		fmt.Fprintln(os.Stderr, "secret leaked:", l)
	}
	if len(leaks) > 0 && code == 0 {
		return 1
	}
	return code
}

// Need returns the path of an external tool a test uses (nginx, chromium, bash…). When it is
// missing the test skips — or fails where JWTIDP_REQUIRE_INTEGRATION is set, as in CI, so CI
// never skips silently. This is the one place that rule lives.
func Need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("JWTIDP_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("%s is not installed and JWTIDP_REQUIRE_INTEGRATION is set", tool)
		}
		t.Skipf("%s is not installed", tool)
	}
	return p
}

// Integration reports a missing capability other than a tool (a bind mount, say) the same way.
func Integration(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("JWTIDP_REQUIRE_INTEGRATION") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// Main is a TestMain for end-to-end packages: it builds each package into *dst (e.g.
// {&idpBin: "jwtidp/idp"}), runs the tests, then fails the run if any secret reached a log.
func Main(m *testing.M, binaries map[*string]string) {
	dir, err := os.MkdirTemp("", "jwtidp-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for dst, pkg := range binaries {
		if *dst, err = Build(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := CheckLogs(m.Run())
	os.RemoveAll(dir)
	os.Exit(code)
}

// FreePort is a port on 127.0.0.1 that nothing listens on now, for a server that must be told
// its port before it starts: freeport.Loopback, below the ephemeral range.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddr is FreePort as host:port (freeport.LoopbackAddr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.LoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
