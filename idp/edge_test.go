package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

const portalCallback = "http://127.0.0.1:9/portal/cb"

// edgeClients is oidcClients plus "portal", a relying party registered with forward_auth: its
// users' tokens may pass /verify. It is granted no profile scope, so its tokens carry no
// preferred_username: /verify must name the user from the store.
func edgeClients(t *testing.T) string {
	t.Helper()
	proctest.Secret(webSecret)
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, file, []any{
		map[string]any{"client_id": "webapp", "name": "The Web App", "client_secret": webSecret,
			"redirect_uris": []string{webCallback}, "grant_types": []string{"authorization_code", "refresh_token"},
			"scopes": []string{"openid", "profile", "email", "offline_access", "workitems:read"}},
		map[string]any{"client_id": "portal", "client_secret": webSecret + "-portal", "first_party": true, "forward_auth": true,
			"redirect_uris": []string{portalCallback}, "grant_types": []string{"authorization_code"},
			"scopes": []string{"openid", "workitems:read"}},
		map[string]any{"client_id": "service", "client_secret": webSecret + "-svc", "grant_types": []string{"client_credentials"},
			"scopes": []string{"workitems:read"}},
	})
	return file
}

// rpAccessToken runs the code flow for user as the relying party r (consenting when asked) and
// returns the access token it gets.
func rpAccessToken(t *testing.T, r *rp, user, pw string) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	pg := r.signIn(r.get(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nn"))), user, pw)
	if strings.Contains(pg.body, `name="decision"`) {
		pg = r.submit(pg, "decision", "allow")
	}
	tok, _ := r.exchange(r.callback(pg, "st"), verifier, "nn")
	return tok.AccessToken
}

// verifyBearer asks /verify about a bearer token as nginx would.
func verifyBearer(t *testing.T, base, tok string) answer {
	t.Helper()
	return do(t, "GET", base+"/verify", "", nil, "Authorization", "Bearer "+tok,
		"X-Forwarded-Proto", "https", "X-Forwarded-Host", "app.example.com", "X-Forwarded-Uri", "/private")
}

func wantEdge(t *testing.T, name string, a answer, user string) {
	t.Helper()
	if a.status != 200 || a.header.Get("Remote-User") != user || a.header.Get("X-Auth-User") != user || a.header.Get("X-Auth-Subject") == "" {
		t.Fatalf("%s at /verify: %d, Remote-User %q, want 200 for %s", name, a.status, a.header.Get("Remote-User"), user)
	}
}

func wantRefused(t *testing.T, name string, a answer) {
	t.Helper()
	if a.status != 401 || len(a.body) != 0 || !strings.HasPrefix(a.header.Get("X-Auth-Redirect"), "/login?rd=") ||
		a.header.Get("Remote-User") != "" || a.header.Get("X-Auth-Subject") != "" {
		t.Fatalf("%s at /verify: %d %q (X-Auth-Redirect %q, Remote-User %q), want 401 with the login redirect",
			name, a.status, a.body, a.header.Get("X-Auth-Redirect"), a.header.Get("Remote-User"))
	}
}

// Issue 25, finding 1: /verify lets in only tokens issued to a client allowed at the edge (the
// IdP's own, or one registered with forward_auth) that name a user who is still active. A
// relying party's token from /authorize, a client-credentials token, and a disabled or deleted
// user's unexpired token all got 200 before; now 401 with the login redirect. On the process
// that disables, deletes or re-enables, the change is seen at once; the fake clock never moves.
func TestVerifyLetsInOnlyEdgeTokens(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", edgeClients(t), "--admin-token", "cli-admin",
		"--rate-limit", "0", "--session-cache-ttl", "5s")
	signup(t, p.URL, "alice", "correct-horse-9")
	own := login(t, p.URL, "alice", "correct-horse-9")["access_token"].(string)
	sub := verifyWithJWKS(t, p.URL, p.URL, own)["sub"].(string)

	web := rpAccessToken(t, newRP(t, p.URL, "webapp", webSecret, webCallback, oidc.ScopeOpenID, "profile"), "alice", "correct-horse-9")
	portal := newRP(t, p.URL, "portal", webSecret+"-portal", portalCallback, oidc.ScopeOpenID, "workitems:read")
	edge := rpAccessToken(t, portal, "alice", "correct-horse-9")
	if c := verifyWithJWKS(t, p.URL, p.URL, edge); c["preferred_username"] != nil || c["client_id"] != "portal" {
		t.Fatalf("the portal's token without profile: %v", c)
	}
	cc, err := ccToken(t, p.URL, "service", webSecret+"-svc", oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}

	wantEdge(t, "the IdP's own token", verifyBearer(t, p.URL, own), "alice")
	wantEdge(t, "a forward_auth client's token", verifyBearer(t, p.URL, edge), "alice")
	if a := verifyBearer(t, p.URL, own); a.header.Get("X-Auth-Subject") != sub {
		t.Fatalf("X-Auth-Subject %q, want %q", a.header.Get("X-Auth-Subject"), sub)
	}
	wantRefused(t, "a relying party's token", verifyBearer(t, p.URL, web))
	wantRefused(t, "a client-credentials token", verifyBearer(t, p.URL, cc.AccessToken))

	admin := func(method, path string) {
		t.Helper()
		if a := do(t, method, p.URL+path, "", nil, "Authorization", "Bearer cli-admin"); a.status != 200 {
			t.Fatalf("%s %s: %d %s", method, path, a.status, a.body)
		}
	}
	admin("POST", "/admin/users/"+sub+"/disable")
	wantRefused(t, "a disabled user's own token", verifyBearer(t, p.URL, own))
	wantRefused(t, "a disabled user's forward_auth token", verifyBearer(t, p.URL, edge))
	admin("POST", "/admin/users/"+sub+"/enable")
	wantEdge(t, "the re-enabled user's token", verifyBearer(t, p.URL, own), "alice")
	admin("DELETE", "/admin/users/"+sub)
	wantRefused(t, "a deleted user's token", verifyBearer(t, p.URL, own))
	wantRefused(t, "a deleted user's forward_auth token", verifyBearer(t, p.URL, edge))

	if lg := p.Log(); strings.Contains(lg, own) || strings.Contains(lg, edge) || strings.Contains(lg, web) {
		t.Fatal("a token reached the log")
	}
}

// A disable on one replica reaches /verify on the other within --session-cache-ttl: the other
// believes its cached answer (the hot path does not read the store) until the bound, then
// refuses the token. The replica that disabled refuses it at once.
func TestVerifySeesADisableOnEveryReplica(t *testing.T) {
	db := pgtest.NewDatabase(t)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	a := startReplica(t, db, service.Env{Clock: clk}, "--session-cache-ttl", "5s", "--admin-token", "cli-admin")
	b := startReplica(t, db, service.Env{Clock: clk}, "--session-cache-ttl", "5s", "--admin-token", "cli-admin")
	signup(t, a.URL, "roam", "correct-horse-9")
	own := login(t, b.URL, "roam", "correct-horse-9")["access_token"].(string)
	sub := verifyWithJWKS(t, a.URL, sharedIssuer, own)["sub"].(string)
	for _, in := range []*servicetest.Instance{a, b} {
		wantEdge(t, "a fresh token", verifyBearer(t, in.URL, own), "roam") // now in both caches
	}
	if d := do(t, "POST", a.URL+"/admin/users/"+sub+"/disable", "", nil, "Authorization", "Bearer cli-admin"); d.status != 200 {
		t.Fatalf("disable: %d %s", d.status, d.body)
	}
	wantRefused(t, "on the replica that disabled", verifyBearer(t, a.URL, own))
	wantEdge(t, "on the other replica, within the cache's bound", verifyBearer(t, b.URL, own), "roam")
	clk.Advance(5*time.Second + time.Millisecond)
	wantRefused(t, "on the other replica, past the cache's bound", verifyBearer(t, b.URL, own))
}
