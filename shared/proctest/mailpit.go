package proctest

import (
	"debug/buildinfo"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MailpitVersion is the Mailpit release .ci/run installs and the tests are written against.
const MailpitVersion = "v1.33.1"

// GoTool finds a tool `go install` puts in GOBIN or GOPATH/bin (oauth2-proxy, mailpit), or in
// PATH, and otherwise skips, or fails where integration is required, as Need does. When want is
// set and the binary says it was built from another version, the test logs it.
func GoTool(t testing.TB, tool, want string) string {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		bin = ""
		out, _ := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
		lines := strings.Split(string(out), "\n") // GOBIN's line is empty when it is not set
		var dirs []string
		if len(lines) >= 2 {
			dirs = append(dirs, strings.TrimSpace(lines[0]))
			for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
		for _, d := range dirs {
			if d == "" {
				continue
			}
			if p, err := exec.LookPath(filepath.Join(d, tool)); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		return Need(t, tool)
	}
	if info, err := buildinfo.ReadFile(bin); want != "" && err == nil && info.Main.Version != want {
		t.Logf("%s is %s %s; the tests are written for %s", bin, tool, info.Main.Version, want)
	}
	return bin
}

// Mailpit is a Mailpit SMTP server for one test, on free loopback ports with its own database.
// It accepts AUTH PLAIN with any username and password, over plain SMTP unless a flag requires
// TLS.
type Mailpit struct {
	SMTPHost string // 127.0.0.1
	SMTPPort int
	SMTPAddr string // SMTPHost:SMTPPort
	URL      string // the web UI and API, http://127.0.0.1:PORT

	t    testing.TB
	bin  string
	args []string
	log  *LogBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMailpit starts Mailpit (see GoTool for where it is looked for) and stops it when the
// test ends; extra are more command-line flags (--smtp-tls-cert, say).
func StartMailpit(t testing.TB, extra ...string) *Mailpit {
	t.Helper()
	bin := GoTool(t, "mailpit", MailpitVersion)
	smtpPort, httpPort := FreePort(t), FreePort(t)
	m := &Mailpit{
		SMTPHost: "127.0.0.1",
		SMTPPort: smtpPort,
		SMTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(smtpPort)),
		URL:      "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		t:        t,
		bin:      bin,
		log:      &LogBuffer{},
	}
	m.args = []string{
		"--smtp", m.SMTPAddr,
		"--listen", strings.TrimPrefix(m.URL, "http://"),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--smtp-auth-accept-any",
		"--smtp-disable-rdns", "--disable-version-check",
	}
	// Mailpit refuses AUTH over plain SMTP unless allowed, and refuses to allow it when TLS is
	// required (--smtp-require-starttls, --smtp-require-tls).
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--smtp-require-") }) {
		m.args = append(m.args, "--smtp-auth-allow-insecure")
	}
	m.args = append(m.args, extra...)
	t.Cleanup(m.kill)
	m.Start()
	return m
}

// Start starts Mailpit again after Stop, on the same ports and database: the messages it had
// are still there.
func (m *Mailpit) Start() {
	m.t.Helper()
	if m.running() {
		m.t.Fatal("mailpit: Start while it runs")
	}
	cmd := exec.Command(m.bin, m.args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("mailpit: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	ready := Eventually(30*time.Second, func() bool {
		if exited() {
			return true
		}
		c, err := net.Dial("tcp", m.SMTPAddr)
		if err != nil {
			return false
		}
		c.Close()
		resp, err := http.Get(m.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	switch {
	case exited():
		m.t.Fatalf("mailpit exited before listening: %v\n%s", cmd.ProcessState, m.log.String())
	case !ready:
		m.kill()
		m.t.Fatalf("mailpit did not listen on %s and %s within 30s\n%s", m.SMTPAddr, m.URL, m.log.String())
	}
}

// Stop stops Mailpit (SIGTERM) and waits until it has exited: its SMTP port then refuses
// connections until Start.
func (m *Mailpit) Stop() {
	m.t.Helper()
	if !m.running() {
		m.t.Fatal("mailpit: Stop while it is not running")
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.kill()
		m.t.Fatalf("mailpit did not exit within 20s of SIGTERM\n%s", m.log.String())
	}
}

func (m *Mailpit) running() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *Mailpit) kill() {
	if m.running() {
		m.cmd.Process.Kill()
		<-m.done
	}
}

// Log is what Mailpit has printed so far.
func (m *Mailpit) Log() string { return m.log.String() }

// MailAddress is a name and address in Mailpit's API.
type MailAddress struct {
	Name    string
	Address string
}

// MailSummary is one message in Mailpit's list (GET /api/v1/messages), newest first.
type MailSummary struct {
	ID        string // Mailpit's own id, for Message
	MessageID string // the Message-ID header, without the angle brackets
	From      MailAddress
	To        []MailAddress
	Subject   string
	Username  string // the SMTP AUTH username, if any
	Created   time.Time
	Size      int
	Snippet   string
}

// Messages lists every message Mailpit holds, newest first.
func (m *Mailpit) Messages(t testing.TB) []MailSummary {
	t.Helper()
	var list struct {
		Total    int
		Messages []MailSummary
	}
	// A message stored while the list is read can be counted in Total and missing from the
	// page: read again until the two agree.
	if !Eventually(5*time.Second, func() bool {
		m.getJSON(t, "/api/v1/messages?limit=1000", &list)
		return list.Total <= len(list.Messages)
	}) {
		t.Fatalf("mailpit holds %d messages, listed %d", list.Total, len(list.Messages))
	}
	return list.Messages
}

// Message returns one message's text and HTML bodies, decoded, and its headers.
func (m *Mailpit) Message(t testing.TB, id string) (text, html string, headers textproto.MIMEHeader) {
	t.Helper()
	var msg struct {
		Text, HTML string
	}
	m.getJSON(t, "/api/v1/message/"+url.PathEscape(id), &msg)
	var raw map[string][]string
	m.getJSON(t, "/api/v1/message/"+url.PathEscape(id)+"/headers", &raw)
	headers = textproto.MIMEHeader{}
	for k, vs := range raw {
		for _, v := range vs {
			headers.Add(k, v)
		}
	}
	return msg.Text, msg.HTML, headers
}

// Raw returns the message as Mailpit received it (with its Received and Return-Path headers).
func (m *Mailpit) Raw(t testing.TB, id string) []byte {
	t.Helper()
	return m.get(t, "/api/v1/message/"+url.PathEscape(id)+"/raw")
}

// DeleteAll deletes every message.
func (m *Mailpit) DeleteAll(t testing.TB) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, m.URL+"/api/v1/messages", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mailpit: delete all: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit: delete all: %s", resp.Status)
	}
}

// To returns the messages sent to address (compared case-insensitively), newest first.
func (m *Mailpit) To(t testing.TB, address string) []MailSummary {
	t.Helper()
	var out []MailSummary
	for _, s := range m.Messages(t) {
		for _, a := range s.To {
			if strings.EqualFold(a.Address, address) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// WaitFor waits (30 s at most) until at least n messages to the address have arrived and
// returns those there are, newest first; it fails the test when they do not arrive.
func (m *Mailpit) WaitFor(t testing.TB, to string, n int) []MailSummary {
	t.Helper()
	var got []MailSummary
	if !Eventually(30*time.Second, func() bool {
		got = m.To(t, to)
		return len(got) >= n
	}) {
		t.Fatalf("mailpit: %d messages to %s within 30s, want %d", len(got), to, n)
	}
	return got
}

func (m *Mailpit) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(m.get(t, path), v); err != nil {
		t.Fatalf("mailpit: GET %s: %v", path, err)
	}
}

func (m *Mailpit) get(t testing.TB, path string) []byte {
	t.Helper()
	resp, err := http.Get(m.URL + path)
	if err != nil {
		t.Fatalf("mailpit: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("mailpit: GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit: GET %s: %s: %s", path, resp.Status, body)
	}
	return body
}
