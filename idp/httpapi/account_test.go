package httpapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"jwtidp/idp/auth"
)

// accountIdP is the IdP with an admin token, its use cases, and the answer of a request to it.
func accountIdP(t *testing.T) (*auth.Service, func(method, path, authz, ctype, body string) *httptest.ResponseRecorder) {
	t.Helper()
	var svc *auth.Service
	h := newIdPWith(t, func(d *Deps) { d.AdminToken = "admin-token-for-tests"; svc = d.Auth })
	return svc, func(method, path, authz, ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
}

func jsonOf(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%d %q is not a JSON object", w.Code, w.Body)
	}
	return m
}

// loginAs signs the user up (with email, if any) and returns its /auth tokens.
func loginAs(t *testing.T, do func(method, path, authz, ctype, body string) *httptest.ResponseRecorder, user, email string) (access, refresh string) {
	t.Helper()
	body := `{"username":"` + user + `","password":"correct-horse-9"`
	if email != "" {
		body += `,"email":"` + email + `"`
	}
	if w := do("POST", "/signup", "", "application/json", body+"}"); w.Code != 201 {
		t.Fatalf("signup %s: %d %s", user, w.Code, w.Body)
	}
	w := do("POST", "/auth", "", "application/json", `{"username":"`+user+`","password":"correct-horse-9"}`)
	m := jsonOf(t, w)
	if w.Code != 200 {
		t.Fatalf("auth %s: %d %s", user, w.Code, w.Body)
	}
	return m["access_token"].(string), m["refresh_token"].(string)
}

// The email's life through the routes: set at signup, shown by /userinfo, changed, refused when
// malformed or taken, verified by the admin, unverified again when changed, removed.
func TestEmailRoutes(t *testing.T) {
	svc, do := accountIdP(t)
	ctx := context.Background()
	alice, _ := loginAs(t, do, "alice", "Alice@Example.com")
	bob, _ := loginAs(t, do, "bob", "")
	userinfo := func(tok string) map[string]any {
		t.Helper()
		for _, method := range []string{"GET", "POST"} {
			w := do(method, "/userinfo", "Bearer "+tok, "", "")
			if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("%s /userinfo: %d %s %v", method, w.Code, w.Body, w.Header())
			}
			if method == "POST" {
				return jsonOf(t, w)
			}
		}
		return nil
	}
	a, _ := svc.Users.GetUserByName(ctx, "alice")
	if got := userinfo(alice); !reflect.DeepEqual(got, map[string]any{"sub": a.ID, "preferred_username": "alice", "email": "Alice@Example.com", "email_verified": false}) {
		t.Fatalf("alice's userinfo: %v", got)
	}
	if got := userinfo(bob); got["email"] != nil || got["email_verified"] != nil || got["preferred_username"] != "bob" {
		t.Fatalf("bob's userinfo: %v", got)
	}
	setEmail := func(tok, body string, status int) map[string]any {
		t.Helper()
		w := do("PUT", "/account/email", "Bearer "+tok, "application/json", body)
		m := jsonOf(t, w)
		if w.Code != status {
			t.Fatalf("PUT /account/email %s: %d %s, want %d", body, w.Code, w.Body, status)
		}
		return m
	}
	for _, tt := range []struct {
		name, body string
		status     int
		msg        string
	}{
		{"taken in another letter case", `{"email":"ALICE@example.COM","current_password":"correct-horse-9"}`, 409, "Email is already in use"},
		{"malformed", `{"email":"bob@@example.com","current_password":"correct-horse-9"}`, 400, "Email must be"},
		{"spaces", `{"email":"bob @example.com","current_password":"correct-horse-9"}`, 400, "Email must be"},
		{"too long", `{"email":"bob@` + strings.Repeat("e", 260) + `.com","current_password":"correct-horse-9"}`, 400, "at most 254"},
		{"missing", `{"current_password":"correct-horse-9"}`, 400, `"email" is required`},
		{"no current password", `{"email":"bob@example.com"}`, 400, `"current_password" is required`},
		{"a wrong current password", `{"email":"bob@example.com","current_password":"wrong-horse-9"}`, 403, "Current password is not right"},
		{"not a string", `{"email":1}`, 400, `must be a string`},
		{"a field in another case", `{"Email":"bob@example.com"}`, 400, `Unknown field`},
		{"two emails", `{"email":"bob@example.com","email":"bob@example.org"}`, 400, `Duplicate field "email"`},
	} {
		m := setEmail(bob, tt.body, tt.status)
		if m["Status"] != "Error" || !strings.Contains(m["result"].(string), tt.msg) {
			t.Errorf("%s: %v, want %q", tt.name, m, tt.msg)
		}
	}
	if w := do("PUT", "/account/email", "Bearer "+bob, "text/plain", `{"email":"bob@example.com"}`); w.Code != 415 {
		t.Fatalf("not JSON: %d", w.Code)
	}
	if w := do("PUT", "/account/email", "", "application/json", `{"email":"bob@example.com"}`); w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %v", w.Code, w.Header())
	}
	if m := setEmail(bob, `{"email":"Bob@Example.com","current_password":"correct-horse-9"}`, 200); !reflect.DeepEqual(m, map[string]any{"Status": "Success",
		"result": map[string]any{"email": "Bob@Example.com", "email_verified": false}}) {
		t.Fatalf("set: %v", m)
	}
	if got := userinfo(bob); got["email"] != "Bob@Example.com" || got["email_verified"] != false {
		t.Fatalf("bob's userinfo after setting: %v", got)
	}

	// The admin verifies the address they name, by sub only: a username is 404, a missing
	// address 400.
	verify := func(user, authz, body string, status int) map[string]any {
		t.Helper()
		w := do("POST", "/admin/users/"+url.PathEscape(user)+"/verify-email", authz, "application/json", body)
		m := jsonOf(t, w)
		if w.Code != status {
			t.Fatalf("verify %s %s: %d %s, want %d", user, body, w.Code, w.Body, status)
		}
		return m
	}
	b, _ := svc.Users.GetUserByName(ctx, "bob")
	verify("BOB", adminAuth, `{"email":"Bob@Example.com"}`, 404)
	for _, body := range []string{`{}`, `{"email":""}`} {
		if m := verify(b.ID, adminAuth, body, 400); !strings.Contains(m["result"].(string), `"email" is required`) {
			t.Fatalf("verify %s: %v", body, m)
		}
	}
	if w := do("POST", "/admin/users/"+b.ID+"/verify-email", adminAuth, "", ""); w.Code != 415 {
		t.Fatalf("verify without a body: %d", w.Code)
	}
	for _, email := range []string{"bob@EXAMPLE.com", "Bob@Example.com"} {
		want := map[string]any{"Status": "Success", "result": map[string]any{"username": "bob", "sub": b.ID, "email": "Bob@Example.com", "email_verified": true}}
		if m := verify(b.ID, adminAuth, `{"email":"`+email+`"}`, 200); !reflect.DeepEqual(m, want) {
			t.Fatalf("verify %s: %v", email, m)
		}
	}
	verify("nobody", adminAuth, `{"email":"Bob@Example.com"}`, 404)
	verify(b.ID, "Bearer wrong", `{"email":"Bob@Example.com"}`, 401)
	if got := userinfo(bob); got["email_verified"] != true {
		t.Fatalf("bob's userinfo after verification: %v", got)
	}
	// The same address in another letter case stays verified; a new one is unverified.
	if m := setEmail(bob, `{"email":"bob@example.com","current_password":"correct-horse-9"}`, 200); m["result"].(map[string]any)["email_verified"] != true {
		t.Fatalf("another letter case: %v", m)
	}
	if m := setEmail(bob, `{"email":"bob@example.org","current_password":"correct-horse-9"}`, 200); m["result"].(map[string]any)["email_verified"] != false {
		t.Fatalf("a new email: %v", m)
	}
	if got := userinfo(bob); got["email"] != "bob@example.org" || got["email_verified"] != false {
		t.Fatalf("bob's userinfo after a change: %v", got)
	}
	// The swap: the admin verifies the address they saw, which bob has since replaced — 409,
	// and the new address stays unverified.
	if m := verify(b.ID, adminAuth, `{"email":"bob@example.com"}`, 409); !strings.Contains(m["result"].(string), "no longer") {
		t.Fatalf("verify a swapped-out address: %v", m)
	}
	if got := userinfo(bob); got["email"] != "bob@example.org" || got["email_verified"] != false {
		t.Fatalf("bob's userinfo after the refused verification: %v", got)
	}
	if m := setEmail(bob, `{"email":"","current_password":"correct-horse-9"}`, 200); !reflect.DeepEqual(m["result"], map[string]any{"email": "", "email_verified": false}) {
		t.Fatalf("removed: %v", m)
	}
	if got := userinfo(bob); got["email"] != nil {
		t.Fatalf("bob's userinfo after removal: %v", got)
	}
	if m := verify(b.ID, adminAuth, `{"email":"bob@example.org"}`, 409); !strings.Contains(m["result"].(string), "no longer") {
		t.Fatalf("verify without email: %v", m)
	}
}

// /userinfo and PUT /account/email answer a token that names no user — a client's own, a
// deleted user's — as an invalid token, and a relying party's token by its scopes.
func TestUserinfoRefusals(t *testing.T) {
	svc, do := accountIdP(t)
	ctx := context.Background()
	secret := register(t, do, `{"client_id":"svc","grant_types":["client_credentials"],"scopes":["workitems:read"]}`)
	w := do("POST", "/token", basic("svc", secret), "application/x-www-form-urlencoded", "grant_type=client_credentials")
	cc, _ := jsonOf(t, w)["access_token"].(string)
	if cc == "" {
		t.Fatalf("client credentials: %d %s", w.Code, w.Body)
	}
	invalid := func(name string, w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code != 401 || w.Header().Get("WWW-Authenticate") != `Bearer realm="idp", error="invalid_token"` || jsonOf(t, w)["Status"] != "Error" {
			t.Errorf("%s: %d %s %v", name, w.Code, w.Body, w.Header())
		}
	}
	invalid("userinfo with a client's token", do("GET", "/userinfo", "Bearer "+cc, "", ""))
	invalid("email with a client's token", do("PUT", "/account/email", "Bearer "+cc, "application/json", `{"email":"svc@example.com","current_password":"correct-horse-9"}`))

	erin, _ := loginAs(t, do, "erin", "erin@example.com")
	e, _ := svc.Users.GetUserByName(ctx, "erin")
	// A relying party's tokens: by scope; without openid, 403.
	rp := func(scope string) string {
		t.Helper()
		tok, err := svc.Issue(ctx, auth.Grant{User: e, Client: auth.Client{ID: "grafana", Scope: scope, Audience: []string{"grafana"}}})
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	if w := do("GET", "/userinfo", "Bearer "+rp("openid email"), "", ""); w.Code != 200 ||
		!reflect.DeepEqual(jsonOf(t, w), map[string]any{"sub": e.ID, "email": "erin@example.com", "email_verified": false}) {
		t.Fatalf("openid email: %d %s", w.Code, w.Body)
	}
	w = do("GET", "/userinfo", "Bearer "+rp("profile email"), "", "")
	if w.Code != 403 || w.Header().Get("WWW-Authenticate") != `Bearer realm="idp", error="insufficient_scope", scope="openid"` {
		t.Fatalf("no openid: %d %s %v", w.Code, w.Body, w.Header())
	}
	// Only the IdP's own sign-in may change the email that relying parties key users by.
	if w := do("PUT", "/account/email", "Bearer "+rp("openid email profile"), "application/json", `{"email":"mallory@example.com","current_password":"correct-horse-9"}`); w.Code != 403 {
		t.Fatalf("a relying party's token changes the email: %d %s", w.Code, w.Body)
	}
	if err := svc.Users.DeleteUser(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	invalid("userinfo of a deleted user", do("GET", "/userinfo", "Bearer "+erin, "", ""))
	invalid("email of a deleted user", do("PUT", "/account/email", "Bearer "+erin, "application/json", `{"email":"erin@example.com","current_password":"correct-horse-9"}`))
}

// POST /introspect: RFC 7662's answers, with /token's client authentication. The client is the
// resource server "workitems": the IdP's access tokens are for it (aud), its refresh tokens are
// not (they were issued to the IdP's own client), and a refresh token issued to it is.
func TestIntrospectRoute(t *testing.T) {
	svc, do := accountIdP(t)
	ctx := context.Background()
	secret := register(t, do, `{"client_id":"workitems","grant_types":["client_credentials"],"scopes":["workitems:read"]}`)
	register(t, do, `{"client_id":"spa","public":true,"grant_types":["authorization_code"],"redirect_uris":["https://spa.example/cb"]}`)
	access, refresh := loginAs(t, do, "frank", "")
	_, revoked := loginAs(t, do, "grace", "")
	if w := do("POST", "/revoke", "", "application/x-www-form-urlencoded", "token="+url.QueryEscape(revoked)); w.Code != 200 {
		t.Fatalf("revoke: %d", w.Code)
	}
	next, err := svc.Refresh(ctx, refresh)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := svc.Users.GetUserByName(ctx, "frank")
	const form = "application/x-www-form-urlencoded"
	introspect := func(authz, body string) *httptest.ResponseRecorder {
		return do("POST", "/introspect", authz, form, body)
	}
	tok := func(t string) string { return "token=" + url.QueryEscape(t) }
	w := introspect(basic("workitems", secret), tok(access))
	m := jsonOf(t, w)
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || m["active"] != true || m["token_type"] != "access_token" ||
		m["sub"] != f.ID || m["username"] != "frank" || m["client_id"] != "idp" || m["scope"] != "workitems:read" ||
		m["iss"] != "http://idp.test" || !reflect.DeepEqual(m["aud"], []any{"workitems"}) || m["exp"] == nil || m["iat"] == nil {
		t.Fatalf("an access token: %d %s", w.Code, w.Body)
	}
	if m["exp"].(float64)-m["iat"].(float64) != 900 {
		t.Fatalf("exp - iat: %v", m)
	}
	if w := introspect(basic("workitems", secret), tok(next.RefreshToken)); w.Code != 200 || w.Body.String() != "{\"active\":false}\n" {
		t.Fatalf("the IdP's own refresh token, to another client: %d %s", w.Code, w.Body)
	}
	own, err := svc.Issue(ctx, auth.Grant{User: f, Client: auth.Client{ID: "workitems", Scope: "workitems:read", Audience: []string{"workitems"}}, Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	// client_secret_post, and a hint naming the other type.
	w = introspect("", "client_id=workitems&client_secret="+url.QueryEscape(secret)+"&token_type_hint=access_token&"+tok(own.RefreshToken))
	m = jsonOf(t, w)
	if w.Code != 200 || m["active"] != true || m["token_type"] != "refresh_token" || m["sub"] != f.ID || m["username"] != nil || // no profile: no username
		m["client_id"] != "workitems" || m["exp"] == nil || m["iat"] != nil || m["iss"] != "http://idp.test" {
		t.Fatalf("a refresh token: %d %s", w.Code, w.Body)
	}
	for _, tt := range []struct{ name, token string }{
		{"unknown", "no-such-refresh-token-0123456789abcdefghijklmn"},
		{"garbage", "x.y.z"},
		{"spent", refresh},
		{"revoked", revoked},
		{"an id-token-shaped thing", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
	} {
		w := introspect(basic("workitems", secret), tok(tt.token)+"&token_type_hint=refresh_token")
		if w.Code != 200 || w.Body.String() != "{\"active\":false}\n" || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %q", tt.name, w.Code, w.Body)
		}
	}
	for _, tt := range []struct {
		name, authz, body string
		status            int
		code              string
	}{
		{"a public client", "", "client_id=spa&" + tok(access), 401, "invalid_client"},
		{"a wrong secret", basic("workitems", secret+"x"), tok(access), 401, "invalid_client"},
		{"a wrong secret, posted", "", "client_id=workitems&client_secret=x&" + tok(access), 401, "invalid_client"},
		{"no client authentication", "", tok(access), 401, "invalid_client"},
		{"an unreadable Basic header", "Basic !!!", tok(access), 401, "invalid_client"},
		{"two authentication methods", basic("workitems", secret), "client_secret=" + url.QueryEscape(secret) + "&" + tok(access), 400, "invalid_request"},
		{"no token", basic("workitems", secret), "", 400, "invalid_request"},
		{"a repeated token", basic("workitems", secret), tok(access) + "&" + tok(access), 400, "invalid_request"},
	} {
		w := introspect(tt.authz, tt.body)
		m := jsonOf(t, w)
		ok := w.Code == tt.status && m["error"] == tt.code && m["active"] == nil && w.Header().Get("Cache-Control") == "no-store"
		if tt.status == 401 {
			ok = ok && w.Header().Get("WWW-Authenticate") == `Basic realm="idp"`
		}
		if !ok {
			t.Errorf("%s: %d %s %v", tt.name, w.Code, w.Body, w.Header())
		}
	}
	if w := do("POST", "/introspect", basic("workitems", secret), "application/json", `{"token":"x"}`); w.Code != 400 || jsonOf(t, w)["error"] != "invalid_request" {
		t.Fatalf("JSON body: %d %s", w.Code, w.Body)
	}
}
