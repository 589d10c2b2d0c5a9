package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/proctest"
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
	p := startIDP(t, t.TempDir(), "--admin-token", "s3cret-admin")
	for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret-admin-but-longer", "Bearer s3cret-admi", "Basic s3cret-admin"} {
		if a := do(t, "GET", p.URL+"/admin/keys", "", nil, "Authorization", auth); a.status != 401 {
			t.Errorf("list with %q: %d, want 401", auth, a.status)
		}
		if a := do(t, "POST", p.URL+"/admin/keys/rotate", "", nil, "Authorization", auth); a.status != 401 {
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
	out, err := proctest.Run(idpBin, []string{"keys", "list", "--url", p.URL}, "IDP_ADMIN_TOKEN=cli-admin")
	if err != nil || !strings.Contains(out, "current") || !strings.Contains(out, "next") || !strings.Contains(out, "SIGNS FROM") {
		t.Fatalf("keys list: %v\n%s", err, out)
	}
	out, err = proctest.Run(idpBin, []string{"keys", "rotate", "--url", p.URL, "--admin-token", "cli-admin"})
	if err != nil || !strings.Contains(out, "retired") {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	out, err = proctest.Run(idpBin, []string{"keys", "list", "--url", p.URL, "--admin-token", "wrong"})
	if err == nil || !strings.Contains(out, "refused the admin token") {
		t.Fatalf("wrong token: %v\n%s", err, out)
	}
	out, err = proctest.Run(idpBin, []string{"keys", "list", "--url", "http://127.0.0.1:1", "--admin-token", "x"})
	if err == nil || !strings.Contains(out, "cannot reach the IdP") {
		t.Fatalf("unreachable: %v\n%s", err, out)
	}
	out, err = proctest.Run(idpBin, []string{"keys", "list", "--url", p.URL})
	if err == nil || !strings.Contains(out, "IDP_ADMIN_TOKEN") {
		t.Fatalf("no token: %v\n%s", err, out)
	}
}

func TestScheduledRotation(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--key-rotation", "2s")
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
	deadline := time.Now().Add(15 * time.Second)
	for {
		tok := login(t, p.URL, "sched", "correct-horse-9")["access_token"].(string)
		if kid(tok) != kid(first) {
			// The old key is still published for the first token.
			keys, _ := jwksKeys(t, p.URL)
			if keys[kid(first)] == nil || keys[kid(tok)] == nil {
				t.Fatalf("after a scheduled rotation the JWKS lacks a needed key")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled rotation within 15s of a 2s period\n%s", p.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
