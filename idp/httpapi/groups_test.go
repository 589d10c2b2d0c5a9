package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"jwtidp/idp/boltdb"
)

const groupsAdminToken = "groups-admin-token-0123456789abcdef"

// groupsIdP is newIdP with the admin routes on, groups kept, and bearer tokens passing /verify.
func groupsIdP(t *testing.T) http.Handler {
	t.Helper()
	return newIdPWith(t, func(d *Deps) {
		d.AdminToken = groupsAdminToken
		db := d.Store.(*boltdb.DB)
		d.Auth.Groups = db
		d.Sessions.Users, d.Sessions.Groups = db, db
	})
}

type answer struct {
	code int
	h    http.Header
	body map[string]any
}

func call(t *testing.T, h http.Handler, method, path, token, body string) answer {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{code: w.Code, h: w.Header()}
	json.Unmarshal(w.Body.Bytes(), &a.body)
	return a
}

// signupLogin makes a user and returns their id and a first-party access token.
func signupLogin(t *testing.T, h http.Handler, name string) (string, string) {
	t.Helper()
	body := `{"username":"` + name + `","password":"correct-horse-9"}`
	if a := call(t, h, "POST", "/signup", "", body); a.code != 201 {
		t.Fatalf("signup %s: %d %v", name, a.code, a.body)
	}
	a := call(t, h, "POST", "/auth", "", body)
	if a.code != 200 {
		t.Fatalf("auth %s: %d %v", name, a.code, a.body)
	}
	access := a.body["access_token"].(string)
	who := call(t, h, "GET", "/userinfo", access, "")
	return who.body["sub"].(string), access
}

// The admin's group routes: every bad input a clear 4xx that changes nothing; memberships by
// user id; the list in pages.
func TestAdminGroupRoutes(t *testing.T) {
	h := groupsIdP(t)
	alice, _ := signupLogin(t, h, "alice")
	admin := func(method, path, body string) answer { return call(t, h, method, path, groupsAdminToken, body) }

	for _, tt := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"create ops", "POST", "/admin/groups", `{"name":"ops"}`, 201},
		{"create k8s:admins", "POST", "/admin/groups", `{"name":"k8s:admins"}`, 201},
		{"a taken name", "POST", "/admin/groups", `{"name":"ops"}`, 409},
		{"an upper-case name", "POST", "/admin/groups", `{"name":"Ops"}`, 400},
		{"a comma", "POST", "/admin/groups", `{"name":"a,b"}`, 400},
		{"a name too long", "POST", "/admin/groups", `{"name":"` + strings.Repeat("a", 65) + `"}`, 400},
		{"no name", "POST", "/admin/groups", `{}`, 400},
		{"an unknown field", "POST", "/admin/groups", `{"name":"x","members":[]}`, 400},
		{"add alice", "PUT", "/admin/groups/ops/members/" + alice, "", 204},
		{"add alice again", "PUT", "/admin/groups/ops/members/" + alice, "", 409},
		{"add alice to k8s:admins", "PUT", "/admin/groups/k8s:admins/members/" + alice, "", 204},
		{"add to no group", "PUT", "/admin/groups/nope/members/" + alice, "", 404},
		{"add to a name no group can have", "PUT", "/admin/groups/NOPE/members/" + alice, "", 404},
		{"add no user", "PUT", "/admin/groups/ops/members/nobody", "", 404},
		{"add by username", "PUT", "/admin/groups/ops/members/alice", "", 404}, // ids only, as every admin user route
		{"remove a non-member", "DELETE", "/admin/groups/k8s:admins/members/nobody", "", 404},
		{"remove alice from k8s:admins", "DELETE", "/admin/groups/k8s:admins/members/" + alice, "", 204},
		{"remove her again", "DELETE", "/admin/groups/k8s:admins/members/" + alice, "", 404},
		{"delete no group", "DELETE", "/admin/groups/nope", "", 404},
		{"delete k8s:admins", "DELETE", "/admin/groups/k8s:admins", "", 204},
	} {
		if a := admin(tt.method, tt.path, tt.body); a.code != tt.status {
			t.Fatalf("%s: %d %v, want %d", tt.name, a.code, a.body, tt.status)
		}
	}
	if a := call(t, h, "GET", "/admin/groups", "", ""); a.code == 200 {
		t.Fatal("GET /admin/groups without a credential answered 200")
	}
	for _, name := range []string{"dev", "qa"} {
		admin("POST", "/admin/groups", `{"name":"`+name+`"}`)
	}
	names := func(a answer) []string {
		var out []string
		for _, g := range a.body["result"].(map[string]any)["groups"].([]any) {
			out = append(out, g.(map[string]any)["name"].(string))
		}
		return out
	}
	first := admin("GET", "/admin/groups?limit=2", "")
	next, _ := first.body["result"].(map[string]any)["next"].(string)
	if got := strings.Join(names(first), " "); first.code != 200 || got != "dev ops" || next != "ops" {
		t.Fatalf("the first page: %d %v", first.code, first.body)
	}
	if got := strings.Join(names(admin("GET", "/admin/groups?limit=2&after="+next, "")), " "); got != "qa" {
		t.Fatalf("the second page: %q", got)
	}
	for _, q := range []string{"limit=0", "limit=x", "limit=1001"} {
		if a := admin("GET", "/admin/groups?"+q, ""); a.code != 400 {
			t.Fatalf("GET /admin/groups?%s: %d", q, a.code)
		}
	}
}

// /verify answers the user's groups (Remote-Groups, comma-separated) and their email once it is
// verified (Remote-Email); a membership changed by an admin shows at once on this process.
func TestVerifyRemoteGroups(t *testing.T) {
	h := groupsIdP(t)
	alice, token := signupLogin(t, h, "alice")
	verify := func() http.Header {
		t.Helper()
		a := call(t, h, "GET", "/verify", token, "")
		if a.code != 200 {
			t.Fatalf("/verify: %d", a.code)
		}
		return a.h
	}
	if got := verify(); got.Get("Remote-Groups") != "" || got.Get("Remote-Email") != "" || got.Get("Remote-User") != "alice" {
		t.Fatalf("/verify of a user in no group: %v", got)
	}
	for _, step := range [][3]string{{"POST", "/admin/groups", `{"name":"ops"}`}, {"POST", "/admin/groups", `{"name":"k8s:admins"}`},
		{"PUT", "/admin/groups/ops/members/" + alice}, {"PUT", "/admin/groups/k8s:admins/members/" + alice}} {
		if a := call(t, h, step[0], step[1], groupsAdminToken, step[2]); a.code >= 300 {
			t.Fatalf("%s %s: %d", step[0], step[1], a.code)
		}
	}
	if got := verify().Get("Remote-Groups"); got != "k8s:admins,ops" {
		t.Fatalf("Remote-Groups: %q", got)
	}
	if a := call(t, h, "DELETE", "/admin/groups/k8s:admins", groupsAdminToken, ""); a.code != 204 {
		t.Fatalf("delete k8s:admins: %d", a.code)
	}
	if got := verify().Get("Remote-Groups"); got != "ops" {
		t.Fatalf("Remote-Groups after the delete: %q", got)
	}

	// An email reaches Remote-Email only once verified.
	if a := call(t, h, "PUT", "/account/email", token, `{"email":"alice@example.com","current_password":"correct-horse-9"}`); a.code != 200 {
		t.Fatalf("set email: %d %v", a.code, a.body)
	}
	d := call(t, h, "POST", "/admin/users/"+alice+"/logout", groupsAdminToken, "") // forgets her here
	if got := verify().Get("Remote-Email"); d.code != 200 || got != "" {
		t.Fatalf("Remote-Email of an unverified address: %q (%d)", got, d.code)
	}
	if a := call(t, h, "POST", "/admin/users/"+alice+"/verify-email", groupsAdminToken, `{"email":"alice@example.com"}`); a.code != 200 {
		t.Fatalf("verify-email: %d %v", a.code, a.body)
	}
	call(t, h, "POST", "/admin/users/"+alice+"/logout", groupsAdminToken, "")
	if got := verify().Get("Remote-Email"); got != "alice@example.com" {
		t.Fatalf("Remote-Email of a verified address: %q", got)
	}
}
