package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"jwtidp/shared/service/servicetest"
)

// Two work-item services run in one process, each with its own port, store, flag set, metrics
// registry and logger; cancelling the context stops both cleanly. (Without an IdP they are
// live but not ready.)
func TestRunInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ins []*servicetest.Instance
	for range 2 {
		ins = append(ins, servicetest.Start(t, ctx, program(), "workitems", "--addr", "127.0.0.1:0",
			"--data", t.TempDir(), "--issuer", "http://127.0.0.1:1"))
	}
	for _, in := range ins {
		for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, "/readyz": 503} {
			resp, err := http.Get(in.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("GET %s%s answered %d, want %d", in.URL, path, resp.StatusCode, want)
			}
		}
	}
	cancel()
	for _, in := range ins {
		in.Stopped(t)
	}
}

// Behind a trusted proxy (--trusted-proxies) the access log and the admin guard name the
// client the proxy forwarded for: one client's failed admin-token guesses do not lock out
// another's behind the same proxy.
func TestTrustedProxies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := servicetest.Start(t, ctx, program(), "workitems", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--issuer", "http://127.0.0.1:1", "--admin-token", "right-admin-token", "--trusted-proxies", "127.0.0.1")
	backup := func(client string) int {
		req, _ := http.NewRequest("GET", in.URL+"/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer wrong")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 5 {
		if got := backup("198.51.100.7"); got != 401 {
			t.Fatalf("a wrong admin token answered %d, want 401", got)
		}
	}
	if got := backup("198.51.100.7"); got != 429 {
		t.Fatalf("the sixth guess in a minute answered %d, want 429", got)
	}
	if got := backup("198.51.100.8"); got != 401 {
		t.Fatalf("another client behind the proxy answered %d, want 401 (not locked out)", got)
	}
	cancel()
	in.Stopped(t)
	if !strings.Contains(in.Log(), `route="GET /admin/backup" status=429 `) || !strings.Contains(in.Log(), "client=198.51.100.7") {
		t.Fatalf("the access log does not name the forwarded client:\n%s", in.Log())
	}
}
