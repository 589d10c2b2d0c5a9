package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// TestUpstreamOutage: an oidc connector whose provider is down and an ldap connector whose
// directory is down (nothing listens on either port) do not make the IdP unready: /readyz
// stays 200 before and after each is tried, local users sign in (at /auth and on the login
// form, password_backends [local, corp]), and /admin/connectors shows a last_error — the
// clock's time and the failure's words, no secret — for exactly the connectors tried so far.
func TestUpstreamOutage(t *testing.T) {
	dir := t.TempDir()
	closed := func() string { return "127.0.0.1:" + strconv.Itoa(proctest.FreePort(t)) }
	const clientSecret, bindPassword = "outage-client-secret-1", "outage-bind-password-2"
	proctest.Secret(clientSecret, bindPassword)
	writeFile(t, filepath.Join(dir, "client.secret"), clientSecret+"\n")
	writeFile(t, filepath.Join(dir, "bind.pw"), bindPassword+"\n")
	conf := filepath.Join(dir, "idp.yaml")
	writeFile(t, conf, `admin_token: outage-admin-token
connectors:
  - id: company
    type: oidc
    name: Company
    issuer: http://`+closed()+`
    client_id: jwtidp
    client_secret_file: `+filepath.Join(dir, "client.secret")+`
  - id: corp
    type: ldap
    name: Corporate directory
    url: ldap://`+closed()+`
    bind_dn: cn=jwtidp,ou=services,dc=example,dc=com
    bind_password_file: `+filepath.Join(dir, "bind.pw")+`
    user_search: {base_dn: "ou=people,dc=example,dc=com"}
password_backends: [local, corp]
`)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--config", conf, "--rate-limit", "0")

	ready := func(when string) {
		t.Helper()
		if a := get(t, p.URL+"/readyz"); a.status != 200 {
			t.Errorf("/readyz %s: %d %s", when, a.status, a.body)
		}
	}
	localSignIn := func(when string) {
		t.Helper()
		if a := authAs(t, p.URL, "local-user", "correct-horse-9"); a.status != 200 {
			t.Errorf("the local user at /auth %s: %d %s", when, a.status, a.body)
		}
		if code, body := browserLogin(t, p.URL, "local-user", "correct-horse-9"); code >= 400 {
			t.Errorf("the local user on the login form %s: %d %s", when, code, body)
		}
	}
	type status struct {
		ID        string    `json:"id"`
		LastError time.Time `json:"last_error"`
		Error     string    `json:"error"`
	}
	connectors := func() map[string]status {
		t.Helper()
		a := do(t, "GET", p.URL+"/admin/connectors", "", nil, "Authorization", "Bearer outage-admin-token")
		var list struct {
			Result []status `json:"result"`
		}
		if err := json.Unmarshal(a.body, &list); a.status != 200 || err != nil || len(list.Result) != 2 {
			t.Fatalf("/admin/connectors: %d %s", a.status, a.body)
		}
		for _, s := range []string{clientSecret, bindPassword} {
			if strings.Contains(string(a.body), s) {
				t.Fatalf("a secret in /admin/connectors: %s", a.body)
			}
		}
		out := map[string]status{}
		for _, s := range list.Result {
			out[s.ID] = s
		}
		return out
	}
	failed := func(s status) bool { return !s.LastError.IsZero() && s.Error != "" }

	ready("at start")
	signup(t, p.URL, "local-user", "correct-horse-9")
	localSignIn("before any connector is tried")
	if st := connectors(); failed(st["company"]) || failed(st["corp"]) {
		t.Fatalf("errors before any connector was tried: %+v", st)
	}

	// The directory is tried by a name no local user has: refused as a wrong password.
	clk.Advance(time.Minute)
	if a := authAs(t, p.URL, "alice", "alice-directory-password-3"); a.status != 401 {
		t.Errorf("a directory user with the directory down: %d %s", a.status, a.body)
	}
	st := connectors()
	if !failed(st["corp"]) || !st["corp"].LastError.Equal(clk.Now()) || failed(st["company"]) {
		t.Errorf("after the directory was tried at %s: %+v", clk.Now(), st)
	}
	ready("after the directory failed")
	localSignIn("with the directory down")

	// The provider is tried by its button: a page saying so, with the way back.
	clk.Advance(time.Minute)
	if a := get(t, p.URL+"/login/upstream/company?rd=/app"); a.status != 503 || !strings.Contains(string(a.body), "Company cannot be reached") {
		t.Errorf("the provider down: %d %s", a.status, a.body)
	}
	st = connectors()
	if !failed(st["company"]) || !st["company"].LastError.Equal(clk.Now()) || !st["corp"].LastError.Equal(clk.Now().Add(-time.Minute)) {
		t.Errorf("after the provider was tried at %s: %+v", clk.Now(), st)
	}
	ready("after the provider failed")
	localSignIn("with both down")
	for _, s := range []string{clientSecret, bindPassword, "alice-directory-password-3"} {
		if strings.Contains(p.Log(), s) {
			t.Errorf("a secret reached the IdP's log")
		}
	}
}
