package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

func TestAdminRoutes(t *testing.T) {
	off := startIDP(t, t.TempDir())
	for _, path := range []string{"/admin/keys"} {
		if a := do(t, "GET", off.URL+path, "", nil, "Authorization", "Bearer anything"); a.status != 404 {
			t.Fatalf("%s with no admin token configured: %d, want 404", path, a.status)
		}
	}
	if a := do(t, "POST", off.URL+"/admin/keys/rotate", "", nil); a.status != 404 {
		t.Fatalf("rotate with no admin token configured: %d", a.status)
	}
	p := startIDP(t, t.TempDir(), "--admin-token", "s3cret-admin", "--trusted-proxies", "127.0.0.1")
	for i, auth := range []string{"", "Bearer wrong", "Bearer s3cret-admin-but-longer", "Bearer s3cret-admi", "Basic s3cret-admin"} {
		// Each from its own client: failed admin attempts are rate-limited per client.
		xff := []string{"X-Forwarded-For", "198.51.100." + string(rune('1'+i))}
		if a := do(t, "GET", p.URL+"/admin/keys", "", nil, append([]string{"Authorization", auth}, xff...)...); a.status != 401 {
			t.Errorf("list with %q: %d, want 401", auth, a.status)
		}
		if a := do(t, "POST", p.URL+"/admin/keys/rotate", "", nil, append([]string{"Authorization", auth}, xff...)...); a.status != 401 {
			t.Errorf("rotate with %q: %d, want 401", auth, a.status)
		}
	}
	keys1, _ := jwksKeys(t, p.URL)
	a := do(t, "POST", p.URL+"/admin/keys/rotate", "", nil, "Authorization", "Bearer s3cret-admin")
	if a.status != 200 {
		t.Fatalf("rotate: %d %s", a.status, a.body)
	}
	keys2, _ := jwksKeys(t, p.URL)
	if len(keys2) != 3 {
		t.Fatalf("after one rotation the JWKS has %d keys, want current, next and retired", len(keys2))
	}
	for kid := range keys1 {
		if keys2[kid] == nil {
			t.Fatalf("key %s left the JWKS at rotation", kid)
		}
	}
	if strings.Contains(string(a.body), `"d"`) || strings.Contains(string(a.body), "Private") {
		t.Fatal("admin answer carries private key material")
	}
}

func TestKeysCommand(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin")
	out, err := runIDP([]string{"keys", "list", "--url", p.URL}, "IDP_ADMIN_TOKEN=cli-admin")
	if err != nil || !strings.Contains(out, "current") || !strings.Contains(out, "next") || !strings.Contains(out, "SIGNS FROM") {
		t.Fatalf("keys list: %v\n%s", err, out)
	}
	out, err = runIDP([]string{"keys", "rotate", "--url", p.URL, "--admin-token", "cli-admin"})
	if err != nil || !strings.Contains(out, "retired") {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	out, err = runIDP([]string{"keys", "list", "--url", p.URL, "--admin-token", "wrong"})
	if err == nil || !strings.Contains(out, "refused the admin token") {
		t.Fatalf("wrong token: %v\n%s", err, out)
	}
	out, err = runIDP([]string{"keys", "list", "--url", "http://127.0.0.1:1", "--admin-token", "x"})
	if err == nil || !strings.Contains(out, "cannot reach the IdP") {
		t.Fatalf("unreachable: %v\n%s", err, out)
	}
	out, err = runIDP([]string{"keys", "list", "--url", p.URL})
	if err == nil || !strings.Contains(out, "IDP_ADMIN_TOKEN") {
		t.Fatalf("no token: %v\n%s", err, out)
	}
}

func TestScheduledRotation(t *testing.T) {
	// The IdP's clock is a fake one the test moves; nothing waits on wall time for the schedule.
	start := time.Now()
	clk := clock.NewFake(start)
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--key-rotation", "2s", "--rate-limit", "0")
	signup(t, p.URL, "sched", "correct-horse-9")
	first := login(t, p.URL, "sched", "correct-horse-9")["access_token"].(string)
	a := do(t, "GET", p.URL+"/.well-known/jwks.json", "", nil)
	if cc := a.header.Get("Cache-Control"); cc != "public, max-age=2" {
		t.Fatalf("Cache-Control %q: max-age must not exceed the 2s pre-publication lead", cc)
	}
	kid := func(tok string) string {
		h, _ := jwt.NewParser().DecodeSegment(strings.Split(tok, ".")[0])
		var m map[string]any
		json.Unmarshal(h, &m)
		return m["kid"].(string)
	}
	// Short of the period, the key stays.
	clk.BlockUntil(2) // the schedule and the outbox are waiting
	clk.Advance(1900 * time.Millisecond)
	if tok := login(t, p.URL, "sched", "correct-horse-9")["access_token"].(string); kid(tok) != kid(first) {
		t.Fatal("the key rotated before its period")
	}
	// Past it, the schedule rotates. The test moves the clock on a little at each check, so a
	// wait the schedule computed just before an Advance still comes due.
	var tok string
	rotated := proctest.Eventually(5*time.Second, func() bool {
		clk.Advance(100 * time.Millisecond)
		tok = login(t, p.URL, "sched", "correct-horse-9")["access_token"].(string)
		return kid(tok) != kid(first)
	})
	if !rotated {
		t.Fatalf("no scheduled rotation with the clock %s past a 2s period\n%s", clk.Now().Sub(start), p.Log())
	}
	// The old key is still published for the first token.
	keys, _ := jwksKeys(t, p.URL)
	if keys[kid(first)] == nil || keys[kid(tok)] == nil {
		t.Fatalf("after a scheduled rotation the JWKS lacks a needed key")
	}
}

// Finding 6: the admin token can come from a file (not the command line), and guessing it is
// rate-limited per client without locking out the admin elsewhere.
func TestAdminTokenFileAndGuessing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startIDP(t, t.TempDir(), "--admin-token-file", file, "--trusted-proxies", "127.0.0.1")
	if strings.Contains(p.Log(), "from-a-file") {
		t.Fatal("the admin token reached the log")
	}
	guess := func(token, client string) int {
		return do(t, "GET", p.URL+"/admin/keys", "", nil, "Authorization", "Bearer "+token, "X-Forwarded-For", client).status
	}
	codes := []int{}
	for range 7 {
		codes = append(codes, guess("guess", "203.0.113.7"))
	}
	if codes[0] != 401 || codes[6] != 429 {
		t.Fatalf("seven guesses from one client: %v, want 401s then 429", codes)
	}
	if code := guess("from-a-file", "198.51.100.1"); code != 200 {
		t.Fatalf("the admin from another client during the guessing: %d", code)
	}
	if _, err := runIDP([]string{"serve", "--admin-token", "x", "--admin-token-file", file}); err == nil {
		t.Fatal("both --admin-token and --admin-token-file were accepted")
	}
}

// Finding 7: a compromised key leaves the JWKS at once, and the IdP stops accepting what it
// signed; new tokens are signed by the key that was already published as next.
func TestKeysRevoke(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin")
	signup(t, p.URL, "rita", "correct-horse-9")
	old := login(t, p.URL, "rita", "correct-horse-9")["access_token"].(string)
	tok, _, err := jwt.NewParser().ParseUnverified(old, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid := tok.Header["kid"].(string)
	if a := do(t, "GET", p.URL+"/verify", "", nil, "Authorization", "Bearer "+old); a.status != 200 {
		t.Fatalf("before the revocation: %d", a.status)
	}
	out, err := runIDP([]string{"keys", "revoke", kid, "--url", p.URL, "--admin-token", "cli-admin"})
	if err != nil {
		t.Fatalf("keys revoke: %v\n%s", err, out)
	}
	keys, _ := jwksKeys(t, p.URL)
	if keys[kid] != nil || len(keys) != 2 {
		t.Fatalf("after revoking %s the JWKS has %d keys, including it: %v", kid, len(keys), keys[kid] != nil)
	}
	if a := do(t, "GET", p.URL+"/verify", "", nil, "Authorization", "Bearer "+old); a.status != 401 {
		t.Fatalf("a token of the revoked key: %d, want 401", a.status)
	}
	fresh := login(t, p.URL, "rita", "correct-horse-9")["access_token"].(string)
	claims := verifyWithJWKS(t, p.URL, p.URL, fresh)
	if claims["sub"] == nil {
		t.Fatal("a new token does not verify against the JWKS")
	}
	if out, err := runIDP([]string{"keys", "revoke", "no-such-kid", "--url", p.URL, "--admin-token", "cli-admin"}); err == nil || !strings.Contains(out, `has no signing key "no-such-kid"`) {
		t.Fatalf("revoking an unknown kid succeeded:\n%s", out)
	}
}

func TestKeysRevokeTakesAKidThatLooksLikeAFlag(t *testing.T) {
	if !isKeysFlag("--url") || !isKeysFlag("-admin-token=x") || isKeysFlag("-Tf3xQ") || isKeysFlag("abc") {
		t.Fatal("isKeysFlag")
	}
}
