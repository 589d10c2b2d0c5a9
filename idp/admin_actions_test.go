package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/proctest"
)

// userField is field i (tab-separated) of `idp users show`'s line.
func userField(t *testing.T, out string, i int) string {
	t.Helper()
	f := strings.Split(strings.TrimSpace(out), "\t")
	if len(f) != 7 {
		t.Fatalf("users show: want 7 fields, got %q", out)
	}
	return f[i]
}

// An admin disables, enables and deletes a user through the CLI, against the real binary. The
// user holds a browser session, an /auth refresh token and an OpenID Connect client's refresh
// family; disabling ends all three at once (forward-auth on the process that disabled at once,
// since it forgets its cached sessions of the user) and their login gets the wrong password's
// answer; enabling lets them in again; deleting keeps the username reserved until an admin
// releases it, and a new signup under it then is a new sub.
func TestAdminDisableEnableDeleteThroughTheCLI(t *testing.T) {
	p := startIDPBinary(t, t.TempDir(), "--clients", oidcClients(t), "--admin-token", "cli-admin", "--rate-limit", "0")
	if want := testSigner(t).Name(); !strings.Contains(p.Log(), "signer="+want) { // the binary is this test's build
		t.Fatalf("the binary does not sign with %s:\n%s", want, p.Log())
	}
	admin := []string{"--url", p.URL, "--admin-token", "cli-admin"}
	for _, u := range []string{"bob", "alice", "alfred", "carol"} {
		signup(t, p.URL, u, "correct-horse-9")
	}
	out, err := runIDP(append([]string{"users", "list", "--prefix", "al", "--limit", "1"}, admin...))
	if err != nil || !strings.HasPrefix(out, "alfred\t") || !strings.HasSuffix(out, "next page: --after alfred\n") {
		t.Fatalf("list, by prefix, first page: %v\n%s", err, out)
	}
	out, err = runIDP(append([]string{"users", "list", "--prefix", "al", "--after", "alfred"}, admin...))
	if err != nil || !strings.HasPrefix(out, "alice\t") || strings.Count(out, "\n") != 1 {
		t.Fatalf("list, by prefix, second page: %v\n%s", err, out)
	}

	// bob's three ways in.
	cookie := browserSession(t, p.URL, "bob", "correct-horse-9")
	bobTok := login(t, p.URL, "bob", "correct-horse-9")
	rt, at := bobTok["refresh_token"].(string), bobTok["access_token"].(string)
	r := newRP(t, p.URL, "webapp", webSecret, webCallback, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
	verifier := oauth2.GenerateVerifier()
	pg := r.signIn(r.get(r.cfg.AuthCodeURL("s1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n1"))), "bob", "correct-horse-9")
	tok, _ := r.exchange(r.callback(r.submit(pg, "decision", "allow"), "s1"), verifier, "n1")
	verify := func() int {
		return do(t, "GET", p.URL+"/verify", "", nil, "Cookie", "jwtidp_session="+cookie).status
	}
	if verify() != 200 {
		t.Fatal("the browser session does not work before the disable")
	}
	out, _ = runIDP(append([]string{"users", "show", "bob"}, admin...))
	sub := userField(t, out, 1)
	if userField(t, out, 5) == "last login never" || userField(t, out, 6) != "-" {
		t.Fatalf("show before the disable: %q", out)
	}

	out, err = runIDP(append([]string{"users", "disable", "BOB"}, admin...))
	if err != nil || !strings.Contains(out, "bob (sub "+sub+") disabled") {
		t.Fatalf("disable: %v\n%s", err, out)
	}
	if s := verify(); s != 401 {
		t.Errorf("forward-auth after the disable: %d, want 401", s)
	}
	wantGrantError(t, refreshGrant(t, p.URL, rt), "invalid_grant")
	// The access token, self-contained, still verifies elsewhere until it expires, but the IdP's
	// own account routes and /userinfo read the user at each request.
	for _, route := range []string{"/account/sessions", "/userinfo"} {
		if a := do(t, "GET", p.URL+route, "", nil, "Authorization", "Bearer "+at); a.status != 401 {
			t.Errorf("GET %s with a disabled user's token: %d %s", route, a.status, a.body)
		}
	}
	if _, err := r.cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("the OIDC client's refresh after the disable: %v", err)
	}
	wrong := postJSON(t, p.URL+"/auth", map[string]string{"username": "bob", "password": "wrong-horse-9"})
	right := postJSON(t, p.URL+"/auth", map[string]string{"username": "bob", "password": "correct-horse-9"})
	if right.status != 401 || string(right.body) != string(wrong.body) {
		t.Fatalf("a disabled user's login: %d %s, a wrong password's: %d %s", right.status, right.body, wrong.status, wrong.body)
	}
	if resp, _ := browserLoginResp(t, p.URL, "bob", "correct-horse-9"); resp.StatusCode == 303 {
		t.Fatal("a disabled user signed in in the browser")
	}
	if out, _ := runIDP(append([]string{"users", "show", sub}, admin...)); userField(t, out, 6) != "disabled" {
		t.Fatalf("show after the disable: %q", out)
	}

	if out, err := runIDP(append([]string{"users", "enable", "bob"}, admin...)); err != nil || !strings.Contains(out, "enabled") {
		t.Fatalf("enable: %v\n%s", err, out)
	}
	rt = login(t, p.URL, "bob", "correct-horse-9")["refresh_token"].(string)

	if out, err := runIDP(append([]string{"users", "delete", "bob"}, admin...)); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	wantGrantError(t, refreshGrant(t, p.URL, rt), "invalid_grant")
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "bob", "password": "correct-horse-9"}); a.status != 401 {
		t.Fatalf("a deleted user's login: %d %s", a.status, a.body)
	}
	if out, err := runIDP(append([]string{"users", "show", sub}, admin...)); err == nil {
		t.Fatalf("show a deleted user: %s", out)
	}
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "bob", "password": "another-horse-9"}); a.status != 409 || a.json(t)["result"] != "User already exists" {
		t.Fatalf("signup under the deleted user's name: %d %s", a.status, a.body)
	}
	if out, err := runIDP(append([]string{"users", "release-name", "bob"}, admin...)); err != nil || !strings.Contains(out, "released") {
		t.Fatalf("release-name: %v\n%s", err, out)
	}
	signup(t, p.URL, "bob", "another-horse-9")
	out, _ = runIDP(append([]string{"users", "show", "bob"}, admin...))
	if again := userField(t, out, 1); again == sub || again == "" {
		t.Fatalf("the new bob has sub %q, the deleted one had %q", again, sub)
	}
}

// adminLogin is POST /auth asking for the idp:admin scope.
func adminLogin(t *testing.T, base, user, pw string) answer {
	t.Helper()
	a := postJSON(t, base+"/auth", map[string]string{"username": user, "password": pw, "scope": "idp:admin"})
	var m map[string]any
	if json.Unmarshal(a.body, &m) == nil {
		at, _ := m["access_token"].(string)
		proctest.Secret(at)
	}
	return a
}

// A user flagged admin gets an idp:admin access token and uses it on the admin routes and with
// `idp … --token`; the admin's actions name them as the actor; a token without the scope, a
// non-admin's request for the scope, and the token of an admin whose flag was revoked get 403;
// the static token keeps working.
func TestAdminAccessTokens(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "static-admin", "--rate-limit", "0")
	signup(t, p.URL, "root", "correct-horse-9")
	signup(t, p.URL, "mallory", "correct-horse-9")
	static := []string{"--url", p.URL, "--admin-token", "static-admin"}
	if a := adminLogin(t, p.URL, "root", "correct-horse-9"); a.status != 403 || !strings.Contains(string(a.body), "Not an administrator") {
		t.Fatalf("the idp:admin scope before grant-admin: %d %s", a.status, a.body)
	}
	// Refused: a failure in the trail, and no success before it (a sign-in is recorded once it
	// has issued something).
	out, err := runIDP(append([]string{"audit", "--user", "root", "--type", "login"}, static...))
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, "failure") || !strings.Contains(out, "not an administrator") {
		t.Fatalf("the refused idp:admin sign-in in the trail: %v\n%s", err, out)
	}
	if out, err := runIDP(append([]string{"users", "grant-admin", "root"}, static...)); err != nil || !strings.Contains(out, "is an administrator") {
		t.Fatalf("grant-admin: %v\n%s", err, out)
	}
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "root", "password": "correct-horse-9", "scope": "workitems:admin"}); a.status != 400 {
		t.Fatalf("another scope: %d %s", a.status, a.body)
	}
	a := adminLogin(t, p.URL, "root", "correct-horse-9")
	m := a.json(t)
	at, _ := m["access_token"].(string)
	if a.status != 200 || m["scope"] != "idp:admin" || m["refresh_token"] != nil {
		t.Fatalf("admin login: %d %s", a.status, a.body)
	}
	// For the IdP itself only: aud is the issuer, so the work-item service refuses it.
	claims := verifyForAudience(t, p.URL, p.URL, p.URL, at)
	if claims["scope"] != "idp:admin" || strings.Contains(string(must(json.Marshal(claims["aud"]))), "workitems") {
		t.Fatalf("admin token claims: %v", claims)
	}
	if a := do(t, "GET", p.URL+"/admin/users", "", nil, "Authorization", "Bearer "+at); a.status != 200 {
		t.Fatalf("the admin token on GET /admin/users: %d %s", a.status, a.body)
	}
	out, err = runIDP([]string{"users", "disable", "mallory", "--url", p.URL, "--token", at})
	if err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("idp users disable --token: %v\n%s", err, out)
	}
	out, err = runIDP([]string{"audit", "--type", "user_disabled", "--url", p.URL, "--token", at})
	if err != nil || !strings.Contains(out, "user:"+claims["sub"].(string)) {
		t.Fatalf("the disable names its actor: %v\n%s", err, out)
	}

	// Not admin credentials: an ordinary token of an admin, and a non-admin's.
	plain := login(t, p.URL, "root", "correct-horse-9")["access_token"].(string)
	if a := do(t, "GET", p.URL+"/admin/users", "", nil, "Authorization", "Bearer "+plain); a.status != 403 {
		t.Fatalf("a token without idp:admin: %d %s", a.status, a.body)
	}
	if out, err := runIDP([]string{"users", "list", "--url", p.URL, "--token", plain}); err == nil || !strings.Contains(out, "admin credential is required") {
		t.Fatalf("the CLI with a token without idp:admin: %v\n%s", err, out)
	}

	// The flag revoked: the token still verifies, but is no admin credential any more.
	if out, err := runIDP(append([]string{"users", "revoke-admin", "root"}, static...)); err != nil || !strings.Contains(out, "no longer") {
		t.Fatalf("revoke-admin: %v\n%s", err, out)
	}
	if a := do(t, "GET", p.URL+"/admin/users", "", nil, "Authorization", "Bearer "+at); a.status != 403 {
		t.Fatalf("a revoked admin's token: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", p.URL+"/admin/keys", "", nil, "Authorization", "Bearer static-admin"); a.status != 200 {
		t.Fatalf("the static token: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", p.URL+"/admin/users", "", nil, "Authorization", "Bearer not-the-token"); a.status != 401 {
		t.Fatalf("a wrong static token: %d %s", a.status, a.body)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
