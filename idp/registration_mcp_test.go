package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// mcpClientDir holds the MCP TypeScript SDK, pinned in its package.json, and the script that
// runs it (client.js).
const mcpClientDir = "testdata/mcp-client"

// npmInstalled installs dir's pinned packages (npm ci) when pkg is not in its node_modules.
func npmInstalled(t *testing.T, dir, pkg string) {
	t.Helper()
	proctest.Need(t, "npm")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("JWTIDP_REQUIRE_INTEGRATION") == "" {
			t.Skipf("npm ci in %s: %v\n%s", dir, err, out)
		}
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// The MCP TypeScript SDK (@modelcontextprotocol/sdk, npm) as the client of a tiny loopback MCP
// server that names the IdP in its RFC 9728 metadata: the SDK discovers the IdP, registers
// itself (open registration), runs the code flow with PKCE — this test is its browser, signing
// in and consenting — and calls the server's tool with the token, which the server checks at
// the IdP and wants aimed at itself (its resource, RFC 8707). The same registration without an initial access token is refused when registration
// is closed (TestClientRegistrationWithInitialAccessToken).
func TestMCPClientRegistersItself(t *testing.T) {
	node := proctest.Need(t, "node")
	npmInstalled(t, mcpClientDir, "@modelcontextprotocol/sdk")
	// The MCP server's resource is one the IdP knows (--audience), so the SDK's resource
	// parameter (RFC 8707) binds the token to it.
	mcpPort := proctest.FreePort(t)
	resource := fmt.Sprintf("http://127.0.0.1:%d/mcp", mcpPort)
	p := startIDP(t, t.TempDir(), "--registration", "open", "--admin-token", "reg-admin", "--audience", "workitems,"+resource)
	signupEmail(t, p.URL, "alice", "correct-horse-9", "alice@example.com")
	callback := fmt.Sprintf("http://127.0.0.1:%d/callback", proctest.FreePort(t))

	cmd := exec.Command(node, "client.js")
	cmd.Dir = mcpClientDir
	cmd.Env = append(os.Environ(), "IDP="+p.URL, "CALLBACK="+callback, "MCP_PORT="+fmt.Sprint(mcpPort))
	stdin, _ := cmd.StdinPipe()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out strings.Builder
	next := func(prefix string) string {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the MCP client ended before %q:\n%s", prefix, out.String())
				}
				out.WriteString(l + "\n")
				if rest, ok := strings.CutPrefix(l, prefix); ok {
					return rest
				}
			case <-timeout:
				t.Fatalf("no %q from the MCP client within 60s:\n%s", prefix, out.String())
			}
		}
	}

	clientID := next("registered ")
	authorize := next("authorize ")
	r := newRP(t, p.URL, clientID, "", callback)
	pg := r.signIn(r.get(authorize), "alice", "correct-horse-9")
	if !strings.Contains(pg.body, "MCP test client") {
		t.Fatalf("no consent page naming the MCP client: %d %s", pg.status, pg.body)
	}
	pg = r.submit(pg, "decision", "allow")
	code := pg.url.Query().Get("code")
	if !strings.HasPrefix(pg.url.String(), callback) || code == "" {
		t.Fatalf("did not come back to the MCP client with a code: %s %d %s", pg.url, pg.status, pg.body)
	}
	proctest.Secret(code)
	fmt.Fprintf(stdin, "code %s\n", code)
	result := next("tool ")
	if err := <-done; err != nil {
		t.Fatalf("the MCP client: %v\n%s", err, out.String())
	}
	out2, _ := runIDP([]string{"users", "show", "alice", "--url", p.URL, "--admin-token", "reg-admin"})
	sub, aud, _ := strings.Cut(strings.TrimPrefix(result, "sub="), " aud=")
	if sub == "" || sub == "undefined" || !strings.Contains(out2, sub) || aud != resource {
		t.Fatalf("the tool saw %q (sub %q, aud %q, want aud %q); alice is:\n%s", result, sub, aud, resource, out2)
	}
	list, err := runIDP([]string{"clients", "list", "--url", p.URL, "--admin-token", "reg-admin"})
	if err != nil || !strings.Contains(list, clientID) || !strings.Contains(list, "registration:open") {
		t.Fatalf("clients list: %v\n%s", err, list)
	}
}
