package main

import (
	"context"
	"encoding/json"

	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// ccToken gets a token with the real OAuth client library, authenticating as style says.
func ccToken(t *testing.T, base, id, secret string, style oauth2.AuthStyle, scopes ...string) (*oauth2.Token, error) {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: base + "/token", Scopes: scopes, AuthStyle: style}
	tok, err := cfg.Token(context.Background())
	if err == nil {
		proctest.Secret(tok.AccessToken)
	}
	return tok, err
}

var secretLine = regexp.MustCompile(`(?m)^client_secret: (\S+)$`)

// `idp clients add` registers a service and prints its secret once; golang.org/x/oauth2's
// clientcredentials gets tokens with it in both authentication styles, and they verify against
// the served JWKS with the client as subject.
func TestClientCredentialsWithTheOAuth2Library(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin")
	out, err := runIDP([]string{"clients", "add", "--url", p.URL, "--id", "reporter", "--name", "Nightly report",
		"--grant-type", "client_credentials", "--scope", "workitems:read", "--scope", "workitems:write"}, "IDP_ADMIN_TOKEN=cli-admin")
	m := secretLine.FindStringSubmatch(out)
	if err != nil || m == nil || !strings.Contains(out, "confidential") {
		t.Fatalf("clients add: %v\n%s", err, out)
	}
	secret := m[1]
	proctest.Secret(secret)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		tok, err := ccToken(t, p.URL, "reporter", secret, style)
		if err != nil {
			t.Fatalf("style %d: %v", style, err)
		}
		if tok.TokenType != "Bearer" || tok.RefreshToken != "" || tok.Extra("id_token") != nil || tok.Expiry.IsZero() {
			t.Fatalf("style %d: %+v", style, tok)
		}
		c := verifyWithJWKS(t, p.URL, p.URL, tok.AccessToken)
		if c["sub"] != "reporter" || c["client_id"] != "reporter" || c["scope"] != "workitems:read workitems:write" || tok.Extra("scope") != c["scope"] {
			t.Fatalf("style %d: claims %v", style, c)
		}
		if tok, err := ccToken(t, p.URL, "reporter", secret, style, "workitems:read"); err != nil || tok.Extra("scope") != "workitems:read" {
			t.Fatalf("style %d, narrowed: %v %v", style, err, tok)
		}
		// The library reports the refusal as RFC 6749 says it.
		_, err = ccToken(t, p.URL, "reporter", secret+"x", style)
		var re *oauth2.RetrieveError
		if !errorsAs(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
			t.Fatalf("style %d, a wrong secret: %v", style, err)
		}
		if _, err = ccToken(t, p.URL, "reporter", secret, style, "idp:admin"); !errorsAs(err, &re) || re.ErrorCode != "invalid_scope" {
			t.Fatalf("style %d, a scope not allowed: %v", style, err)
		}
	}
	out, err = runIDP([]string{"clients", "list", "--url", p.URL, "--admin-token", "cli-admin"})
	if err != nil || !strings.Contains(out, "reporter") || !strings.Contains(out, "Nightly report") || strings.Contains(out, secret) {
		t.Fatalf("clients list: %v\n%s", err, out)
	}
	out, err = runIDP([]string{"clients", "show", "reporter", "--url", p.URL, "--admin-token", "cli-admin"})
	if err != nil || !strings.Contains(out, "workitems:read workitems:write") || strings.Contains(out, secret) || strings.Contains(out, "client_secret") {
		t.Fatalf("clients show: %v\n%s", err, out)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"clients", "add", "--id", "reporter", "--grant-type", "client_credentials"}, "refused"},
		{[]string{"clients", "add", "--id", "x", "--grant-type", "client_credentials", "--public"}, "public client"},
		{[]string{"clients", "add", "--id", "x"}, "--grant-type"},
		{[]string{"clients", "show", "nobody"}, "refused"},
		{[]string{"clients", "remove"}, "needs a client id"},
		{[]string{"clients", "remove", "-nobody"}, "refused"}, // an id, not a flag
		{[]string{"clients", "frobnicate"}, "usage"},
	} {
		out, err := runIDP(append(bad.args, "--url", p.URL, "--admin-token", "cli-admin"))
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("%v: %v\n%s, want an error saying %q", bad.args, err, out, bad.want)
		}
	}
	if out, err := runIDP([]string{"clients", "list", "--url", p.URL, "--admin-token", "wrong"}); err == nil || !strings.Contains(out, "refused the admin token") {
		t.Fatalf("a wrong admin token: %v\n%s", err, out)
	}
	if out, err := runIDP([]string{"clients", "remove", "reporter", "--url", p.URL, "--admin-token", "cli-admin"}); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("clients remove: %v\n%s", err, out)
	}
	if _, err := ccToken(t, p.URL, "reporter", secret, oauth2.AuthStyleInHeader); err == nil {
		t.Fatal("a removed client still gets tokens")
	}
	if strings.Contains(p.Log(), secret) {
		t.Fatal("the secret reached the log")
	}
}

func errorsAs(err error, target **oauth2.RetrieveError) bool {
	re, ok := err.(*oauth2.RetrieveError)
	if !ok {
		return false
	}
	*target = re
	return true
}

// wiBin is the work-item service's binary, built by TestMain.
var wiBin string

// The work-item service accepts a client's token for exactly the scopes granted: a client with
// only workitems:read can list but not create.
func TestClientTokenAtTheWorkItemService(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin")
	wi := proctest.Start(t, wiBin, []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--issuer", p.URL})
	if err := proctest.WaitReady(wi.URL, 10e9); err != nil {
		t.Fatalf("%v\n%s", err, wi.Log())
	}
	secrets := map[string]string{}
	for id, scope := range map[string]string{"reader": "workitems:read", "writer": "workitems:read,workitems:write"} {
		out, err := runIDP([]string{"clients", "add", "--url", p.URL, "--admin-token", "cli-admin", "--id", id,
			"--grant-type", "client_credentials", "--scope", scope})
		m := secretLine.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("clients add %s: %v\n%s", id, err, out)
		}
		secrets[id] = m[1]
		proctest.Secret(m[1])
	}
	call := func(id, method string) int {
		tok, err := ccToken(t, p.URL, id, secrets[id], oauth2.AuthStyleInHeader)
		if err != nil {
			t.Fatal(err)
		}
		var body *strings.Reader
		if method == "POST" {
			body = strings.NewReader(`{"title":"from a service"}`)
		} else {
			body = strings.NewReader("")
		}
		return do(t, method, wi.URL+"/workitems", "application/json", body, "Authorization", "Bearer "+tok.AccessToken).status
	}
	if got := call("reader", "GET"); got != 200 {
		t.Fatalf("reader lists: %d", got)
	}
	if got := call("reader", "POST"); got != 403 {
		t.Fatalf("reader creates: %d, want 403", got)
	}
	if got := call("writer", "POST"); got != 201 {
		t.Fatalf("writer creates: %d, want 201", got)
	}
}

func writeClients(t *testing.T, path string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A client declared in --clients gets tokens; a second start with the file changed updates it
// (scopes and secret); a bad file stops start-up naming the setting and the client.
func TestClientsFile(t *testing.T) {
	dir, file := t.TempDir(), filepath.Join(t.TempDir(), "clients.json")
	const first, second = "first-secret-of-the-batch-job-0123456789", "second-secret-of-the-batch-job-0123456789"
	proctest.Secret(first, second)
	client := map[string]any{"client_id": "batch", "name": "Batch", "public": false, "grant_types": []string{"client_credentials"},
		"scopes": []string{"workitems:read"}, "first_party": false, "client_secret": first}
	spa := map[string]any{"client_id": "spa", "public": true, "grant_types": []string{"authorization_code"},
		"redirect_uris": []string{"http://127.0.0.1:5173/cb"}}
	writeClients(t, file, []any{client, spa})
	p := startIDP(t, dir, "--clients", file)
	tok, err := ccToken(t, p.URL, "batch", first, oauth2.AuthStyleInParams)
	if err != nil || tok.Extra("scope") != "workitems:read" {
		t.Fatalf("a declared client: %v %v", err, tok)
	}
	if c := verifyWithJWKS(t, p.URL, p.URL, tok.AccessToken); c["sub"] != "batch" {
		t.Fatalf("claims %v", c)
	}
	if _, err := ccToken(t, p.URL, "spa", "", oauth2.AuthStyleInParams); err == nil || !strings.Contains(err.Error(), "unauthorized_client") {
		t.Fatalf("a declared public client: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	client["client_secret"], client["scopes"] = second, []string{"workitems:read", "workitems:write"}
	writeClients(t, file, []any{client})
	p = startIDPEnv(t, dir, service.Env{Getenv: getenv("IDP_CLIENTS=" + file)})
	if _, err := ccToken(t, p.URL, "batch", first, oauth2.AuthStyleInHeader); err == nil {
		t.Fatal("the old secret still works after the file changed")
	}
	tok, err = ccToken(t, p.URL, "batch", second, oauth2.AuthStyleInHeader)
	if err != nil || tok.Extra("scope") != "workitems:read workitems:write" {
		t.Fatalf("after the update: %v %v", err, tok)
	}
	if lg := p.Log(); strings.Contains(lg, first) || strings.Contains(lg, second) {
		t.Fatal("a secret reached the log")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []struct {
		name     string
		contents string
		want     []string
	}{
		{"not JSON", `{`, []string{"clients"}},
		{"an unknown member", `[{"client_id":"x","grant_types":["client_credentials"],"client_secret":"` + second + `","secrett":1}]`, []string{"clients", "client 1"}},
		{"no secret", `[{"client_id":"nosecret","grant_types":["client_credentials"]}]`, []string{"clients", `"nosecret"`, "client_secret"}},
		{"a short secret", `[{"client_id":"weak","grant_types":["client_credentials"],"client_secret":"hunter22"}]`, []string{"clients", `"weak"`}},
		{"a public client with a secret", `[{"client_id":"pub","public":true,"grant_types":["authorization_code"],"redirect_uris":["https://a.example/cb"],"client_secret":"` + second + `"}]`, []string{"clients", `"pub"`}},
		{"a bad redirect URI", `[{"client_id":"web","grant_types":["authorization_code"],"redirect_uris":["http://a.example/cb"],"client_secret":"` + second + `"}]`, []string{"clients", `"web"`, "https"}},
		{"twice", `[{"client_id":"a","grant_types":["client_credentials"],"client_secret":"` + second + `"},{"client_id":"a","grant_types":["client_credentials"],"client_secret":"` + second + `"}]`, []string{"clients", "twice"}},
	} {
		path := filepath.Join(t.TempDir(), "bad.json")
		os.WriteFile(path, []byte(bad.contents), 0o600)
		out, err := runIDP([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--clients", path})
		if err == nil {
			t.Errorf("%s: the IdP started", bad.name)
			continue
		}
		for _, w := range bad.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %q does not say %s", bad.name, out, w)
			}
		}
		if strings.Contains(out, second) {
			t.Errorf("%s: the error carries the secret", bad.name)
		}
	}
	if out, err := runIDP([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--clients", filepath.Join(t.TempDir(), "missing.json")}); err == nil || !strings.Contains(out, "clients") {
		t.Errorf("a missing file: %v %q", err, out)
	}
}

// Replicas on one PostgreSQL database start at once with the same clients file: each declares
// the client (one creates it, the other finds it and updates it), both start, and a token one
// issues verifies at the other's JWKS.
func TestClientsFileOnReplicas(t *testing.T) {
	db := pgtest.NewDatabase(t)
	file := filepath.Join(t.TempDir(), "clients.json")
	const secret = "replicated-secret-of-the-batch-job-0123456789"
	proctest.Secret(secret)
	writeClients(t, file, []any{map[string]any{"client_id": "batch", "grant_types": []string{"client_credentials"},
		"scopes": []string{"workitems:read"}, "client_secret": secret}})
	var wg sync.WaitGroup
	ins := make([]*servicetest.Instance, 3)
	for i := range ins {
		wg.Go(func() { ins[i] = startReplica(t, db, service.Env{}, "--clients", file) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, in := range ins {
		tok, err := ccToken(t, in.URL, "batch", secret, oauth2.AuthStyleInHeader)
		if err != nil {
			t.Fatalf("%s: %v\n%s", in.URL, err, in.Log())
		}
		if c := verifyWithJWKS(t, ins[0].URL, sharedIssuer, tok.AccessToken); c["sub"] != "batch" {
			t.Fatalf("claims %v", c)
		}
	}
}
