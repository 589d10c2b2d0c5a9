package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	p := startIDP(t, t.TempDir())
	if out, err := runIDP([]string{"healthcheck", "--url", p.URL}); err != nil {
		t.Fatalf("against a ready IdP: %v %s", err, out)
	}
	// The default URL comes from IDP_ADDR, as in a container.
	if out, err := runIDP([]string{"healthcheck"}, "IDP_ADDR="+p.Addr); err != nil {
		t.Fatalf("with IDP_ADDR: %v %s", err, out)
	}
	p.Stop()
	if out, err := runIDP([]string{"healthcheck", "--url", p.URL}); err == nil || !strings.Contains(out, "not reachable") {
		t.Fatalf("against a stopped IdP: %v %s", err, out)
	}
	if out, err := runIDP([]string{"--version"}); err != nil || !strings.HasPrefix(out, "idp ") {
		t.Fatalf("--version: %v %q", err, out)
	}
}

func TestBackupRestores(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "bk")
	signup(t, p.URL, "walt", "correct-horse-9")
	_, jwks := jwksKeys(t, p.URL)
	restored := t.TempDir()
	out, err := runIDP([]string{"backup", "--url", p.URL, "--out", filepath.Join(restored, "idp.db")}, "IDP_ADMIN_TOKEN=bk")
	if err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	if st, err := os.Stat(filepath.Join(restored, "idp.db")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", st, err)
	}
	// The snapshot is a valid store: an IdP started on it has the user and the same keys, while
	// the source keeps running.
	p2 := startIDP(t, restored)
	login(t, p2.URL, "walt", "correct-horse-9")
	if _, jwks2 := jwksKeys(t, p2.URL); !bytes.Equal(jwks, jwks2) {
		t.Fatal("the restored store publishes other keys")
	}
	login(t, p.URL, "walt", "correct-horse-9")
	for _, bad := range [][]string{
		{"backup", "--url", p.URL, "--out", filepath.Join(t.TempDir(), "x"), "--admin-token", "wrong"},
		{"backup", "--url", p.URL, "--admin-token", "bk"},
	} {
		if out, err := runIDP(bad); err == nil {
			t.Errorf("%v succeeded: %s", bad, out)
		}
	}
}
