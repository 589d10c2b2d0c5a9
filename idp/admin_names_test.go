package main

import (
	"net/url"
	"strings"
	"testing"
)

// The attack on name-or-id lookups: bob signs up with alice's sub as his username. The admin
// routes take ids only, so the route with alice's sub acts on alice and a username is 404; the
// CLI, given the string that is both alice's sub and bob's username, refuses and changes
// nothing, and acts on the right one when told how.
func TestAdminRoutesTakeOnlyIDs(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "audit-admin", "--rate-limit", "0")
	admin := []string{"--url", p.URL, "--admin-token", "audit-admin"}
	signup(t, p.URL, "alice", "correct-horse-9")
	aliceSub := userOf(t, p.URL, "alice")
	signup(t, p.URL, aliceSub, "correct-horse-8") // bob picks alice's sub as his username
	bobSub := userOf(t, p.URL, aliceSub)
	if bobSub == aliceSub {
		t.Fatal("bob has alice's sub")
	}
	canLogin := func(user, pw string) bool {
		return postJSON(t, p.URL+"/auth", map[string]string{"username": user, "password": pw}).status == 200
	}
	bothIn := func(when string) {
		t.Helper()
		if !canLogin("alice", "correct-horse-9") || !canLogin(aliceSub, "correct-horse-8") {
			t.Fatalf("%s: a user was disabled", when)
		}
	}

	// The CLI refuses the ambiguous argument, for every command, and changes nothing.
	for _, cmd := range [][]string{{"disable"}, {"delete"}, {"show"}, {"verify-email", aliceSub, "a@example.com"}} {
		args := append([]string{"users", cmd[0], aliceSub}, cmd[1:]...)
		if len(cmd) > 1 {
			args = append([]string{"users", cmd[0]}, cmd[1:]...)
		}
		out, err := runIDP(append(args, admin...))
		if err == nil || !strings.Contains(out, "is both the username of one user (sub "+bobSub+") and the sub of another (username alice)") {
			t.Fatalf("idp %v on the ambiguous name: %v\n%s", args, err, out)
		}
	}
	bothIn("after the refused CLI commands")

	// A username is not an id: the routes answer 404 for one and change nothing.
	for _, r := range []struct{ method, path string }{{"GET", "/admin/users/alice"}, {"POST", "/admin/users/alice/disable"}, {"DELETE", "/admin/users/alice"}} {
		if a := do(t, r.method, p.URL+r.path, "", nil, "Authorization", "Bearer audit-admin"); a.status != 404 {
			t.Fatalf("%s %s: %d %s, want 404", r.method, r.path, a.status, a.body)
		}
	}
	bothIn("after the routes with a username")

	// The route with alice's sub disables alice, and only her.
	a := do(t, "POST", p.URL+"/admin/users/"+aliceSub+"/disable", "", nil, "Authorization", "Bearer audit-admin")
	if a.status != 200 || !strings.Contains(string(a.body), `"username":"alice"`) {
		t.Fatalf("disable by alice's sub: %d %s", a.status, a.body)
	}
	if canLogin("alice", "correct-horse-9") || !canLogin(aliceSub, "correct-horse-8") {
		t.Fatal("disabling alice's sub did not hit alice, and only her")
	}

	// The CLI: --sub takes the argument as a sub only; bob's own sub and alice's name are
	// unambiguous.
	if out, err := runIDP(append([]string{"users", "enable", aliceSub, "--sub"}, admin...)); err != nil || !strings.Contains(out, "alice (sub "+aliceSub+") enabled") {
		t.Fatalf("enable --sub: %v\n%s", err, out)
	}
	if out, err := runIDP(append([]string{"users", "disable", bobSub}, admin...)); err != nil || !strings.Contains(out, aliceSub+" (sub "+bobSub+") disabled") {
		t.Fatalf("disable bob by his sub: %v\n%s", err, out)
	}
	if !canLogin("alice", "correct-horse-9") || canLogin(aliceSub, "correct-horse-8") {
		t.Fatal("the CLI hit the wrong user")
	}
	if out, err := runIDP(append([]string{"users", "show", "ALICE"}, admin...)); err != nil || !strings.Contains(out, aliceSub) {
		t.Fatalf("show alice by name: %v\n%s", err, out)
	}
	if out, err := runIDP(append([]string{"users", "show", "nobody"}, admin...)); err == nil || !strings.Contains(out, `no such user "nobody"`) {
		t.Fatalf("show nobody: %v\n%s", err, out)
	}
}

// A deleted user's username and email stay reserved: a newcomer signing up with them does not
// get them (so does not inherit the old user's data downstream) until an admin releases the
// name, which is audited; then the newcomer gets a new sub.
func TestDeletedUsernameStaysReservedUntilReleased(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "audit-admin", "--rate-limit", "0")
	admin := []string{"--url", p.URL, "--admin-token", "audit-admin"}
	signupEmail(t, p.URL, "Dora", "correct-horse-9", "dora@example.com")
	sub := userOf(t, p.URL, "dora")
	if out, err := runIDP(append([]string{"users", "delete", "dora"}, admin...)); err != nil || !strings.Contains(out, "reserved") {
		t.Fatalf("delete: %v\n%s", err, out)
	}

	// The name, in any letter case, is taken as a live user's is.
	taken := postJSON(t, p.URL+"/signup", map[string]string{"username": "DORA", "password": "another-horse-9"})
	if taken.status != 409 || taken.json(t)["result"] != "User already exists" {
		t.Fatalf("signup with the deleted user's name: %d %s", taken.status, taken.body)
	}
	// The email is not anybody's either: refused or not attached (signup must not tell).
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "eve", "password": "another-horse-9", "email": "DORA@example.com"}); a.status == 201 {
		if email := adminUser(t, p.URL, "eve")["email"]; email != nil {
			t.Fatalf("a newcomer got the deleted user's email: %v", email)
		}
	}

	// Nothing reserved under a name: 404; the release itself: 204, audited with the admin.
	for _, name := range []string{"nobody", "eve", "a%20b"} {
		if a := do(t, "POST", p.URL+"/admin/usernames/"+name+"/release", "", nil, "Authorization", "Bearer audit-admin"); a.status != 404 {
			t.Fatalf("release %s: %d %s", name, a.status, a.body)
		}
	}
	if a := do(t, "POST", p.URL+"/admin/usernames/dora/release", "", nil, "Authorization", "Bearer wrong"); a.status != 401 {
		t.Fatalf("release with a wrong admin token: %d", a.status)
	}
	if out, err := runIDP(append([]string{"users", "release-name", "Dora"}, admin...)); err != nil || !strings.Contains(out, "released") {
		t.Fatalf("release-name: %v\n%s", err, out)
	}
	if out, err := runIDP(append([]string{"users", "release-name", "dora"}, admin...)); err == nil || !strings.Contains(out, "No deleted user's username is reserved") {
		t.Fatalf("release-name again: %v\n%s", err, out)
	}
	events, _ := auditEvents(t, p.URL, "type=username_released")
	if len(events) != 1 || events[0].Actor != "admin-token" || events[0].Outcome != "success" || !strings.Contains(events[0].Detail, "dora") ||
		strings.Contains(events[0].Detail, "example.com") {
		t.Fatalf("the release in the trail: %+v", events)
	}

	signupEmail(t, p.URL, "dora", "another-horse-9", "Dora@Example.com")
	again := adminUser(t, p.URL, "dora")
	if again["id"] == sub || again["id"] == "" || again["email"] != "Dora@Example.com" {
		t.Fatalf("the new dora: %v (the deleted one had sub %s)", again, sub)
	}
}

// adminUser is the user named username, as GET /admin/users?username= shows them.
func adminUser(t *testing.T, base, username string) map[string]any {
	t.Helper()
	a := do(t, "GET", base+"/admin/users?username="+url.QueryEscape(username), "", nil, "Authorization", "Bearer audit-admin")
	users, _ := a.json(t)["result"].(map[string]any)["users"].([]any)
	if a.status != 200 || len(users) != 1 {
		t.Fatalf("GET /admin/users?username=%s: %d %s", username, a.status, a.body)
	}
	return users[0].(map[string]any)
}
