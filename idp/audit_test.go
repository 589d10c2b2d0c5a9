package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// auditEvent is an event as GET /admin/audit answers it: the wire contract, apart from the
// handler's type.
type auditEvent struct {
	ID       int64     `json:"id"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	User     string    `json:"user"`
	Actor    string    `json:"actor"`
	ClientIP string    `json:"client_ip"`
	Outcome  string    `json:"outcome"`
	Detail   string    `json:"detail"`
}

func auditEvents(t *testing.T, base, query string) ([]auditEvent, string) {
	t.Helper()
	a := do(t, "GET", base+"/admin/audit?"+query, "", nil, "Authorization", "Bearer audit-admin")
	if a.status != 200 || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /admin/audit?%s: %d %s", query, a.status, a.body)
	}
	var env struct {
		Result struct {
			Events []auditEvent `json:"events"`
		} `json:"result"`
	}
	if err := json.Unmarshal(a.body, &env); err != nil {
		t.Fatal(err)
	}
	return env.Result.Events, string(a.body)
}

// The audit trail after a scripted scenario — signup, failed logins, a lockout, a success, a
// password change, refresh-token reuse, an admin's disable and a key rotation — holds exactly
// the expected events in order, each with its user, actor, address and outcome, on the IdP's
// clock; filters by user and type work, `idp audit` prints them, and no event holds a password,
// a code or a token. On bbolt and on PostgreSQL.
func TestAuditTrailOfAScenario(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { auditScenario(t) })
	t.Run("postgres", func(t *testing.T) { auditScenario(t, "--database-url", pgtest.NewDatabase(t)) })
}

func auditScenario(t *testing.T, extra ...string) {
	start := time.Now().Truncate(time.Second)
	clk := clock.NewFake(start)
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, append([]string{"--admin-token", "audit-admin", "--rate-limit", "0"}, extra...)...)
	pw, pw2 := "correct-horse-9", "battery-staple-7"
	proctest.Secret(pw, pw2, "wrong-horse-9")
	signup(t, p.URL, "alice", pw)
	login(t, p.URL, "alice", pw)
	wrong := map[string]string{"username": "alice", "password": "wrong-horse-9"}
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "nobody", "password": "wrong-horse-9"}); a.status != 401 {
		t.Fatalf("unknown user: %d", a.status)
	}
	for i := 0; i < 5; i++ {
		if a := postJSON(t, p.URL+"/auth", wrong); a.status != 401 {
			t.Fatalf("wrong password %d: %d %s", i, a.status, a.body)
		}
	}
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "alice", "password": pw}); a.status != 429 {
		t.Fatalf("locked out: %d %s", a.status, a.body)
	}
	clk.Advance(2 * time.Minute)
	tok := login(t, p.URL, "alice", pw)
	at := tok["access_token"].(string)
	b, _ := json.Marshal(map[string]string{"current_password": pw, "new_password": pw2})
	if a := do(t, "POST", p.URL+"/account/password", "application/json", strings.NewReader(string(b)), "Authorization", "Bearer "+at); a.status != 204 {
		t.Fatalf("password change: %d %s", a.status, a.body)
	}
	rt1 := login(t, p.URL, "alice", pw2)["refresh_token"].(string)
	a := refreshGrant(t, p.URL, rt1)
	if a.status != 200 {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	rt2 := a.json(t)["refresh_token"].(string)
	wantGrantError(t, refreshGrant(t, p.URL, rt1), "invalid_grant") // reuse: the family ends
	if out, err := runIDP([]string{"users", "disable", "alice", "--url", p.URL, "--admin-token", "audit-admin"}); err != nil {
		t.Fatalf("disable: %v\n%s", err, out)
	}
	if out, err := runIDP([]string{"keys", "rotate", "--url", p.URL, "--admin-token", "audit-admin"}); err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}

	events, body := auditEvents(t, p.URL, "")
	alice := userOf(t, p.URL, "alice")
	u := "user:" + alice
	want := []string{
		"key_rotated success  system ",
		"signup success alice " + u,
		"login success alice " + u,
		"login failure  anonymous 127.0.0.1",
		"login failure alice anonymous 127.0.0.1",
		"login failure alice anonymous 127.0.0.1",
		"login failure alice anonymous 127.0.0.1",
		"login failure alice anonymous 127.0.0.1",
		"login failure alice anonymous 127.0.0.1",
		"lockout failure alice anonymous 127.0.0.1",
		"login success alice " + u,
		"password_change success alice " + u,
		"login success alice " + u,
		"refresh_reuse failure alice anonymous 127.0.0.1",
		"user_disabled success alice admin-token 127.0.0.1",
		"key_rotated success  admin-token 127.0.0.1",
	}
	var got []string
	for i := len(events) - 1; i >= 0; i-- { // newest first on the wire
		e := events[i]
		user := e.User
		if user == alice {
			user = "alice"
		}
		ip := e.ClientIP
		if e.Type == "signup" || e.Outcome == "success" && e.Actor == u {
			ip = "" // checked below: every request's event has the address
		}
		got = append(got, strings.TrimSpace(fmt.Sprintf("%s %s %s %s %s", e.Type, e.Outcome, user, e.Actor, ip)))
		if i > 0 && events[i-1].ID <= e.ID {
			t.Errorf("ids not newest first: %d then %d", e.ID, events[i-1].ID)
		}
		if e.Actor != "system" && e.ClientIP != "127.0.0.1" {
			t.Errorf("event %+v: no client address", e)
		}
		if e.Time.Before(start) || e.Time.After(clk.Now()) {
			t.Errorf("event %+v: not on the IdP's clock (%s .. %s)", e, start, clk.Now())
		}
	}
	for i := range want {
		want[i] = strings.TrimSpace(want[i])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, secret := range []string{pw, pw2, "wrong-horse-9", at, rt1, rt2, "audit-admin"} {
		if strings.Contains(body, secret) {
			t.Fatalf("the audit trail holds a secret")
		}
	}

	// Filters: by user (username or sub), by type, by time; paging.
	if byUser, _ := auditEvents(t, p.URL, "user=ALICE"); len(byUser) != 13 {
		t.Errorf("user=ALICE: %d events, want 13", len(byUser))
	}
	if fails, _ := auditEvents(t, p.URL, "type=login&user="+alice); len(fails) != 8 {
		t.Errorf("type=login: %d events, want 8", len(fails))
	}
	if recent, _ := auditEvents(t, p.URL, "since=1m"); len(recent) != 6 {
		t.Errorf("since=1m (after the lockout's wait): %d events, want 6", len(recent))
	}
	page, _ := auditEvents(t, p.URL, "limit=2")
	older, _ := auditEvents(t, p.URL, fmt.Sprintf("limit=2&before=%d", page[1].ID))
	if len(page) != 2 || len(older) != 2 || older[0].Type != "refresh_reuse" || older[1].Type != "login" {
		t.Errorf("paging: %+v then %+v", page, older)
	}
	for _, q := range []string{"limit=0", "limit=1001", "since=yesterday", "before=x"} {
		if a := do(t, "GET", p.URL+"/admin/audit?"+q, "", nil, "Authorization", "Bearer audit-admin"); a.status != 400 {
			t.Errorf("%s: %d %s", q, a.status, a.body)
		}
	}
	out, err := runIDP([]string{"audit", "--user", "alice", "--type", "lockout", "--url", p.URL, "--admin-token", "audit-admin"})
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, "lockout") || !strings.Contains(out, "anonymous") {
		t.Fatalf("idp audit: %v\n%s", err, out)
	}
}

// userOf is the sub of username, through the admin route.
func userOf(t *testing.T, base, username string) string {
	t.Helper()
	a := do(t, "GET", base+"/admin/users?username="+url.QueryEscape(username), "", nil, "Authorization", "Bearer audit-admin")
	var env struct {
		Result struct {
			Users []struct {
				ID string `json:"id"`
			} `json:"users"`
		} `json:"result"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &env) != nil || len(env.Result.Users) != 1 {
		t.Fatalf("GET /admin/users?username=%s: %d %s", username, a.status, a.body)
	}
	return env.Result.Users[0].ID
}

// What a client can repeat does not flood the trail: ending a family already ended records
// nothing more, and a locked-out client's refused attempts make one lockout event. And a
// deleted user's sub keeps finding their events after someone signs up with that sub as their
// username.
func TestAuditTrailCannotBeFloodedOrMisled(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "audit-admin", "--rate-limit", "0")
	signup(t, p.URL, "carol", "correct-horse-9")
	tok := login(t, p.URL, "carol", "correct-horse-9")
	at := tok["access_token"].(string)
	browserSession(t, p.URL, "carol", "correct-horse-9") // a browser's sign-in is recorded as well
	if ev, _ := auditEvents(t, p.URL, "type=login"); len(ev) != 2 || ev[0].Outcome != "success" || ev[1].Outcome != "success" {
		t.Fatalf("an API and a browser sign-in: %+v", ev)
	}
	var family string
	for _, s := range accountSessions(t, p.URL, at) {
		if s.Kind == "refresh" {
			family = s.ID
		}
	}
	for i := 0; i < 3; i++ {
		if a := do(t, "DELETE", p.URL+"/account/sessions/"+family, "", nil, "Authorization", "Bearer "+at); a.status != 204 {
			t.Fatalf("end the family, time %d: %d %s", i, a.status, a.body)
		}
	}
	if ev, _ := auditEvents(t, p.URL, "type=revocation"); len(ev) != 1 {
		t.Errorf("one family ended three times: %d revocation events, want 1", len(ev))
	}
	for i := 0; i < 5; i++ {
		postJSON(t, p.URL+"/auth", map[string]string{"username": "carol", "password": "wrong-horse-9"})
	}
	for i := 0; i < 4; i++ {
		if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "carol", "password": "wrong-horse-9"}); a.status != 429 {
			t.Fatalf("locked out: %d", a.status)
		}
	}
	if ev, _ := auditEvents(t, p.URL, "type=lockout"); len(ev) != 1 {
		t.Errorf("four refused attempts in one lockout: %d lockout events, want 1", len(ev))
	}

	sub := userOf(t, p.URL, "carol")
	if out, err := runIDP([]string{"users", "delete", "carol", "--url", p.URL, "--admin-token", "audit-admin"}); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	signup(t, p.URL, sub, "correct-horse-9") // a username that looks like carol's sub
	events, _ := auditEvents(t, p.URL, "user="+sub)
	if len(events) == 0 || events[len(events)-1].Type != "signup" || events[len(events)-1].User != sub || events[0].Type != "user_deleted" {
		t.Fatalf("the deleted user's sub finds someone else's trail: %+v", events)
	}
}

// A registered client's own requests name it as the actor: its /revoke of a user's refresh
// token is "client:webapp" in the trail, not the user.
func TestAuditNamesTheClient(t *testing.T) {
	p := startOIDC(t)
	signup(t, p.URL, "dora", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback, "openid", "offline_access")
	verifier := oauth2.GenerateVerifier()
	pg := r.signIn(r.get(r.cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n"))), "dora", "correct-horse-9")
	tok, _ := r.exchange(r.callback(r.submit(pg, "decision", "allow"), "s"), verifier, "n")
	req, _ := http.NewRequest("POST", p.URL+"/revoke", strings.NewReader(url.Values{"token": {tok.RefreshToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("webapp", webSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", err, resp)
	}
	resp.Body.Close()
	a := do(t, "GET", p.URL+"/admin/audit?type=revocation", "", nil, "Authorization", "Bearer oidc-admin")
	var env struct {
		Result struct{ Events []auditEvent } `json:"result"`
	}
	if json.Unmarshal(a.body, &env) != nil || len(env.Result.Events) != 1 || env.Result.Events[0].Actor != "client:webapp" || env.Result.Events[0].User == "" {
		t.Fatalf("the revocation's event: %s", a.body)
	}
}

// The rest of API.md's list, each in the trail with its actor: an email change, a second factor
// added (with a wrong code before) and removed by its user; a client registered and deleted by
// an admin.
func TestAuditOfAccountAndClientChanges(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--admin-token", "audit-admin", "--rate-limit", "0")
	const pw = "correct-horse-9"
	signup(t, p.URL, "eve", pw)
	at := login(t, p.URL, "eve", pw)["access_token"].(string)
	if a := bearerJSON(t, "PUT", p.URL+"/account/email", at, `{"email":"eve@example.com","current_password":"`+pw+`"}`); a.status != 200 {
		t.Fatalf("email: %d %s", a.status, a.body)
	}
	a := bearerJSON(t, "POST", p.URL+"/account/totp", at, `{"current_password":"`+pw+`"}`)
	secret, _ := a.json(t)["secret"].(string)
	proctest.Secret(secret)
	code := func() string {
		c, err := totp.GenerateCode(secret, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		proctest.Secret(c)
		return c
	}
	bearerJSON(t, "POST", p.URL+"/account/totp/confirm", at, `{"code":"000000"}`)
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", at, `{"code":"`+code()+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	clk.Advance(30 * time.Second) // the next step's code: the confirming one is spent
	if a := bearerJSON(t, "DELETE", p.URL+"/account/totp", at, `{"password":"`+pw+`","code":"`+code()+`"}`); a.status != 204 {
		t.Fatalf("turn TOTP off: %d %s", a.status, a.body)
	}
	admin := []string{"--url", p.URL, "--admin-token", "audit-admin"}
	if out, err := runIDP(append([]string{"clients", "add", "--id", "reporter", "--grant-type", "client_credentials", "--scope", "workitems:read"}, admin...)); err != nil {
		t.Fatalf("clients add: %v\n%s", err, out)
	}
	if out, err := runIDP(append([]string{"clients", "remove", "reporter"}, admin...)); err != nil {
		t.Fatalf("clients remove: %v\n%s", err, out)
	}

	eve := userOf(t, p.URL, "eve")
	var got []string
	events, body := auditEvents(t, p.URL, "")
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		if e.Type == "key_rotated" || e.Type == "signup" || e.Type == "login" {
			continue
		}
		who := e.User
		if who == eve {
			who = "eve"
		}
		got = append(got, fmt.Sprintf("%s %s %s %s", e.Type, e.Outcome, who, strings.ReplaceAll(e.Actor, eve, "eve")))
	}
	want := []string{
		"email_change success eve user:eve",
		"second_factor_failure failure eve user:eve",
		"second_factor_added success eve user:eve",
		"second_factor_removed success eve user:eve",
		"client_created success  admin-token",
		"client_deleted success  admin-token",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(body, secret) || strings.Contains(body, "eve@example.com") || strings.Contains(body, pw) {
		t.Fatal("the trail holds the TOTP secret, the email or the password")
	}
	// Each event is also one structured log line.
	for _, typ := range []string{"email_change", "second_factor_added", "second_factor_removed", "client_created", "client_deleted"} {
		if n := strings.Count(p.Log(), "msg=audit "); n < len(want) || !strings.Contains(p.Log(), "type="+typ+" ") {
			t.Errorf("no audit log line of type %s (%d audit lines)", typ, n)
		}
	}
}
