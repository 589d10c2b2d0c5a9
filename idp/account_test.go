package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

func putEmail(t *testing.T, base, tok, email string) answer {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "current_password": "correct-horse-9"})
	return do(t, "PUT", base+"/account/email", "application/json", bytes.NewReader(b), "Authorization", "Bearer "+tok)
}

func userinfoOf(t *testing.T, base, tok string) map[string]any {
	t.Helper()
	a := do(t, "GET", base+"/userinfo", "", nil, "Authorization", "Bearer "+tok)
	if a.status != 200 || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("userinfo: %d %s", a.status, a.body)
	}
	return a.json(t)
}

// An email from signup to verification, through the program: /userinfo shows it unverified,
// PUT /account/email refuses a malformed or taken one, `idp users verify-email` verifies it,
// and a change makes it unverified again.
func TestEmailThroughTheProgram(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin")
	proctest.Secret("correct-horse-9")
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "Hanna", "password": "correct-horse-9", "email": "Hanna@Example.com"}); a.status != 201 {
		t.Fatalf("signup with email: %d %s", a.status, a.body)
	}
	// Signing up with hanna's address tells nothing: 201 as with a free one, and the address is
	// simply not attached (the review's finding: signup was an oracle of whose address it is).
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "ivan", "password": "correct-horse-9", "email": "HANNA@example.com"}); a.status != 201 ||
		a.json(t)["result"] != "User created" {
		t.Fatalf("signup with a taken email: %d %s", a.status, a.body)
	}
	hanna := login(t, p.URL, "hanna", "correct-horse-9")["access_token"].(string)
	ivan := login(t, p.URL, "ivan", "correct-horse-9")["access_token"].(string)
	if info := userinfoOf(t, p.URL, ivan); info["email"] != nil {
		t.Fatalf("a taken email was attached at signup: %v", info)
	}
	info := userinfoOf(t, p.URL, hanna)
	sub, _ := info["sub"].(string)
	if sub == "" || info["preferred_username"] != "Hanna" || info["email"] != "Hanna@Example.com" || info["email_verified"] != false {
		t.Fatalf("hanna's userinfo: %v", info)
	}
	if a := putEmail(t, p.URL, ivan, "hanna@EXAMPLE.com"); a.status != 409 || a.json(t)["result"] != "Email is already in use" {
		t.Fatalf("taken in another letter case: %d %s", a.status, a.body)
	}
	if a := putEmail(t, p.URL, ivan, "ivan@example"); a.status != 200 {
		// A single-label domain is allowed: no mail is sent, the domain is not looked up.
		t.Fatalf("ivan@example: %d %s", a.status, a.body)
	}
	for _, bad := range []string{"ivan", "ivan@", "@example.com", "ivan@example..com", "iv an@example.com"} {
		if a := putEmail(t, p.URL, ivan, bad); a.status != 400 {
			t.Errorf("%q: %d %s", bad, a.status, a.body)
		}
	}
	if a := putEmail(t, p.URL, ivan, ""); a.status != 200 || userinfoOf(t, p.URL, ivan)["email"] != nil || userinfoOf(t, p.URL, ivan)["email_verified"] != nil {
		t.Fatalf("removal: %d %s", a.status, a.body)
	}

	// The admin verifies through the CLI the address they name, by username or by sub.
	out, err := runIDP([]string{"users", "verify-email", "HANNA", "hanna@EXAMPLE.com", "--url", p.URL}, "IDP_ADMIN_TOKEN=cli-admin")
	if err != nil || !strings.Contains(out, "verified Hanna@Example.com for Hanna (sub "+sub+")") {
		t.Fatalf("users verify-email: %v\n%s", err, out)
	}
	if info := userinfoOf(t, p.URL, hanna); info["email_verified"] != true {
		t.Fatalf("after verification: %v", info)
	}
	if out, err := runIDP([]string{"users", "verify-email", sub, "Hanna@Example.com", "--url", p.URL, "--admin-token", "cli-admin"}); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("users verify-email by sub: %v\n%s", err, out)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "verify-email", "ivan", "ivan@example"}, "no longer the address named"}, // ivan has none now
		{[]string{"users", "verify-email", "nobody", "a@example.com"}, `no such user "nobody"`},
		{[]string{"users", "verify-email", "-nobody", "a@example.com"}, `no such user "-nobody"`}, // a user, not a flag
		{[]string{"users", "verify-email", "hanna"}, "needs ADDRESS"},
		{[]string{"users", "verify-email", "hanna", "--url", p.URL}, "needs ADDRESS"},
		{[]string{"users", "verify-email", "hanna", ""}, `"email" is required`},
		{[]string{"users", "verify-email"}, "needs a username or sub"},
		{[]string{"users", "frobnicate", "ivan"}, "usage: idp users "},
		{[]string{"users"}, "usage"},
	} {
		out, err := runIDP(append(bad.args, "--url", p.URL, "--admin-token", "cli-admin"))
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("%v: %v\n%s, want an error saying %q", bad.args, err, out, bad.want)
		}
	}
	if out, err := runIDP([]string{"users", "verify-email", "hanna", "hanna@example.com", "--url", p.URL, "--admin-token", "wrong"}); err == nil || !strings.Contains(out, "refused the admin token") {
		t.Fatalf("a wrong admin token: %v\n%s", err, out)
	}
	if out, err := runIDP([]string{"users", "verify-email", "hanna", "hanna@example.com", "--url", p.URL}); err == nil || !strings.Contains(out, "no admin token") {
		t.Fatalf("no admin token: %v\n%s", err, out)
	}

	// A new address is unverified again.
	if a := putEmail(t, p.URL, hanna, "hanna@example.org"); a.status != 200 || a.json(t)["result"].(map[string]any)["email_verified"] != false {
		t.Fatalf("change: %d %s", a.status, a.body)
	}
	if info := userinfoOf(t, p.URL, hanna); info["email"] != "hanna@example.org" || info["email_verified"] != false {
		t.Fatalf("after a change: %v", info)
	}
	// The swap: the admin verifies the address they looked at before hanna replaced it. 409,
	// and the new address stays unverified.
	if out, err := runIDP([]string{"users", "verify-email", "hanna", "Hanna@Example.com", "--url", p.URL, "--admin-token", "cli-admin"}); err == nil || !strings.Contains(out, "no longer the address named") {
		t.Fatalf("verify the swapped-out address: %v\n%s", err, out)
	}
	a := do(t, "POST", p.URL+"/admin/users/"+sub+"/verify-email", "application/json", strings.NewReader(`{"email":"hanna@example.com"}`), "Authorization", "Bearer cli-admin")
	if a.status != 409 {
		t.Fatalf("the route with the swapped-out address: %d %s", a.status, a.body)
	}
	if info := userinfoOf(t, p.URL, hanna); info["email"] != "hanna@example.org" || info["email_verified"] != false {
		t.Fatalf("after the refused verifications: %v", info)
	}
	if lg := p.Log(); strings.Contains(lg, hanna) || strings.Contains(lg, ivan) || strings.Contains(lg, "hanna@example.org") {
		t.Fatal("a token or an email reached the log")
	}
}

// A client's own token names no user: /userinfo answers it as an invalid token.
func TestUserinfoWithAClientsToken(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin")
	secret := addClient(t, p.URL, "reporter")
	tok, err := ccToken(t, p.URL, "reporter", secret, oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}
	a := do(t, "GET", p.URL+"/userinfo", "", nil, "Authorization", "Bearer "+tok.AccessToken)
	if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("userinfo with a client's token: %d %s %v", a.status, a.body, a.header)
	}
}

func addClient(t *testing.T, base, id string, extra ...string) string {
	t.Helper()
	out, err := runIDP(append([]string{"clients", "add", "--url", base, "--admin-token", "cli-admin", "--id", id,
		"--grant-type", "client_credentials", "--scope", "workitems:read"}, extra...))
	m := secretLine.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("clients add %s: %v\n%s", id, err, out)
	}
	proctest.Secret(m[1])
	return m[1]
}

// Introspection through the program, on its clock: every kind of inactive token answers
// {"active":false} alone, active ones say what they are, and only a confidential client that
// authenticates may ask — about its own tokens and the access tokens for it (rs is in the
// audience of the IdP's tokens), not about another client's. No token reaches the log.
func TestIntrospectionThroughTheProgram(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--admin-token", "cli-admin", "--rate-limit", "0",
		"--audience", "workitems,rs")
	secret := addClient(t, p.URL, "rs")
	otherSecret := addClient(t, p.URL, "other")
	if out, err := runIDP([]string{"clients", "add", "--url", p.URL, "--admin-token", "cli-admin", "--id", "spa", "--public",
		"--grant-type", "authorization_code", "--redirect-uri", "http://127.0.0.1:5173/cb"}); err != nil {
		t.Fatalf("clients add spa: %v\n%s", err, out)
	}
	signup(t, p.URL, "judy", "correct-horse-9")
	first := login(t, p.URL, "judy", "correct-horse-9")
	access, refresh := first["access_token"].(string), first["refresh_token"].(string)
	r := refreshGrant(t, p.URL, refresh)
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	live := r.json(t)["refresh_token"].(string)
	revoked := login(t, p.URL, "judy", "correct-horse-9")["refresh_token"].(string)
	if a := postForm(t, p.URL+"/revoke", url.Values{"token": {revoked}}); a.status != 200 {
		t.Fatalf("revoke: %d", a.status)
	}
	cc, err := ccToken(t, p.URL, "rs", secret, oauth2.AuthStyleInParams)
	if err != nil {
		t.Fatal(err)
	}
	introspect := func(tok string, header ...string) answer {
		t.Helper()
		form := url.Values{"token": {tok}}
		if len(header) == 0 {
			header = []string{"Authorization", basicAuth("rs", secret)}
		}
		return do(t, "POST", p.URL+"/introspect", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), header...)
	}
	inactive := func(name, tok string) {
		t.Helper()
		if a := introspect(tok); a.status != 200 || string(a.body) != "{\"active\":false}\n" || a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %s", name, a.status, a.body)
		}
	}
	a := introspect(access)
	m := a.json(t)
	sub := verifyWithJWKS(t, p.URL, p.URL, access)["sub"]
	if a.status != 200 || m["active"] != true || m["token_type"] != "access_token" || m["username"] != "judy" || m["sub"] != sub ||
		m["client_id"] != "idp" || m["scope"] != "workitems:read workitems:write" || m["iss"] != p.URL ||
		m["iat"] != float64(clk.Now().Unix()) || m["exp"] != float64(clk.Now().Add(15*time.Minute).Unix()) {
		t.Fatalf("an access token: %d %s", a.status, a.body)
	}
	// The IdP's own refresh token was issued to no registered client: rs may not read it.
	inactive("the IdP's own live refresh token", live)
	if m := introspect(cc.AccessToken).json(t); m["active"] != true || m["sub"] != "rs" || m["username"] != nil {
		t.Fatalf("a client's token: %v", m)
	}
	if a := introspect(cc.AccessToken, "Authorization", basicAuth("other", otherSecret)); string(a.body) != "{\"active\":false}\n" {
		t.Fatalf("rs's own token introspected by another client: %d %s", a.status, a.body)
	}
	inactive("an unknown token", "no-such-token-at-all-0123456789abcdefghijklm")
	inactive("garbage", "not a token")
	inactive("a spent refresh token", refresh)
	inactive("a revoked refresh family", revoked)
	clk.Advance(15 * time.Minute) // exp, within the verifiers' leeway: introspection is exact
	inactive("an expired access token", access)

	for _, tt := range []struct {
		name   string
		header []string
	}{
		{"a public client", []string{"Authorization", basicAuth("spa", "")}},
		{"a wrong secret", []string{"Authorization", basicAuth("rs", secret[1:])}},
		{"no client authentication", []string{"X-Nothing", "x"}},
	} {
		a := introspect(live, tt.header...)
		if a.status != 401 || a.header.Get("WWW-Authenticate") != `Basic realm="idp"` || a.json(t)["error"] != "invalid_client" {
			t.Errorf("%s: %d %s %v", tt.name, a.status, a.body, a.header)
		}
	}
	lg := p.Log()
	for _, tok := range []string{access, refresh, live, revoked, cc.AccessToken} {
		if strings.Contains(lg, tok) || strings.Contains(lg, tok[len(tok)-24:]) {
			t.Fatal("a token reached the log")
		}
	}
	if !strings.Contains(lg, "introspection") {
		t.Fatal("introspection is not logged at all")
	}
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}
