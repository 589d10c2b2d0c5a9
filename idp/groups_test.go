package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// An admin keeps groups and their members with `idp groups`: users named by username or sub,
// every mistake a clear error that changes nothing.
func TestGroupsCLI(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "groups-admin", "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	admin := []string{"--url", p.URL, "--admin-token", "groups-admin"}
	run := func(args ...string) (string, error) {
		return runIDP(append(append([]string{"groups"}, args...), admin...))
	}
	for _, tt := range []struct {
		args []string
		ok   bool
		out  string
	}{
		{[]string{"add", "ops"}, true, "group ops added"},
		{[]string{"add", "k8s:admins"}, true, "group k8s:admins added"},
		{[]string{"add", "ops"}, false, "already exists"},
		{[]string{"add", "Ops"}, false, "lower-case"},
		{[]string{"add-member", "ops", "ALICE"}, true, "ALICE (sub "},
		{[]string{"add-member", "ops", "alice"}, false, "already a member"},
		{[]string{"add-member", "nope", "alice"}, false, "Group not found"},
		{[]string{"add-member", "ops", "nobody"}, false, `no such user "nobody"`},
		{[]string{"remove-member", "k8s:admins", "alice"}, false, "not a member"},
		{[]string{"list"}, true, "k8s:admins\t"},
		{[]string{"list", "--limit", "1"}, true, "next page: --after k8s:admins"},
		{[]string{"remove", "k8s:admins"}, true, "group k8s:admins removed"},
		{[]string{"remove", "k8s:admins"}, false, "Group not found"},
		{[]string{"remove-member", "ops", "alice"}, true, "is no longer a member of ops"},
		{[]string{"add-member", "ops"}, false, "needs USER"},
		{[]string{"frobnicate"}, false, "usage: idp groups"},
	} {
		out, err := run(tt.args...)
		if (err == nil) != tt.ok || !strings.Contains(out, tt.out) {
			t.Fatalf("idp groups %s: %v\n%s\nwant ok=%t and %q", strings.Join(tt.args, " "), err, out, tt.ok, tt.out)
		}
	}
	if out, err := run("list"); err != nil || strings.TrimSpace(out) == "" || strings.Contains(out, "k8s") || !strings.HasPrefix(out, "ops\t") {
		t.Fatalf("the list at the end: %v\n%s", err, out)
	}
}

// startWithScopes is startIDP with workitems:admin limited to the group ops (what the
// configuration file's scopes section will set), a relying party that may ask for it and for
// groups, and the first-party client granted it.
func startWithScopes(t *testing.T) *servicetest.Instance {
	t.Helper()
	proctest.Secret(webSecret)
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, file, []any{map[string]any{"client_id": "webapp", "name": "The Web App", "client_secret": webSecret,
		"redirect_uris": []string{webCallback}, "grant_types": []string{"authorization_code", "refresh_token"},
		"scopes": []string{"openid", "groups", "offline_access", "workitems:admin"}}})
	conf := filepath.Join(t.TempDir(), "idp.yaml")
	if err := os.WriteFile(conf, []byte("scopes:\n  workitems:admin: {groups: [ops]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"idp", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", conf, "--clients", file, "--admin-token", "groups-admin",
		"--scope", "workitems:read workitems:admin", "--rate-limit", "0"}, proctest.FastArgon...)
	return servicetest.StartEnv(t, context.Background(), programOf(&config{}), service.Env{}, args...)
}

// A scope limited to a group is granted to a member and refused to a non-member at /authorize
// (go-oidc and x/oauth2 as the relying party) and at /auth; the member's ID token and /userinfo
// carry their groups with scope groups; removing them from the group stops the next refresh
// carrying the scope.
func TestScopeLimitedToGroupEndToEnd(t *testing.T) {
	p := startWithScopes(t)
	signup(t, p.URL, "alice", "correct-horse-9")
	signup(t, p.URL, "bob", "correct-horse-9")
	admin := []string{"--url", p.URL, "--admin-token", "groups-admin"}
	for _, args := range [][]string{{"add", "ops"}, {"add-member", "ops", "alice"}} {
		if out, err := runIDP(append(append([]string{"groups"}, args...), admin...)); err != nil {
			t.Fatalf("idp groups %v: %v\n%s", args, err, out)
		}
	}

	type result struct {
		tok    *oauth2.Token
		groups []string
	}
	signIn := func(user string) result {
		t.Helper()
		r := newRP(t, p.URL, "webapp", webSecret, webCallback, oidc.ScopeOpenID, "groups", oidc.ScopeOfflineAccess, "workitems:admin")
		verifier, nonce := oauth2.GenerateVerifier(), "n-"+user
		pg := r.signIn(r.get(r.cfg.AuthCodeURL("st-"+user, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))), user, "correct-horse-9")
		if strings.Contains(pg.body, `name="decision"`) {
			if !strings.Contains(pg.body, "See your groups") {
				t.Fatalf("the consent page does not name the groups scope: %s", pg.body)
			}
			// The page asks for what this user would get: the role only of a member.
			if shown, member := strings.Contains(pg.body, "See every user&#39;s work items"), user == "alice"; shown != member {
				t.Fatalf("%s's consent page shows the ops-only scope: %v: %s", user, shown, pg.body)
			}
			pg = r.submit(pg, "decision", "allow")
		}
		tok, idt := r.exchange(r.callback(pg, "st-"+user), verifier, nonce)
		var c struct {
			Groups []string `json:"groups"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		info, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		var ui struct {
			Groups []string `json:"groups"`
		}
		info.Claims(&ui)
		if !slices.Equal(ui.Groups, c.Groups) {
			t.Fatalf("%s: /userinfo groups %v, ID token's %v", user, ui.Groups, c.Groups)
		}
		return result{tok, c.Groups}
	}
	alice := signIn("alice")
	if got := alice.tok.Extra("scope"); got != "openid groups offline_access workitems:admin" || !slices.Equal(alice.groups, []string{"ops"}) {
		t.Fatalf("the member at /authorize: scope %v, groups %v", got, alice.groups)
	}
	if at := verifyWithJWKS(t, p.URL, p.URL, alice.tok.AccessToken); at["scope"] != "openid groups offline_access workitems:admin" {
		t.Fatalf("the member's access token: %v", at)
	}
	bob := signIn("bob")
	if got := bob.tok.Extra("scope"); got != "openid groups offline_access" || len(bob.groups) != 0 {
		t.Fatalf("the non-member at /authorize: scope %v, groups %v", got, bob.groups)
	}

	// /auth: the first-party client's scope, and its groups claim.
	for user, want := range map[string]string{"alice": "workitems:read workitems:admin", "bob": "workitems:read"} {
		at := verifyWithJWKS(t, p.URL, p.URL, login(t, p.URL, user, "correct-horse-9")["access_token"].(string))
		if at["scope"] != want {
			t.Fatalf("%s at /auth: scope %v, want %q", user, at["scope"], want)
		}
		if groups, _ := at["groups"].([]any); user == "alice" && (len(groups) != 1 || groups[0] != "ops") || user == "bob" && groups != nil {
			t.Fatalf("%s at /auth: groups %v", user, at["groups"])
		}
	}

	// Removed from ops, alice's next refresh no longer carries the scope.
	if out, err := runIDP(append([]string{"groups", "remove-member", "ops", "alice"}, admin...)); err != nil {
		t.Fatalf("remove-member: %v\n%s", err, out)
	}
	r := newRP(t, p.URL, "webapp", webSecret, webCallback)
	old := *alice.tok
	old.Expiry = time.Now().Add(-time.Hour)
	fresh, err := r.cfg.TokenSource(r.ctx, &old).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	proctest.Secret(fresh.AccessToken, fresh.RefreshToken)
	if got := fresh.Extra("scope"); got != "openid groups offline_access" {
		t.Fatalf("the refresh after the removal: scope %v", got)
	}
}
