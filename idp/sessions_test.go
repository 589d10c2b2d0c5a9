package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

func postForm(t *testing.T, u string, v url.Values) answer {
	t.Helper()
	return do(t, "POST", u, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
}

func refreshGrant(t *testing.T, base, rt string) answer {
	t.Helper()
	a := postForm(t, base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	var m map[string]any
	if json.Unmarshal(a.body, &m) == nil {
		at, _ := m["access_token"].(string)
		nrt, _ := m["refresh_token"].(string)
		proctest.Secret(at, nrt)
	}
	return a
}

func wantGrantError(t *testing.T, a answer, code string) {
	t.Helper()
	if a.status != 400 || a.json(t)["error"] != code || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("got %d %s (Cache-Control %q); want 400 %s", a.status, a.body, a.header.Get("Cache-Control"), code)
	}
}

func TestRefreshRotationAndReuseDetection(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "lena", "correct-horse-9")
	r0 := login(t, p.URL, "lena", "correct-horse-9")["refresh_token"].(string)
	a := refreshGrant(t, p.URL, r0)
	if a.status != 200 || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("R0 → R1: %d %s", a.status, a.body)
	}
	m := a.json(t)
	r1 := m["refresh_token"].(string)
	if r1 == r0 || m["token_type"] != "Bearer" || m["scope"] != "workitems:read workitems:write" || m["expires_in"] != float64(900) {
		t.Fatalf("answer %v", m)
	}
	verifyWithJWKS(t, p.URL, p.URL, m["access_token"].(string))
	a = refreshGrant(t, p.URL, r1)
	if a.status != 200 {
		t.Fatalf("R1 → R2: %d %s", a.status, a.body)
	}
	r2 := a.json(t)["refresh_token"].(string)
	// Replaying R0 is refused, and kills the family: R2 stops working too.
	wantGrantError(t, refreshGrant(t, p.URL, r0), "invalid_grant")
	wantGrantError(t, refreshGrant(t, p.URL, r2), "invalid_grant")
	wantGrantError(t, refreshGrant(t, p.URL, "made-up-token"), "invalid_grant")
	// A new login is unaffected.
	r := login(t, p.URL, "lena", "correct-horse-9")["refresh_token"].(string)
	if a := refreshGrant(t, p.URL, r); a.status != 200 {
		t.Fatalf("fresh login's refresh: %d", a.status)
	}
	for _, lg := range []string{r0, r1, r2} {
		if strings.Contains(p.Log(), lg) {
			t.Fatal("a refresh token reached the log")
		}
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	p := startIDP(t, t.TempDir())
	wantGrantError(t, postForm(t, p.URL+"/token", url.Values{"grant_type": {"password"}, "username": {"x"}, "password": {"y"}}), "unsupported_grant_type")
	wantGrantError(t, postForm(t, p.URL+"/token", url.Values{"refresh_token": {"x"}}), "invalid_request")
	wantGrantError(t, postForm(t, p.URL+"/token", url.Values{"grant_type": {"refresh_token"}}), "invalid_request")
	wantGrantError(t, postForm(t, p.URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"a", "b"}}), "invalid_request")
	wantGrantError(t, do(t, "POST", p.URL+"/token", "application/json", strings.NewReader(`{"grant_type":"refresh_token"}`)), "invalid_request")
	big := "refresh_token=" + strings.Repeat("a", 100<<10)
	if a := do(t, "POST", p.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(big)); a.status != 400 && a.status != 413 {
		t.Fatalf("100 KiB form: %d", a.status)
	}
}

func TestConcurrentRefreshesOneWinner(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "mona", "correct-horse-9")
	r0 := login(t, p.URL, "mona", "correct-horse-9")["refresh_token"].(string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := refreshGrant(t, p.URL, r0)
			mu.Lock()
			codes[a.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 1 || codes[400] != 19 {
		t.Fatalf("answers %v; want exactly one 200 and 19 invalid_grant", codes)
	}
}

func TestRevokeKillsTheFamily(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "nina", "correct-horse-9")
	r0 := login(t, p.URL, "nina", "correct-horse-9")["refresh_token"].(string)
	r1 := refreshGrant(t, p.URL, r0).json(t)["refresh_token"].(string)
	// Revoking an older token of the family ends the whole family.
	if a := postForm(t, p.URL+"/revoke", url.Values{"token": {r0}}); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	wantGrantError(t, refreshGrant(t, p.URL, r1), "invalid_grant")
	for _, tok := range []string{r1, "never-issued"} {
		if a := postForm(t, p.URL+"/revoke", url.Values{"token": {tok}}); a.status != 200 {
			t.Fatalf("revoking %q again: %d", tok, a.status)
		}
	}
	if a := postForm(t, p.URL+"/revoke", url.Values{}); a.status != 400 || a.json(t)["error"] != "invalid_request" {
		t.Fatalf("revoke without token: %d %s", a.status, a.body)
	}
}

func TestPasswordChangeKillsAllFamilies(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "olga", "correct-horse-9")
	first := login(t, p.URL, "olga", "correct-horse-9")
	second := login(t, p.URL, "olga", "correct-horse-9")
	bearer := "Bearer " + first["access_token"].(string)
	change := func(cur, next string) answer {
		return do(t, "POST", p.URL+"/account/password", "application/json",
			strings.NewReader(`{"current_password":"`+cur+`","new_password":"`+next+`"}`), "Authorization", bearer)
	}
	if a := change("wrong-password-1", "new-horse-battery"); a.status != 401 || string(a.body) != `{"Status":"Error","result":"Invalid credentials"}`+"\n" {
		t.Fatalf("wrong current password: %d %s", a.status, a.body)
	}
	if a := change("correct-horse-9", "password1"); a.status != 400 {
		t.Fatalf("common new password: %d %s", a.status, a.body)
	}
	// Refused attempts changed nothing.
	a := refreshGrant(t, p.URL, second["refresh_token"].(string))
	if a.status != 200 {
		t.Fatalf("a refused change revoked sessions: %d", a.status)
	}
	secondNewest := a.json(t)["refresh_token"].(string)
	if a := do(t, "POST", p.URL+"/account/password", "application/json", strings.NewReader(`{}`)); a.status != 401 {
		t.Fatalf("without a token: %d", a.status)
	}
	if a := change("correct-horse-9", "new-horse-battery"); a.status != 204 || len(a.body) != 0 {
		t.Fatalf("change: %d %s", a.status, a.body)
	}
	wantGrantError(t, refreshGrant(t, p.URL, first["refresh_token"].(string)), "invalid_grant")
	wantGrantError(t, refreshGrant(t, p.URL, secondNewest), "invalid_grant")
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "olga", "password": "correct-horse-9"}); a.status != 401 {
		t.Fatalf("old password still works: %d", a.status)
	}
	login(t, p.URL, "olga", "new-horse-battery")
	if strings.Contains(p.Log(), "new-horse-battery") {
		t.Fatal("the new password reached the log")
	}
}

// Lifetimes run on the IdP's clock, which the test moves: an access token ends at exp (plus
// the leeway), a refresh family at its absolute lifetime however often it is refreshed, a
// browser session when unused for the idle TTL, and at its absolute TTL however often it is
// used.
func TestLifetimesOnTheIdPsClock(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second)) // a token's times are whole seconds
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--refresh-ttl", "1h", "--rate-limit", "0")
	signup(t, p.URL, "timo", "correct-horse-9")
	tok := login(t, p.URL, "timo", "correct-horse-9")
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	userinfo := func(at string) int {
		return do(t, "GET", p.URL+"/userinfo", "", nil, "Authorization", "Bearer "+at).status
	}
	session := func() string {
		t.Helper()
		resp, _ := browserLoginResp(t, p.URL, "timo", "correct-horse-9")
		for _, c := range resp.Cookies() {
			if c.Name == "jwtidp_session" {
				proctest.Secret(c.Value)
				return c.Value
			}
		}
		t.Fatalf("browser login: %d, no session cookie", resp.StatusCode)
		return ""
	}
	verify := func(cookie string) int {
		return do(t, "GET", p.URL+"/verify", "", nil, "Cookie", "jwtidp_session="+cookie).status
	}
	a := session()
	if userinfo(at) != 200 || verify(a) != 200 {
		t.Fatalf("fresh token: %d, fresh session: %d", userinfo(at), verify(a))
	}

	clk.Advance(15*time.Minute + 29*time.Second) // within the token's lifetime and the 30s leeway
	if got := userinfo(at); got != 200 {
		t.Fatalf("token 1s short of exp + leeway: %d, want 200", got)
	}
	clk.Advance(2 * time.Second)
	if got := userinfo(at); got != 401 {
		t.Fatalf("token past exp + leeway: %d, want 401", got)
	}
	r := refreshGrant(t, p.URL, rt)
	if r.status != 200 {
		t.Fatalf("refresh within the family's hour: %d %s", r.status, r.body)
	}
	rt = r.json(t)["refresh_token"].(string)
	if got := verify(a); got != 200 {
		t.Fatalf("session used 15m ago: %d, want 200", got)
	}

	clk.Advance(44*time.Minute + 29*time.Second) // an hour since the login: refreshing did not extend it
	wantGrantError(t, refreshGrant(t, p.URL, rt), "invalid_grant")

	clk.Advance(2*time.Hour + time.Second) // the session's idle TTL, unused
	if got := verify(a); got != 401 {
		t.Fatalf("session unused for 2h: %d, want 401", got)
	}

	b := session() // used every hour, it still ends 12h after the login
	for i := range 11 {
		clk.Advance(time.Hour)
		if got := verify(b); got != 200 {
			t.Fatalf("session used hourly, after %dh: %d, want 200", i+1, got)
		}
	}
	clk.Advance(time.Hour + time.Second)
	if got := verify(b); got != 401 {
		t.Fatalf("session past its 12h: %d, want 401", got)
	}
}
