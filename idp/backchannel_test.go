package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// logoutRP is a relying party's back-channel logout endpoint: it records every POST's
// logout_token and answers with the status it is set to.
type logoutRP struct {
	mu     sync.Mutex
	status int
	tokens []string // every logout_token POSTed, in order
	srv    *httptest.Server
}

func newLogoutRP(t *testing.T) *logoutRP {
	rp := &logoutRP{status: http.StatusOK}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/bcl" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "not a back-channel logout", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		rp.mu.Lock()
		defer rp.mu.Unlock()
		rp.tokens = append(rp.tokens, form.Get("logout_token"))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(rp.status)
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *logoutRP) set(status int) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.status = status
}

func (rp *logoutRP) got() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return slices.Clone(rp.tokens)
}

// waitFor waits until the RP got n POSTs, advancing the IdP's clock by step each time it looks
// (0: not at all), and returns them.
func (rp *logoutRP) waitFor(t *testing.T, clk *clock.Fake, step time.Duration, n int) []string {
	t.Helper()
	if !proctest.Eventually(10*time.Second, func() bool {
		if step > 0 {
			clk.Advance(step)
		}
		return len(rp.got()) >= n
	}) {
		t.Fatalf("the RP got %d back-channel logouts, want %d", len(rp.got()), n)
	}
	got := rp.got()
	if len(got) != n {
		t.Fatalf("the RP got %d back-channel logouts, want %d", len(got), n)
	}
	return got
}

// verifyLogoutToken checks raw as OpenID Connect Back-Channel Logout 1.0 §2.6 has a relying
// party validate it at clk's time, with golang-jwt against the IdP's JWKS, and returns its claims.
func verifyLogoutToken(t *testing.T, clk *clock.Fake, base, clientID, sub, sid string, raw string) jwt.MapClaims {
	t.Helper()
	keys, _ := jwksKeys(t, base)
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		k, ok := keys[tok.Header["kid"].(string)]
		if !ok {
			return nil, fmt.Errorf("kid %v not in JWKS", tok.Header["kid"])
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(base), jwt.WithAudience(clientID), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithTimeFunc(clk.Now)) // the RP's clock is the IdP's
	if err != nil {
		t.Fatalf("the logout token does not verify against the JWKS: %v", err)
	}
	events, _ := claims["events"].(map[string]any)
	member, isObject := events["http://schemas.openid.net/event/backchannel-logout"].(map[string]any)
	if tok.Header["typ"] != "logout+jwt" || !isObject || len(member) != 0 || claims["sub"] != sub || claims["sid"] != sid ||
		claims["jti"] == "" || claims["jti"] == nil || claims["nonce"] != nil {
		t.Fatalf("the logout token: header %v claims %v; want typ logout+jwt, sub %s, sid %s, the event, a jti, no nonce", tok.Header, claims, sub, sid)
	}
	return claims
}

// Back-channel logout: a client registered with backchannel_logout_uri that got tokens from a
// browser session is POSTed one signed logout_token when that session ends — RP-initiated
// logout, an admin's disable, a password change, an admin's logout — from the outbox, never in the request: a 503
// is retried after the back-off on the IdP's clock, a 400 dropped. A client without the URI,
// and a session the client got no tokens from, are not told.
func TestBackchannelLogout(t *testing.T) {
	bcl := newLogoutRP(t)
	proctest.Secret(webSecret)
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, file, []any{
		map[string]any{"client_id": "webapp", "name": "The Web App", "client_secret": webSecret,
			"redirect_uris": []string{webCallback}, "post_logout_redirect_uris": []string{"http://127.0.0.1:9/bye"},
			"grant_types": []string{"authorization_code"}, "scopes": []string{"openid"},
			"backchannel_logout_uri": bcl.srv.URL + "/bcl", "backchannel_logout_session_required": true},
		map[string]any{"client_id": "quiet", "name": "No Back Channel", "client_secret": webSecret + "-q",
			"redirect_uris": []string{webCallback}, "grant_types": []string{"authorization_code"}, "scopes": []string{"openid"}},
	})
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", file, "--admin-token", "bcl-admin", "--rate-limit", "0")
	disco := do(t, "GET", p.URL+"/.well-known/openid-configuration", "", nil).json(t)
	if disco["backchannel_logout_supported"] != true || disco["backchannel_logout_session_supported"] != true {
		t.Fatalf("discovery: %v", disco)
	}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		signup(t, p.URL, u, "correct-horse-9")
	}
	// signIn runs a code flow of client in browser (nil: a new one) and returns the browser,
	// the ID token and its sub and sid.
	signIn := func(browser *rp, client, secret, user string) (*rp, string, string, string) {
		t.Helper()
		r := newRP(t, p.URL, client, secret, webCallback, oidc.ScopeOpenID)
		if browser != nil {
			r.browser.Jar = browser.browser.Jar
		}
		v := oauth2.GenerateVerifier()
		pg := r.signIn(r.get(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(v), oidc.Nonce("n"))), user, "correct-horse-9")
		if strings.Contains(pg.body, `name="decision"`) {
			pg = r.submit(pg, "decision", "allow")
		}
		tok, idt := r.exchange(r.callback(pg, "st"), v, "n")
		var c idClaims
		idt.Claims(&c)
		raw, _ := tok.Extra("id_token").(string)
		return r, raw, idt.Subject, c.SID
	}
	admin := func(path string) {
		t.Helper()
		if a := do(t, "POST", p.URL+path, "", nil, "Authorization", "Bearer bcl-admin"); a.status/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, a.status, a.body)
		}
	}

	// alice in two browsers: the web app got tokens from the first session, only the client
	// without a URI from the second. An admin's logout ends both; only the first is reported.
	r1, idToken, alice, sid1 := signIn(nil, "webapp", webSecret, "alice")
	signIn(r1, "quiet", webSecret+"-q", "alice") // the same session: quiet has no URI
	signIn(nil, "quiet", webSecret+"-q", "alice")
	if got := bcl.got(); len(got) != 0 {
		t.Fatalf("a sign-in POSTed a logout: %d", len(got))
	}
	// RP-initiated logout of the first session: answered at once, the RP told once.
	r1.browser.CheckRedirect = stopAt(webCallback, "http://127.0.0.1:9/bye")
	if pg := r1.get(p.URL + "/logout?" + url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}}.Encode()); !strings.HasPrefix(pg.url.String(), "http://127.0.0.1:9/bye") {
		t.Fatalf("logout: %d %s", pg.status, pg.url)
	}
	got := bcl.waitFor(t, clk, 0, 1)
	verifyLogoutToken(t, clk, p.URL, "webapp", alice, sid1, got[0])
	admin("/admin/users/" + alice + "/logout") // the second session: nobody to tell

	// bob's RP is down (503) when an admin disables him: the disable answers at once, the
	// delivery is retried after the back-off (30 s on the IdP's clock), and arrives once the RP
	// is up, with the same jti.
	_, _, bob, sidBob := signIn(nil, "webapp", webSecret, "bob")
	bcl.set(http.StatusServiceUnavailable)
	admin("/admin/users/" + bob + "/disable")
	got = bcl.waitFor(t, clk, 0, 2)
	first := verifyLogoutToken(t, clk, p.URL, "webapp", bob, sidBob, got[1])
	if !p.WaitLog(10*time.Second, func(log string) bool { return strings.Contains(log, "back-channel logout not sent: will retry") }) {
		t.Fatalf("the 503 was not logged as a retry:\n%s", p.Log())
	}
	bcl.set(http.StatusOK)
	got = bcl.waitFor(t, clk, 10*time.Second, 3)
	again := verifyLogoutToken(t, clk, p.URL, "webapp", bob, sidBob, got[2])
	if again["jti"] != first["jti"] {
		t.Fatalf("a retry has another jti: %v, %v", first["jti"], again["jti"])
	}

	// dave changes his password (with the IdP's own sign-in): his sessions end, the RP is told.
	_, _, dave, sidDave := signIn(nil, "webapp", webSecret, "dave")
	tok := login(t, p.URL, "dave", "correct-horse-9")["access_token"].(string)
	proctest.Secret(tok, "another-horse-10")
	if a := do(t, "POST", p.URL+"/account/password", "application/json",
		strings.NewReader(`{"current_password":"correct-horse-9","new_password":"another-horse-10"}`), "Authorization", "Bearer "+tok); a.status != 204 {
		t.Fatalf("password change: %d %s", a.status, a.body)
	}
	got = bcl.waitFor(t, clk, 0, 4)
	verifyLogoutToken(t, clk, p.URL, "webapp", dave, sidDave, got[3])

	// carol's RP refuses (400): dropped, never tried again.
	_, _, carol, sidCarol := signIn(nil, "webapp", webSecret, "carol")
	bcl.set(http.StatusBadRequest)
	admin("/admin/users/" + carol + "/logout")
	got = bcl.waitFor(t, clk, 0, 5)
	verifyLogoutToken(t, clk, p.URL, "webapp", carol, sidCarol, got[4])
	if !proctest.Eventually(10*time.Second, func() bool {
		m := string(do(t, "GET", p.URL+"/metrics", "", nil).body)
		return strings.Contains(m, `idp_backchannel_logouts_total{outcome="dropped"} 1`) &&
			strings.Contains(m, `idp_backchannel_logouts_total{outcome="sent"} 3`) &&
			strings.Contains(m, `idp_backchannel_logouts_total{outcome="retry"} 1`) && strings.Contains(m, "idp_mail_queued 0")
	}) {
		t.Fatalf("the metrics do not show 3 sent, 1 retry, 1 dropped and an empty queue")
	}
	// Nothing is left to try again: the queue is empty. (Had alice's second session been
	// reported, its POST would have come before bob's, in the outbox's order.)
	if lg := p.Log(); strings.Contains(lg, got[0]) || strings.Contains(lg, got[4]) || strings.Contains(lg, "another-horse-10") || strings.Contains(lg, "correct-horse-9") {
		t.Fatal("a logout token or a password reached the log")
	}
}
