package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

func runWI(args ...string) (string, error) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := program().Run(ctx, append([]string{"workitems"}, args...), service.Env{Stdout: &out, Stderr: &out})
	return out.String(), err
}

// Moving up: every item of a bbolt store, copied into PostgreSQL, is served from there with its
// id, and a new item never takes an id the old store handed out — not even a deleted one's.
func TestStoreCopyRoundTrip(t *testing.T) {
	f := newFakeIssuer(t)
	bearer := "Bearer " + f.sign(t, f.claims(), nil, nil)
	dir := t.TempDir()
	old := startWI(t, f.srv.URL, "--data", dir)
	if err := proctest.WaitReady(old.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if a := call(t, "POST", old.URL+"/workitems", bearer, map[string]string{"title": fmt.Sprint("moved ", i)}); a.status != 201 {
			t.Fatalf("create: %d %s", a.status, a.body)
		}
	}
	if a := call(t, "DELETE", old.URL+"/workitems/5", bearer, nil); a.status != 204 && a.status != 200 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}

	db := pgtest.NewDatabase(t)
	if out, err := runWI("store", "copy", "--from", dir, "--to", db); err != nil || !strings.Contains(out, "copied 4 work items; new ids start after 5") {
		t.Fatalf("store copy: %v\n%s", err, out)
	}
	if out, err := runWI("store", "copy", "--from", dir, "--to", db); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second copy without --force: %v\n%s", err, out)
	}
	if out, err := runWI("store", "copy", "--from", dir, "--to", db, "--force"); err != nil {
		t.Fatalf("a second copy with --force: %v\n%s", err, out)
	}

	p := startWI(t, f.srv.URL, "--database-url", db)
	if err := proctest.WaitReady(p.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := runWI("store", "copy", "--from", dir, "--to", db, "--force"); err == nil || !strings.Contains(err.Error(), "already served") {
		t.Fatalf("a copy into a database the service serves from: %v\n%s", err, out)
	}
	a := call(t, "GET", p.URL+"/workitems", bearer, nil)
	for i := range 4 {
		if !strings.Contains(string(a.body), fmt.Sprintf(`"id":%d,"title":"moved %d"`, i+1, i)) {
			t.Fatalf("item %d not served with its id after the move: %s", i+1, a.body)
		}
	}
	if a := call(t, "POST", p.URL+"/workitems", bearer, map[string]string{"title": "after the move"}); a.status != 201 || !strings.Contains(string(a.body), `"id":6`) {
		t.Fatalf("the first new item: %d %s, want id 6 (5 was handed out, then deleted)", a.status, a.body)
	}
}

// The database goes away: calls that need it answer 503 with Retry-After, readiness is 503,
// tokens are still checked from memory (a bad one is 401, not 503), and the service recovers
// by itself when the database returns, with every acknowledged item there.
func TestDatabaseOutage(t *testing.T) {
	f := newFakeIssuer(t)
	bearer := "Bearer " + f.sign(t, f.claims(), nil, nil)
	proxy, db := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	p := startWI(t, f.srv.URL, "--database-url", db, "--database-connect-timeout", "1s", "--database-statement-timeout", "2s")
	if err := proctest.WaitReady(p.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if a := call(t, "POST", p.URL+"/workitems", bearer, map[string]string{"title": "before"}); a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	proxy.Cut()
	client := &http.Client{Timeout: 20 * time.Second} // nothing may hang
	do := func(method, path, auth, body string) *http.Response {
		req, _ := http.NewRequest(method, p.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s during the outage: %v", method, path, err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range [][2]string{{"GET", "/workitems"}, {"POST", "/workitems"}} {
		resp := do(c[0], c[1], bearer, `{"title":"during"}`)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s during the outage: %d (Retry-After %q), want 503 with Retry-After", c[0], c[1], resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if resp := do("GET", "/workitems", "Bearer not-a-token", ""); resp.StatusCode != 401 {
		t.Fatalf("a bad token during the outage: %d, want 401 (checked from memory)", resp.StatusCode)
	}
	if resp := do("GET", "/readyz", "", ""); resp.StatusCode != 503 {
		t.Fatalf("readiness during the outage: %d", resp.StatusCode)
	}
	proxy.Restore()
	if !proctest.Eventually(30*time.Second, func() bool { return do("GET", "/readyz", "", "").StatusCode == 200 }) {
		t.Fatalf("not ready again after the database returned\n%s", p.Log())
	}
	a := call(t, "GET", p.URL+"/workitems", bearer, nil)
	if a.status != 200 || !strings.Contains(string(a.body), `"before"`) || strings.Contains(string(a.body), `"during"`) {
		t.Fatalf("after the outage: %d %s", a.status, a.body)
	}
}
