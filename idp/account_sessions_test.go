package main

import (
	"encoding/json"
	"testing"
	"time"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

type accountSession struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ClientID   string     `json:"client_id"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
	Current    bool       `json:"current"`
}

func accountSessions(t *testing.T, base, at string) []accountSession {
	t.Helper()
	a := do(t, "GET", base+"/account/sessions", "", nil, "Authorization", "Bearer "+at)
	if a.status != 200 || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /account/sessions: %d %s (Cache-Control %q)", a.status, a.body, a.header.Get("Cache-Control"))
	}
	var raw map[string][]map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &raw); err != nil || raw["sessions"] == nil {
		t.Fatalf("GET /account/sessions: %s (%v)", a.body, err)
	}
	for _, e := range raw["sessions"] {
		if len(e) != 8 {
			t.Fatalf("entry %v: want exactly id, kind, created_at, last_used_at, client_id, ip, user_agent, current", e)
		}
	}
	var m struct{ Sessions []accountSession }
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatal(err)
	}
	return m.Sessions
}

func browserSession(t *testing.T, base, user, pw string) string {
	t.Helper()
	resp, _ := browserLoginResp(t, base, user, pw)
	for _, c := range resp.Cookies() {
		if c.Name == "jwtidp_session" {
			proctest.Secret(c.Value)
			return c.Value
		}
	}
	t.Fatalf("browser login: %d, no session cookie", resp.StatusCode)
	return ""
}

// A user lists their two browser sessions and their /auth refresh family, ends one session
// (the other keeps working; the ended one stops at /verify within the session cache's TTL) and
// the family (its refresh token stops at once); another user's ids are unknown to them.
func TestAccountSessions(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0", "--session-cache-ttl", "5s")
	signup(t, p.URL, "sina", "correct-horse-9")
	signup(t, p.URL, "otto", "correct-horse-8")
	verify := func(cookie string) int {
		return do(t, "GET", p.URL+"/verify", "", nil, "Cookie", "jwtidp_session="+cookie).status
	}

	a := browserSession(t, p.URL, "sina", "correct-horse-9")
	clk.Advance(time.Second)
	b := browserSession(t, p.URL, "sina", "correct-horse-9")
	clk.Advance(time.Second)
	tok := login(t, p.URL, "sina", "correct-horse-9")
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	otto := login(t, p.URL, "otto", "correct-horse-8")
	ottoAT, ottoRT := otto["access_token"].(string), otto["refresh_token"].(string)
	ottoCookie := browserSession(t, p.URL, "otto", "correct-horse-8")
	if verify(a) != 200 || verify(b) != 200 || verify(ottoCookie) != 200 {
		t.Fatalf("fresh sessions: %d %d %d", verify(a), verify(b), verify(ottoCookie))
	}

	list := accountSessions(t, p.URL, at)
	if len(list) != 3 {
		t.Fatalf("sessions: %+v, want 2 browser sessions and 1 refresh family", list)
	}
	sa, sb, fam := list[0], list[1], list[2]
	for _, s := range []accountSession{sa, sb} {
		if s.Kind != "browser" || s.ID == "" || s.ClientID != "idp" || s.IP != "127.0.0.1" || s.UserAgent == "" ||
			s.LastUsedAt == nil || s.LastUsedAt.Before(s.CreatedAt) || s.Current || s.CreatedAt.Location() != time.UTC {
			t.Fatalf("browser session entry %+v", s)
		}
	}
	if !sa.CreatedAt.Before(sb.CreatedAt) || !sb.CreatedAt.Before(fam.CreatedAt) {
		t.Fatalf("not oldest first: %+v", list)
	}
	if fam.Kind != "refresh" || fam.ID == "" || fam.ClientID != "idp" || fam.LastUsedAt != nil || fam.IP != "" ||
		fam.UserAgent != "" || !fam.Current || fam.CreatedAt.IsZero() {
		t.Fatalf("refresh family entry %+v", fam)
	}
	for _, s := range list {
		if s.ID == a || s.ID == b || s.ID == rt || s.ID == at {
			t.Fatal("an entry's id is a secret")
		}
	}
	ottoList := accountSessions(t, p.URL, ottoAT)
	if len(ottoList) != 2 {
		t.Fatalf("otto's sessions: %+v", ottoList)
	}

	// Unauthenticated, and ids that are not the caller's.
	if st := do(t, "GET", p.URL+"/account/sessions", "", nil).status; st != 401 {
		t.Fatalf("GET without a token: %d, want 401", st)
	}
	if st := do(t, "DELETE", p.URL+"/account/sessions/"+sa.ID, "", nil).status; st != 401 {
		t.Fatalf("DELETE without a token: %d, want 401", st)
	}
	end := func(tok, id string) answer {
		return do(t, "DELETE", p.URL+"/account/sessions/"+id, "", nil, "Authorization", "Bearer "+tok)
	}
	unknown := end(at, "no-such-session-id")
	for _, o := range ottoList {
		a := end(at, o.ID)
		if a.status != 404 || string(a.body) != string(unknown.body) {
			t.Fatalf("ending another user's %s: %d %s; an unknown id: %d %s", o.Kind, a.status, a.body, unknown.status, unknown.body)
		}
	}
	if unknown.status != 404 {
		t.Fatalf("unknown id: %d", unknown.status)
	}
	if len(accountSessions(t, p.URL, ottoAT)) != 2 || verify(ottoCookie) != 200 {
		t.Fatal("another user's DELETE changed their sessions")
	}
	clk.Advance(6 * time.Second) // past the cache: otto's session is read from the store again
	if verify(ottoCookie) != 200 {
		t.Fatal("another user's DELETE ended their browser session")
	}
	if r := refreshGrant(t, p.URL, ottoRT); r.status != 200 {
		t.Fatalf("another user's DELETE revoked their family: %d %s", r.status, r.body)
	}

	// Ending session a: b keeps working, a stops within the cache's TTL.
	if verify(a) != 200 || verify(b) != 200 { // both cached now
		t.Fatal("sessions before the end")
	}
	if r := end(at, sa.ID); r.status != 204 {
		t.Fatalf("ending session a: %d %s", r.status, r.body)
	}
	clk.Advance(5*time.Second + time.Millisecond)
	if got := verify(a); got != 401 {
		t.Fatalf("ended session past the cache TTL: %d, want 401", got)
	}
	if got := verify(b); got != 200 {
		t.Fatalf("the other session: %d, want 200", got)
	}
	if r := end(at, sa.ID); r.status != 404 {
		t.Fatalf("ending it again: %d, want 404", r.status)
	}

	// Ending the family: its refresh token fails at once; the session is untouched.
	if r := end(at, fam.ID); r.status != 204 {
		t.Fatalf("ending the family: %d %s", r.status, r.body)
	}
	wantGrantError(t, refreshGrant(t, p.URL, rt), "invalid_grant")
	if got := verify(b); got != 200 {
		t.Fatalf("session b after the family ended: %d", got)
	}
	left := accountSessions(t, p.URL, at)
	if len(left) != 1 || left[0].ID != sb.ID {
		t.Fatalf("left: %+v, want session b only", left)
	}
}
