package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

var (
	initialTokenLine = regexp.MustCompile(`(?m)^initial access token: (\S+)$`)
	initialIDLine    = regexp.MustCompile(`(?m)^id: (\S+)$`)
)

// mintRegistrationToken runs `idp clients registration-token` against the IdP: the token and
// its id.
func mintRegistrationToken(t *testing.T, base, admin string, args ...string) (string, string) {
	t.Helper()
	out, err := runIDP(append([]string{"clients", "registration-token", "--url", base, "--admin-token", admin}, args...))
	tok, id := initialTokenLine.FindStringSubmatch(out), initialIDLine.FindStringSubmatch(out)
	if err != nil || tok == nil || id == nil {
		t.Fatalf("clients registration-token: %v\n%s", err, out)
	}
	proctest.Secret(tok[1])
	return tok[1], id[1]
}

// register POSTs metadata to /register with the bearer token (none when "").
func register(t *testing.T, base, bearer string, metadata any) answer {
	t.Helper()
	b, _ := json.Marshal(metadata)
	var h []string
	if bearer != "" {
		h = []string{"Authorization", "Bearer " + bearer}
	}
	a := do(t, "POST", base+"/register", "application/json", bytes.NewReader(b), h...)
	if a.status == 201 {
		m := a.json(t)
		s, _ := m["client_secret"].(string)
		proctest.Secret(s, m["registration_access_token"].(string))
	}
	return a
}

// registration calls /register/{id} with the registration access token rat.
func registration(t *testing.T, method, base, id, rat string, metadata any) answer {
	t.Helper()
	var body *bytes.Reader
	ct := ""
	if metadata != nil {
		b, _ := json.Marshal(metadata)
		body, ct = bytes.NewReader(b), "application/json"
	} else {
		body = bytes.NewReader(nil)
	}
	return do(t, method, base+"/register/"+url.PathEscape(id), ct, body, "Authorization", "Bearer "+rat)
}

// wantOAuthError checks an RFC 7591 or RFC 6750 refusal.
func wantOAuthError(t *testing.T, what string, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.json(t)["error"] != code {
		t.Fatalf("%s: %d %s, want %d %s", what, a.status, a.body, status, code)
	}
	if status == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), `Bearer realm="idp"`) {
		t.Fatalf("%s: WWW-Authenticate %q", what, a.header.Get("WWW-Authenticate"))
	}
}

func webMetadata() map[string]any {
	return map[string]any{
		"client_name": "Registered Web App", "redirect_uris": []string{webCallback},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "openid profile offline_access workitems:read",
		"first_party": true, "forward_auth": true, "client_id": "chosen", "logo_uri": "https://x.example/logo.png",
	}
}

// Closed registration (the default): an admin mints an initial access token with the CLI; a
// client registers with it, as many times as it has uses and not past its expiry (fake clock);
// a refused registration spends no use; without it, or with a made-up one, 401 with RFC 6750's
// WWW-Authenticate. The registered client signs a user in with the code flow and PKCE
// (go-oidc and x/oauth2), shows in `idp clients list` with who registered it, and is read,
// replaced and deleted with its registration access token alone.
func TestClientRegistrationWithInitialAccessToken(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--admin-token", "reg-admin")

	disc := do(t, "GET", p.URL+"/.well-known/openid-configuration", "", nil).json(t)
	if disc["registration_endpoint"] != p.URL+"/register" {
		t.Fatalf("discovery: registration_endpoint %v", disc["registration_endpoint"])
	}
	a := register(t, p.URL, "", webMetadata())
	wantOAuthError(t, "no initial access token", a, 401, "invalid_token")
	if a.header.Get("WWW-Authenticate") != `Bearer realm="idp"` {
		t.Fatalf("no token: WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
	}
	a = register(t, p.URL, "made-up-token-0123456789", webMetadata())
	wantOAuthError(t, "a made-up token", a, 401, "invalid_token")
	if a.header.Get("WWW-Authenticate") != `Bearer realm="idp", error="invalid_token"` {
		t.Fatalf("made-up token: WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
	}

	for _, bad := range [][]string{{"--uses", "0"}, {"--ttl", "-1h"}, {"--ttl", "10s"}, {"--uses", "1001"}} {
		if out, err := runIDP(append([]string{"clients", "registration-token", "--url", p.URL, "--admin-token", "reg-admin"}, bad...)); err == nil ||
			!strings.Contains(out, "refused") {
			t.Fatalf("registration-token %v: %v\n%s", bad, err, out)
		}
	}
	if a := do(t, "POST", p.URL+"/admin/registration-tokens", "application/json", strings.NewReader(`{"ttl":"soon"}`),
		"Authorization", "Bearer reg-admin"); a.status != 400 {
		t.Fatalf("a ttl that is no duration: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", p.URL+"/admin/registration-tokens", "application/json", strings.NewReader(`{}`)); a.status != 401 {
		t.Fatalf("minting without the admin token: %d %s", a.status, a.body)
	}
	iat, iatID := mintRegistrationToken(t, p.URL, "reg-admin", "--ttl", "1h", "--uses", "2")
	// Refusals with a good token spend none of its uses.
	bad := webMetadata()
	bad["scope"] = "openid idp:admin"
	wantOAuthError(t, "a scope the IdP does not offer", register(t, p.URL, iat, bad), 400, "invalid_client_metadata")
	bad = webMetadata()
	bad["redirect_uris"] = []string{"http://evil.example/cb"}
	wantOAuthError(t, "a plain-http redirect URI", register(t, p.URL, iat, bad), 400, "invalid_redirect_uri")
	bad = webMetadata()
	bad["grant_types"] = []string{"urn:ietf:params:oauth:grant-type:token-exchange"}
	wantOAuthError(t, "token exchange", register(t, p.URL, iat, bad), 400, "invalid_client_metadata")
	// URIs the IdP itself requests may not aim it inside its own network.
	for _, u := range []string{"http://rp.example/logout", "https://10.0.0.5/logout", "https://127.0.0.1/logout", "https://169.254.169.254/latest", "https://localhost/logout"} {
		bad = webMetadata()
		bad["backchannel_logout_uri"] = u
		wantOAuthError(t, "backchannel_logout_uri "+u, register(t, p.URL, iat, bad), 400, "invalid_client_metadata")
	}

	a = register(t, p.URL, iat, webMetadata())
	if a.status != 201 {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	web := a.json(t)
	id, secret, rat := web["client_id"].(string), web["client_secret"].(string), web["registration_access_token"].(string)
	if id == "chosen" || len(id) < 16 || secret == "" || rat == "" || web["registration_client_uri"] != p.URL+"/register/"+id ||
		web["client_id_issued_at"] != float64(clk.Now().Unix()) || web["client_secret_expires_at"] != float64(0) ||
		web["token_endpoint_auth_method"] != "client_secret_basic" || web["scope"] != "openid profile offline_access workitems:read" ||
		web["client_name"] != "Registered Web App" || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("registration answer: %s", a.body)
	}
	show := do(t, "GET", p.URL+"/admin/clients/"+id, "", nil, "Authorization", "Bearer reg-admin").json(t)["result"].(map[string]any)
	if show["first_party"] != false || show["forward_auth"] != false || show["registered_by"] != "registration:"+iatID {
		t.Fatalf("the stored client: %v", show)
	}

	// A second client with the token's second use; a third is refused.
	second := webMetadata()
	second["token_endpoint_auth_method"], second["client_name"] = "none", "Native"
	second["redirect_uris"] = []string{"http://127.0.0.1:7777/cb"}
	a = register(t, p.URL, iat, second)
	if a.status != 201 || a.json(t)["client_secret"] != nil {
		t.Fatalf("a public client: %d %s", a.status, a.body)
	}
	native := a.json(t)
	wantOAuthError(t, "a third use of a two-use token", register(t, p.URL, iat, webMetadata()), 401, "invalid_token")

	// `idp clients list` says who registered each.
	out, err := runIDP([]string{"clients", "list", "--url", p.URL, "--admin-token", "reg-admin"})
	if err != nil || !strings.Contains(out, "REGISTERED BY") || strings.Count(out, "registration:"+iatID) != 2 ||
		strings.Contains(out, secret) || strings.Contains(out, rat) {
		t.Fatalf("clients list: %v\n%s", err, out)
	}

	// The registered client runs the code flow with PKCE.
	signupEmail(t, p.URL, "alice", "correct-horse-9", "alice@example.com")
	r := newRP(t, p.URL, id, secret, webCallback, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess, "workitems:read")
	verifier, nonce := oauth2.GenerateVerifier(), "n-reg"
	pg := r.signIn(r.get(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))), "alice", "correct-horse-9")
	if !strings.Contains(pg.body, "Registered Web App") {
		t.Fatalf("no consent page naming the registered client: %d %s", pg.status, pg.body)
	}
	tok, idt := r.exchange(r.callback(r.submit(pg, "decision", "allow"), "st"), verifier, nonce)
	if !slices.Equal(idt.Audience, []string{id}) || tok.RefreshToken == "" {
		t.Fatalf("tokens of the registered client: aud %v refresh %t", idt.Audience, tok.RefreshToken != "")
	}

	// RFC 7592: read, replace, delete with the registration access token only.
	wantOAuthError(t, "read with a wrong token", registration(t, "GET", p.URL, id, rat+"x", nil), 401, "invalid_token")
	wantOAuthError(t, "read with another client's token", registration(t, "GET", p.URL, id, native["registration_access_token"].(string), nil), 401, "invalid_token")
	wantOAuthError(t, "read with the initial access token", registration(t, "GET", p.URL, id, iat, nil), 401, "invalid_token")
	wantOAuthError(t, "read of an unknown client", registration(t, "GET", p.URL, "nobody", rat, nil), 401, "invalid_token")
	a = registration(t, "GET", p.URL, id, rat, nil)
	if got := a.json(t); a.status != 200 || got["client_id"] != id || got["client_secret"] != nil || got["registration_access_token"] != nil ||
		got["client_name"] != "Registered Web App" {
		t.Fatalf("read: %d %s", a.status, a.body)
	}
	changed := webMetadata()
	changed["client_name"], changed["redirect_uris"] = "Renamed", []string{"https://app.example/cb"}
	bad = webMetadata()
	bad["redirect_uris"] = []string{"https://app.example/cb#frag"}
	wantOAuthError(t, "replace with a bad redirect URI", registration(t, "PUT", p.URL, id, rat, bad), 400, "invalid_redirect_uri")
	wantOAuthError(t, "replace with another's token", registration(t, "PUT", p.URL, id, native["registration_access_token"].(string), changed), 401, "invalid_token")
	a = registration(t, "PUT", p.URL, id, rat, changed)
	if got := a.json(t); a.status != 200 || got["client_name"] != "Renamed" || got["client_secret"] != nil ||
		!slices.Equal(got["redirect_uris"].([]any), []any{"https://app.example/cb"}) {
		t.Fatalf("replace: %d %s", a.status, a.body)
	}
	// The secret is the same after the update: the client still authenticates with it.
	if c, err := ccToken(t, p.URL, id, secret, oauth2.AuthStyleInHeader); err == nil || !strings.Contains(err.Error(), "unauthorized_client") {
		t.Fatalf("the renamed client's secret: %v %v (want it authenticated, the grant refused)", c, err)
	}
	// A client an admin registered has no registration access token: /register does not reach it.
	if a := do(t, "POST", p.URL+"/admin/clients", "application/json", strings.NewReader(`{"client_id":"admins","public":true,`+
		`"redirect_uris":["http://127.0.0.1:1/cb"],"grant_types":["authorization_code"]}`), "Authorization", "Bearer reg-admin"); a.status != 201 {
		t.Fatalf("admin client: %d %s", a.status, a.body)
	}
	wantOAuthError(t, "an admin's client", registration(t, "GET", p.URL, "admins", rat, nil), 401, "invalid_token")
	wantOAuthError(t, "an admin's client, no token", registration(t, "DELETE", p.URL, "admins", "", nil), 401, "invalid_token")
	// A public client that becomes confidential gets a secret, shown in that answer once.
	confidential := webMetadata()
	confidential["redirect_uris"] = []string{"http://127.0.0.1:7777/cb"}
	a = registration(t, "PUT", p.URL, native["client_id"].(string), native["registration_access_token"].(string), confidential)
	nativeSecret, _ := a.json(t)["client_secret"].(string)
	proctest.Secret(nativeSecret)
	if a.status != 200 || nativeSecret == "" || a.json(t)["token_endpoint_auth_method"] != "client_secret_basic" {
		t.Fatalf("public to confidential: %d %s", a.status, a.body)
	}
	if _, err := ccToken(t, p.URL, native["client_id"].(string), nativeSecret, oauth2.AuthStyleInHeader); err == nil || !strings.Contains(err.Error(), "unauthorized_client") {
		t.Fatalf("the new secret: %v (want it authenticated, the grant refused)", err)
	}
	wantOAuthError(t, "delete with another's token", registration(t, "DELETE", p.URL, id, native["registration_access_token"].(string), nil), 401, "invalid_token")
	if a := registration(t, "DELETE", p.URL, id, rat, nil); a.status != 204 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	wantOAuthError(t, "read after delete", registration(t, "GET", p.URL, id, rat, nil), 401, "invalid_token")
	if _, err := r.cfg.TokenSource(r.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("the deleted client's refresh token still works")
	}

	// Expiry: a fresh token is refused once its hour has passed.
	late, _ := mintRegistrationToken(t, p.URL, "reg-admin", "--ttl", "1h")
	clk.Advance(time.Hour)
	wantOAuthError(t, "an expired initial access token", register(t, p.URL, late, webMetadata()), 401, "invalid_token")
	// The admin's mint and each registration are in the audit trail, by their actors.
	out, err = runIDP([]string{"audit", "--url", p.URL, "--admin-token", "reg-admin"})
	if err != nil || strings.Count(out, "registration_token_created") != 2 || !strings.Contains(out, "registration:"+iatID) ||
		!strings.Contains(out, "client "+id+" registered") || strings.Contains(out, iat) {
		t.Fatalf("idp audit: %v\n%s", err, out)
	}
	if lg := p.Log(); strings.Contains(lg, secret) || strings.Contains(lg, rat) || strings.Contains(lg, iat) {
		t.Fatal("a secret or token reached the log")
	}
}

// Open registration (--registration open) takes a loopback or https redirect URI without an
// initial access token, and refuses a plain-http one and the client-credentials grant.
func TestOpenClientRegistration(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--registration", "open", "--admin-token", "reg-admin")
	native := map[string]any{"client_name": "CLI", "redirect_uris": []string{"http://127.0.0.1:33418/callback", "https://cli.example/cb"},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}}
	a := register(t, p.URL, "", native)
	if a.status != 201 || a.json(t)["client_secret"] != nil || a.json(t)["token_endpoint_auth_method"] != "none" {
		t.Fatalf("open registration of a loopback client: %d %s", a.status, a.body)
	}
	evil := map[string]any{"redirect_uris": []string{"http://evil.example/cb"}, "token_endpoint_auth_method": "none"}
	wantOAuthError(t, "a non-loopback http redirect URI", register(t, p.URL, "", evil), 400, "invalid_redirect_uri")
	cc := map[string]any{"grant_types": []string{"client_credentials"}}
	wantOAuthError(t, "client credentials without an initial access token", register(t, p.URL, "", cc), 400, "invalid_client_metadata")
	// A device's sign-in shows only the client's name, which open registration lets anyone pick.
	dev := map[string]any{"client_name": "Company CLI", "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}, "token_endpoint_auth_method": "none"}
	wantOAuthError(t, "the device grant without an initial access token", register(t, p.URL, "", dev), 400, "invalid_client_metadata")
	// Nor may it make the IdP fetch or post to a URI of its choosing.
	for _, m := range []map[string]any{
		{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://keys.example/jwks", "grant_types": []string{"authorization_code"}, "redirect_uris": []string{"https://app.example/cb"}},
		{"token_endpoint_auth_method": "none", "backchannel_logout_uri": "https://rp.example/logout", "redirect_uris": []string{"https://app.example/cb"}},
	} {
		wantOAuthError(t, fmt.Sprintf("open registration with %v", m), register(t, p.URL, "", m), 400, "invalid_client_metadata")
	}
	if a := do(t, "POST", p.URL+"/register", "text/plain", strings.NewReader("{}")); a.status != 415 {
		t.Fatalf("a body that is not JSON: %d %s", a.status, a.body)
	}
	out, err := runIDP([]string{"clients", "list", "--url", p.URL, "--admin-token", "reg-admin"})
	if err != nil || !strings.Contains(out, "registration:open") {
		t.Fatalf("clients list: %v\n%s", err, out)
	}
	if out, err := runIDP([]string{"serve", "--registration", "sometimes"}); err == nil || !strings.Contains(out, "registration") {
		t.Fatalf("--registration sometimes: %v\n%s", err, out)
	}
}

// /register and /register/{id} share /token's per-client limit: past the burst, 429 until the
// (fake) clock lets another through.
func TestClientRegistrationRateLimited(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--registration", "open", "--token-rate-limit", "1", "--token-rate-burst", "2")
	native := map[string]any{"redirect_uris": []string{"http://127.0.0.1:33418/callback"}, "token_endpoint_auth_method": "none"}
	if a := register(t, p.URL, "", native); a.status != 201 {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	if a := registration(t, "GET", p.URL, "nobody", "wrong-token-0123456789", nil); a.status != 401 {
		t.Fatalf("second: %d %s", a.status, a.body)
	}
	if a := register(t, p.URL, "", native); a.status != 429 || a.json(t)["error"] == nil {
		t.Fatalf("past the burst: %d %s", a.status, a.body)
	}
	clk.Advance(time.Second)
	if a := register(t, p.URL, "", native); a.status != 201 {
		t.Fatalf("a second later: %d %s", a.status, a.body)
	}
}
