package main

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/idp/pgstore"
	"jwtidp/shared/clock"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

const sharedIssuer = "http://idp.shared.test"

// startReplica runs an IdP in this process on the PostgreSQL database dbURL, with the issuer
// all replicas share.
func startReplica(t *testing.T, dbURL string, env service.Env, extra ...string) *servicetest.Instance {
	t.Helper()
	args := append([]string{"--database-url", dbURL, "--issuer", sharedIssuer, "--rate-limit", "0"}, extra...)
	return startIDPEnv(t, t.TempDir(), env, args...)
}

// Two replicas on one clock and a short schedule: each period rotates once, not once per
// replica — the due check is made inside the transaction that rotates.
func TestScheduledRotationAcrossReplicasOncePerPeriod(t *testing.T) {
	db := pgtest.NewDatabase(t)
	clk := clock.NewFake(time.Now())
	a := startReplica(t, db, service.Env{Clock: clk}, "--key-rotation", "1s")
	b := startReplica(t, db, service.Env{Clock: clk}, "--key-rotation", "1s")
	// 6.5 seconds of the fake clock in steps of 100 ms, each taken once both schedules (and
	// both outboxes' polls: four waiters) are waiting on it again: rotations are due at 1, 2, … 6 s. (Without the lock that makes the
	// due check and the write one step, about one run in three counts a double rotation.)
	for range 65 {
		clk.BlockUntil(4)
		clk.Advance(100 * time.Millisecond)
	}
	clk.BlockUntil(4)
	// A schedule woken by the other replica's rotation leaves its abandoned timer among the
	// fake clock's waiters, so BlockUntil can return while the last due rotation is still being
	// written: wait for it (the clock stays at 6.5 s, so no seventh can be due).
	rotated := regexp.MustCompile(`signing keys rotated on schedule`)
	count := func() int {
		return len(rotated.FindAllString(a.Log(), -1)) + len(rotated.FindAllString(b.Log(), -1))
	}
	proctest.Eventually(10*time.Second, func() bool { return count() >= 6 })
	if n := count(); n != 6 {
		t.Fatalf("%d scheduled rotations by two replicas over six periods, want 6\nA:\n%s\nB:\n%s", n, a.Log(), b.Log())
	}
}

// Failed logins count across replicas: three wrong passwords on one and two on the other lock
// the pair out on both. An attacker does not get a fresh allowance per replica.
func TestThrottleCountsAcrossReplicas(t *testing.T) {
	db := pgtest.NewDatabase(t)
	a := startReplica(t, db, service.Env{})
	b := startReplica(t, db, service.Env{})
	signup(t, a.URL, "spread", "correct-horse-9")
	for i := range 5 {
		if got := authAs(t, []string{a.URL, b.URL}[i%2], "spread", "wrong-password-x"); got.status != 401 {
			t.Fatalf("failure %d: %d %s", i+1, got.status, got.body)
		}
	}
	for _, in := range []*servicetest.Instance{a, b} {
		got := authAs(t, in.URL, "spread", "correct-horse-9")
		if got.status != 429 || got.header.Get("Retry-After") == "" {
			t.Fatalf("after five failures spread over two replicas: %d %s, want 429 with Retry-After", got.status, got.body)
		}
	}
}

// The database goes away (a TCP proxy between the IdP and PostgreSQL is cut): what needs the
// store answers 503 with Retry-After, readiness is 503, bearer tokens still verify from memory
// (their user as last seen);
// when it returns the IdP recovers by itself, with everything acknowledged before still there.
func TestDatabaseOutage(t *testing.T) {
	proxy, db := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	p := startReplica(t, db, service.Env{}, "--database-connect-timeout", "1s", "--database-statement-timeout", "2s",
		"--session-cache-ttl", "0s", "--database-max-conns", "2")
	signup(t, p.URL, "steady", "correct-horse-9")
	tokens := login(t, p.URL, "steady", "correct-horse-9")
	access := tokens["access_token"].(string)
	// /verify asks whether a bearer token's user is still active; during the outage it goes
	// by the last answer it had, whatever the cache's bound (0 here).
	if a := do(t, "GET", p.URL+"/verify", "", nil, "Authorization", "Bearer "+access); a.status != 200 {
		t.Fatalf("bearer verification before the outage: %d", a.status)
	}

	proxy.Cut()
	// No request may hang: the client gives up (and the test fails) after 20 s.
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(method, path, ctype, body string, hdr ...string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, p.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil { // Errorf, not Fatalf: it may run on another goroutine
			t.Errorf("%s %s during the outage: %v", method, path, err)
			return 0, http.Header{}, ""
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		sb.Write(buf[:n])
		return resp.StatusCode, resp.Header, sb.String()
	}
	creds := `{"username":"steady","password":"correct-horse-9"}`
	for _, c := range []struct{ method, path, ctype, body string }{
		{"POST", "/auth", "application/json", creds},
		{"POST", "/signup", "application/json", `{"username":"newcomer","password":"correct-horse-9"}`},
		{"POST", "/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=" + tokens["refresh_token"].(string)},
	} {
		status, hdr, body := get(c.method, c.path, c.ctype, c.body)
		if status != 503 || hdr.Get("Retry-After") == "" {
			t.Fatalf("%s %s during the outage: %d %s (Retry-After %q), want 503 with Retry-After", c.method, c.path, status, body, hdr.Get("Retry-After"))
		}
	}
	if status, _, _ := get("GET", "/readyz", "", ""); status != 503 {
		t.Fatalf("readiness during the outage: %d, want 503", status)
	}
	if status, _, _ := get("GET", "/verify", "", "", "Authorization", "Bearer "+access); status != 200 {
		t.Fatalf("bearer verification during the outage: %d, want 200 (keys are in memory)", status)
	}
	if status, _, _ := get("GET", "/.well-known/jwks.json", "", ""); status != 200 {
		t.Fatalf("JWKS during the outage: %d", status)
	}

	proxy.Restore()
	if !proctest.Eventually(30*time.Second, func() bool { s, _, _ := get("GET", "/readyz", "", ""); return s == 200 }) {
		t.Fatalf("not ready again after the database returned\n%s", p.Log())
	}
	// A network that drops packets instead of connections: nothing fails, nothing answers. The
	// statement deadline still ends the request (503), and the client's 20 s guard never fires.
	// Three times as many logins as pooled connections: those waiting for a connection stuck
	// on the stalled database give up at the same deadline instead of queueing behind it.
	stalled := login(t, p.URL, "steady", "correct-horse-9")["refresh_token"].(string) // on a pooled connection now
	proxy.Stall()
	// A refresh grant sends its statements in batches: they end at the same deadline.
	form := "grant_type=refresh_token&refresh_token=" + stalled
	if status, hdr, body := get("POST", "/token", "application/x-www-form-urlencoded", form); status != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("refresh with the database's packets dropped: %d %s, want 503 with Retry-After", status, body)
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if status, hdr, body := get("POST", "/auth", "application/json", creds); status != 503 || hdr.Get("Retry-After") == "" {
				t.Errorf("login with the database's packets dropped: %d %s, want 503 with Retry-After", status, body)
			}
		})
	}
	wg.Wait()
	proxy.Restore()
	if !proctest.Eventually(30*time.Second, func() bool { s, _, _ := get("GET", "/readyz", "", ""); return s == 200 }) {
		t.Fatalf("not ready again after the database returned\n%s", p.Log())
	}
	login(t, p.URL, "steady", "correct-horse-9")
	if a := refreshGrant(t, p.URL, tokens["refresh_token"].(string)); a.status != 200 {
		t.Fatalf("the refresh token acknowledged before the outage: %d %s", a.status, a.body)
	}
	signup(t, p.URL, "newcomer", "correct-horse-9") // refused during the outage, so not there
}

// Moving up: a bbolt store with users, keys in several states and refresh families, copied
// into PostgreSQL and served from there — old passwords log in, old tokens verify, old refresh
// tokens refresh, and a refresh token spent before the move is still recognised as reuse.
func TestStoreCopyRoundTrip(t *testing.T) {
	const admin = "copy-admin-secret"
	dir := t.TempDir()
	old := startIDP(t, dir, "--issuer", sharedIssuer, "--admin-token", admin, "--rate-limit", "0")
	signup(t, old.URL, "alice", "correct-horse-9")
	signup(t, old.URL, "bob", "battery-staple-7")
	before := login(t, old.URL, "alice", "correct-horse-9") // signed by the first key
	if a := do(t, "POST", old.URL+"/admin/keys/rotate", "", nil, "Authorization", "Bearer "+admin); a.status != 200 {
		t.Fatalf("rotate: %d %s", a.status, a.body)
	}
	spent := login(t, old.URL, "bob", "battery-staple-7")["refresh_token"].(string)
	a := refreshGrant(t, old.URL, spent)
	if a.status != 200 {
		t.Fatalf("refresh before the move: %d %s", a.status, a.body)
	}
	live := a.json(t)["refresh_token"].(string)
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	client := identity.Client{ID: "reporter", Name: "Reporter", SecretHash: "c2VjcmV0LWhhc2g", GrantTypes: []string{identity.GrantClientCredentials},
		Scopes: []string{"workitems:read"}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	bolt, err := boltdb.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.CreateClient(context.Background(), client); err != nil {
		t.Fatal(err)
	}
	// Alice's email, verified by an admin, and her consent to the client move too.
	alice, err := bolt.UpdateUser(context.Background(), mustUserID(t, bolt, "alice"), func(u identity.User) (identity.User, error) {
		u.Email, u.EmailVerified = "Alice@Example.com", true
		return u, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	consent := identity.Consent{UserID: alice.ID, ClientID: "reporter", Scopes: []string{"openid", "email"},
		GrantedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := bolt.SaveConsent(context.Background(), consent); err != nil {
		t.Fatal(err)
	}
	// Carol's confirmed TOTP with its recovery codes, her pending pre-session (password right,
	// code owed) and a refresh family with the sign-in methods of its tokens move too.
	now := time.Now().UTC().Truncate(time.Microsecond)
	carol := identity.User{ID: "carol-id", Username: "carol", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", CreatedAt: now}
	if err := bolt.CreateUser(context.Background(), carol); err != nil {
		t.Fatal(err)
	}
	sealed := []byte("sealed:\x00\xffsecret")
	carol, err = bolt.UpdateUser(context.Background(), carol.ID, func(u identity.User) (identity.User, error) {
		u, err := u.EnrollTOTP(sealed, now.Add(-time.Minute))
		if err != nil {
			return u, err
		}
		return u.ConfirmTOTP(sealed, 59_000_001, []string{"rc-hash-1", "rc-hash-2"})
	})
	if err != nil || !carol.Factors.HasTOTP() {
		t.Fatalf("carol's TOTP: %+v, %v", carol.Factors, err)
	}
	pending := identity.Session{ID: "carol-pre", TokenHash: "carol-pre-hash", UserID: carol.ID, AuthTime: now, AMR: []string{"fed"},
		IDP: "company", CreatedAt: now, LastSeenAt: now, IdleTTL: 5 * time.Minute, ExpiresAt: now.Add(5 * time.Minute), RemoteAddr: "192.0.2.7",
		UserAgent: "test/1.0", Pending: true}
	if err := bolt.CreateSession(context.Background(), pending); err != nil {
		t.Fatal(err)
	}
	withAMR := identity.Family{ID: "carol-fam", UserID: carol.ID, ClientID: "reporter", Scope: "openid", Audience: []string{"reporter"},
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: "carol-refresh-hash", AMR: []string{"fed", "otp"}, IDP: "company"}
	if err := bolt.CreateFamily(context.Background(), withAMR); err != nil {
		t.Fatal(err)
	}
	// Her link to an upstream identity moves too.
	link := identity.Federation{Connector: "company", Subject: "carol-sub", UserID: carol.ID, Groups: []string{"ops"}, CreatedAt: now, CheckedAt: now}
	if err := bolt.CreateFederation(context.Background(), link); err != nil {
		t.Fatal(err)
	}
	// Groups and their members move too.
	ops := identity.Group{Name: "ops", CreatedAt: now}
	if err := bolt.CreateGroup(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	if err := bolt.AddMember(context.Background(), "ops", carol.ID); err != nil {
		t.Fatal(err)
	}
	// Mail still queued moves too, its delivery state with it: it is sent from the target.
	queued := identity.Mail{ID: "mail-1", To: "Alice@Example.com", Subject: "Your password changed", Text: "text", HTML: "<p>html</p>",
		Kind: "notice", UserID: alice.ID, CreatedAt: now, NextAttemptAt: now.Add(time.Minute), Attempts: 2, LastError: "421 try later"}
	if err := bolt.EnqueueMail(context.Background(), queued); err != nil {
		t.Fatal(err)
	}
	bolt.Close()

	db := pgtest.NewDatabase(t)
	out, err := runIDP([]string{"store", "copy", "--from", dir, "--to", db})
	if err != nil || !strings.Contains(out, "copied 3 users, 3 signing keys, 3 refresh families") || !strings.Contains(out, "1 clients, 1 consents, 1 groups, 1 memberships, 1 federations") ||
		!strings.Contains(out, "1 queued mails") {
		t.Fatalf("store copy: %v\n%s", err, out)
	}
	pg, err := pgstore.Open(context.Background(), pgdb.Config{URL: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := pg.GetClient(context.Background(), "reporter"); err != nil || !reflect.DeepEqual(got, client) {
		t.Fatalf("the copied client: %+v, %v; want %+v", got, err, client)
	}
	alice.CreatedAt = alice.CreatedAt.Truncate(time.Microsecond) // PostgreSQL's precision
	if got, err := pg.GetUser(context.Background(), alice.ID); err != nil || !reflect.DeepEqual(got, alice) {
		t.Fatalf("the copied user with an email: %+v, %v; want %+v", got, err, alice)
	}
	if got, err := pg.GetConsent(context.Background(), alice.ID, "reporter"); err != nil || !reflect.DeepEqual(got, consent) {
		t.Fatalf("the copied consent: %+v, %v; want %+v", got, err, consent)
	}
	if got, err := pg.GetUser(context.Background(), carol.ID); err != nil || !reflect.DeepEqual(got, carol) {
		t.Fatalf("the copied user with TOTP: %+v (%+v), %v; want %+v (%+v)", got, got.Factors.TOTP, err, carol, carol.Factors.TOTP)
	}
	if got, err := pg.GetSession(context.Background(), pending.ID); err != nil || !reflect.DeepEqual(got, pending) {
		t.Fatalf("the copied pending session: %+v, %v; want %+v", got, err, pending)
	}
	if got, err := pg.ListFamilies(context.Background(), carol.ID); err != nil || !reflect.DeepEqual(got, []identity.Family{withAMR}) {
		t.Fatalf("the copied family with amr: %+v, %v; want %+v", got, err, withAMR)
	}
	if got, err := pg.UserFederations(context.Background(), carol.ID); err != nil || !reflect.DeepEqual(got, []identity.Federation{link}) {
		t.Fatalf("carol's copied federations: %+v, %v; want %+v", got, err, link)
	}
	if got, err := pg.GetGroup(context.Background(), "ops"); err != nil || !reflect.DeepEqual(got, ops) {
		t.Fatalf("the copied group: %+v, %v; want %+v", got, err, ops)
	}
	if got, err := pg.UserGroups(context.Background(), carol.ID); err != nil || !reflect.DeepEqual(got, []string{"ops"}) {
		t.Fatalf("carol's copied groups: %v, %v", got, err)
	}
	if got, err := pg.ClaimMail(context.Background(), now.Add(time.Minute), time.Minute); err != nil ||
		!reflect.DeepEqual(got, func() identity.Mail { m := queued; m.Attempts, m.LeaseUntil = 3, now.Add(2*time.Minute); return m }()) {
		t.Fatalf("the copied mail, claimed: %+v, %v; want %+v", got, err, queued)
	}
	pg.Close()
	// A second run must be told that the target is not empty; told, it changes nothing.
	if out, err := runIDP([]string{"store", "copy", "--from", dir, "--to", db}); err == nil || !strings.Contains(out, "--force") {
		t.Fatalf("a second copy without --force: %v\n%s", err, out)
	}
	if out, err := runIDP([]string{"store", "copy", "--from", dir, "--to", db, "--force"}); err != nil {
		t.Fatalf("a second copy with --force: %v\n%s", err, out)
	}
	// A mistyped source is an error, not an empty copy.
	if out, err := runIDP([]string{"store", "copy", "--from", dir + "-typo", "--to", db, "--force"}); err == nil || !strings.Contains(out, "holds no IdP store") {
		t.Fatalf("a copy from a folder without a store: %v\n%s", err, out)
	}

	p := startReplica(t, db, service.Env{}, "--admin-token", admin)
	// Once an IdP has served from the database, no copy goes into it: it could bring back what
	// was ended there since (a user deleted, a session logged out).
	if out, err := runIDP([]string{"store", "copy", "--from", dir, "--to", db, "--force"}); err == nil || !strings.Contains(out, "already served") {
		t.Fatalf("a copy into a database an IdP serves from: %v\n%s", err, out)
	}
	login(t, p.URL, "alice", "correct-horse-9")
	login(t, p.URL, "bob", "battery-staple-7")
	if a := do(t, "GET", p.URL+"/verify", "", nil, "Authorization", "Bearer "+before["access_token"].(string)); a.status != 200 {
		t.Fatalf("a token signed before the move by a since-retired key: /verify %d", a.status)
	}
	if a := refreshGrant(t, p.URL, before["refresh_token"].(string)); a.status != 200 {
		t.Fatalf("alice's refresh token after the move: %d %s", a.status, a.body)
	}
	// Bob's spent token is reuse — which kills his family, the live token included — only if
	// the move kept every hash the family issued.
	wantGrantError(t, refreshGrant(t, p.URL, spent), "invalid_grant")
	wantGrantError(t, refreshGrant(t, p.URL, live), "invalid_grant")
}

// mustUserID is the id of the user with this username in the store.
func mustUserID(t *testing.T, s identity.UserStore, username string) string {
	t.Helper()
	u, err := s.GetUserByName(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// A session ended on one replica (a password change there) stops working on the other within
// the session cache's bound, and refresh tokens fail at once on both.
func TestSessionEndReachesEveryReplica(t *testing.T) {
	db := pgtest.NewDatabase(t)
	clk := clock.NewFake(time.Now())
	a := startReplica(t, db, service.Env{Clock: clk}, "--session-cache-ttl", "5s")
	b := startReplica(t, db, service.Env{Clock: clk}, "--session-cache-ttl", "5s")
	signup(t, a.URL, "roam", "correct-horse-9")
	tokens := login(t, b.URL, "roam", "correct-horse-9")
	resp, _ := browserLoginResp(t, a.URL, "roam", "correct-horse-9")
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == "jwtidp_session" {
			cookie = c.Value
		}
	}
	if cookie == "" {
		t.Fatalf("browser login: %d, no session cookie", resp.StatusCode)
	}
	proctest.Secret(cookie)
	verify := func(in *servicetest.Instance) int {
		return do(t, "GET", in.URL+"/verify", "", nil, "Cookie", "jwtidp_session="+cookie).status
	}
	if verify(a) != 200 || verify(b) != 200 { // now in both replicas' caches
		t.Fatal("a fresh session does not verify on both replicas")
	}
	change := do(t, "POST", a.URL+"/account/password", "application/json",
		strings.NewReader(`{"current_password":"correct-horse-9","new_password":"new-horse-battery-2"}`),
		"Authorization", "Bearer "+tokens["access_token"].(string))
	if change.status != 200 && change.status != 204 {
		t.Fatalf("password change: %d %s", change.status, change.body)
	}
	proctest.Secret("new-horse-battery-2")
	wantGrantError(t, refreshGrant(t, b.URL, tokens["refresh_token"].(string)), "invalid_grant")
	clk.Advance(5*time.Second + time.Millisecond) // the cache's bound
	if got := verify(b); got != 401 {
		t.Fatalf("the other replica still accepts the ended session past the cache bound: %d", got)
	}
	if got := verify(a); got != 401 {
		t.Fatalf("the replica that ended the session still accepts it: %d", got)
	}
}

// `idp migrate` applies the schema alone and says where it stands; it needs a postgres:// URL.
func TestMigrateCommand(t *testing.T) {
	db := pgtest.NewDatabase(t)
	for range 2 { // again: nothing to do, same answer
		if out, err := runIDP([]string{"migrate", "--database-url", db}); err != nil || !strings.Contains(out, "schema at version 21") {
			t.Fatalf("idp migrate: %v\n%s", err, out)
		}
	}
	if out, err := runIDP([]string{"migrate"}); err == nil || !strings.Contains(out, "needs --database-url") {
		t.Fatalf("idp migrate without a URL: %v\n%s", err, out)
	}
	if out, err := runIDP([]string{"migrate"}, "IDP_DATABASE_URL="+db); err != nil {
		t.Fatalf("idp migrate with IDP_DATABASE_URL: %v\n%s", err, out)
	}
}

// Two replicas on one database send the outbox between them, each message once: the mail
// server is down while six sign-ups queue their confirmation links (half on each replica), both
// fail to deliver, and once the server is back every message arrives exactly once.
func TestMailAcrossReplicasOnce(t *testing.T) {
	db := pgtest.NewDatabase(t)
	mp := proctest.StartMailpit(t)
	clk := clock.NewFake(time.Now())
	mail := []string{"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>"}
	replicas := []*servicetest.Instance{startReplica(t, db, service.Env{Clock: clk}, mail...), startReplica(t, db, service.Env{Clock: clk}, mail...)}
	mp.Stop()
	proctest.Secret("correct-horse-9")
	for i := range 6 {
		p := replicas[i%2]
		if a := postJSON(t, p.URL+"/signup", map[string]string{"username": fmt.Sprintf("user%d", i), "password": "correct-horse-9",
			"email": fmt.Sprintf("user%d@example.com", i)}); a.status != 201 {
			t.Fatalf("signup %d: %d %s", i, a.status, a.body)
		}
	}
	failed := func() bool {
		return strings.Contains(replicas[0].Log(), "mail not sent: will retry") && strings.Contains(replicas[1].Log(), "mail not sent: will retry")
	}
	if !proctest.Eventually(10*time.Second, failed) {
		t.Fatalf("both replicas did not try and fail:\nA:\n%s\nB:\n%s", replicas[0].Log(), replicas[1].Log())
	}
	mp.Start()
	if !proctest.Eventually(30*time.Second, func() bool {
		clk.Advance(10 * time.Second) // past the back-off, a poll at a time
		return len(mp.Messages(t)) >= 6
	}) {
		t.Fatalf("%d of 6 messages delivered", len(mp.Messages(t)))
	}
	sent := regexp.MustCompile(`idp_mail_deliveries_total\{outcome="sent"\} (\d+)`)
	total := func() int {
		n := 0
		for _, p := range replicas {
			if m := sent.FindStringSubmatch(string(do(t, "GET", p.URL+"/metrics", "", nil).body)); m != nil {
				k, _ := strconv.Atoi(m[1])
				n += k
			}
		}
		return n
	}
	proctest.Eventually(10*time.Second, func() bool { return total() == 6 })
	for range 12 { // two more minutes of polls on both replicas
		clk.Advance(10 * time.Second)
	}
	ids := map[string]bool{}
	for _, m := range mp.Messages(t) {
		ids[m.MessageID] = true
	}
	if n := len(mp.Messages(t)); n != 6 || len(ids) != 6 || total() != 6 {
		t.Fatalf("%d messages (%d distinct), %d sent by the replicas; want 6 each", n, len(ids), total())
	}
}
