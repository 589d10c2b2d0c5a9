package main

import (
	"net/url"
	"strings"
	"testing"
)

// An admin lists users page by page and by prefix, and shows one by username or sub, through
// the CLI and the routes; nothing secret is shown, only which second factors a user has.
func TestAdminListsAndShowsUsers(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "users-admin", "--rate-limit", "0")
	for _, u := range []string{"carol", "alice", "bob", "alfred"} {
		signup(t, p.URL, u, "correct-horse-9")
	}
	signupEmail(t, p.URL, "Alma", "correct-horse-9", "alma@example.com")
	admin := []string{"--url", p.URL, "--admin-token", "users-admin"}
	out, err := runIDP(append([]string{"users", "list", "--limit", "2"}, admin...))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[0], "alfred\t") || !strings.HasPrefix(lines[1], "alice\t") || lines[2] != "next page: --after alice" {
		t.Fatalf("list, first page: %v\n%s", err, out)
	}
	out, err = runIDP(append([]string{"users", "list", "--limit", "2", "--after", "alice"}, admin...))
	if err != nil || !strings.HasPrefix(out, "Alma\t") || !strings.Contains(out, "alma@example.com (unverified)") || !strings.Contains(out, "\nbob\t") {
		t.Fatalf("list, second page: %v\n%s", err, out)
	}
	out, err = runIDP(append([]string{"users", "list", "--prefix", "AL"}, admin...))
	if err != nil || strings.Count(out, "\n") != 3 || strings.Contains(out, "bob") || strings.Contains(out, "next page") {
		t.Fatalf("list by prefix: %v\n%s", err, out)
	}
	out, err = runIDP(append([]string{"users", "show", "ALICE"}, admin...))
	fields := strings.Split(strings.TrimSpace(out), "\t")
	if err != nil || len(fields) != 7 || fields[0] != "alice" || fields[4] != "-" || fields[5] != "last login never" || fields[6] != "-" {
		t.Fatalf("show by username: %v\n%s", err, out)
	}
	if again, err := runIDP(append([]string{"users", "show", fields[1]}, admin...)); err != nil || again != out {
		t.Fatalf("show by sub: %v\n%s", err, again)
	}
	if out, err := runIDP(append([]string{"users", "show", "nobody"}, admin...)); err == nil || !strings.Contains(out, `no such user "nobody"`) {
		t.Fatalf("show an unknown user: %v\n%s", err, out)
	}
	// The routes take only the id; ?username= finds by name, in any letter case.
	if a := do(t, "GET", p.URL+"/admin/users/alice", "", nil, "Authorization", "Bearer users-admin"); a.status != 404 {
		t.Fatalf("GET /admin/users/alice (a username): %d %s", a.status, a.body)
	}
	for q, want := range map[string]int{"ALICE": 1, "nobody": 0, "a b": 0, "": 0} {
		a := do(t, "GET", p.URL+"/admin/users?username="+url.QueryEscape(q), "", nil, "Authorization", "Bearer users-admin")
		users, _ := a.json(t)["result"].(map[string]any)["users"].([]any)
		if a.status != 200 || len(users) != want || want == 1 && users[0].(map[string]any)["id"] != fields[1] {
			t.Errorf("?username=%s: %d %s, want %d users", q, a.status, a.body, want)
		}
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x"} {
		if a := do(t, "GET", p.URL+"/admin/users?"+q, "", nil, "Authorization", "Bearer users-admin"); a.status != 400 {
			t.Errorf("%s: %d %s", q, a.status, a.body)
		}
	}
	a := do(t, "GET", p.URL+"/admin/users", "", nil, "Authorization", "Bearer users-admin")
	if a.status != 200 || strings.Contains(string(a.body), "argon2") || strings.Contains(string(a.body), "password") {
		t.Fatalf("the route: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", p.URL+"/admin/users", "", nil, "Authorization", "Bearer wrong"); a.status != 401 && a.status != 403 {
		t.Fatalf("a wrong admin token: %d", a.status)
	}
}
