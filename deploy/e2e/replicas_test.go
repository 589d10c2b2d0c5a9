package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
)

// The replicas' one issuer: no replica's own address, as behind a load balancer.
const replicaIssuer = "http://idp.replicas.test"

const replicaAdmin = "replica-admin-secret"

// replicas is two IdP and two work-item processes on one PostgreSQL database. Each work-item
// replica takes its JWKS from a different IdP replica.
type replicas struct {
	db       string
	idp, wi  [2]*proctest.Proc
	idpArgs  []string
	wiArgsOf func(i int) []string
}

func startReplicas(t *testing.T, extra ...string) *replicas {
	t.Helper()
	r := &replicas{db: pgtest.NewDatabase(t)}
	r.idpArgs = append([]string{"serve", "--addr", "127.0.0.1:0", "--database-url", r.db, "--issuer", replicaIssuer,
		"--admin-token", replicaAdmin, "--rate-limit", "0", "--token-rate-limit", "0"}, proctest.FastArgon...)
	r.idpArgs = append(r.idpArgs, extra...)
	for i := range r.idp {
		r.idp[i] = proctest.Start(t, idpBin, r.idpArgs)
	}
	r.wiArgsOf = func(i int) []string {
		return []string{"--addr", "127.0.0.1:0", "--database-url", r.db, "--issuer", replicaIssuer,
			"--jwks-url", r.idp[i].URL + "/.well-known/jwks.json"}
	}
	for i := range r.wi {
		r.wi[i] = proctest.Start(t, wiBin, r.wiArgsOf(i))
		if err := proctest.WaitReady(r.wi[i].URL, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

type reply struct {
	status int
	body   []byte
}

func (a reply) field(name string) string {
	var m map[string]any
	json.Unmarshal(a.body, &m)
	if s, ok := m[name].(string); ok {
		return s
	}
	return ""
}

// send makes one request; err is a transport failure (the process is gone), not a status.
func send(method, u, contentType, body, auth string) (reply, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b}, err
}

func must(t *testing.T, a reply, err error, want int, what string) reply {
	t.Helper()
	if err != nil || a.status != want {
		t.Fatalf("%s: %d %s %v, want %d", what, a.status, a.body, err, want)
	}
	return a
}

func mustSend(t *testing.T, want int, method, u, contentType, body, auth string) reply {
	t.Helper()
	a, err := send(method, u, contentType, body, auth)
	return must(t, a, err, want, method+" "+u)
}

func creds(user string) string {
	proctest.Secret("correct-horse-9")
	return fmt.Sprintf(`{"username":%q,"password":"correct-horse-9"}`, user)
}

func refreshForm(rt string) string {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()
}

const form = "application/x-www-form-urlencoded"

// Two IdP replicas and two work-item replicas on one database, every call spread over both:
// sign up on one, log in on the other, refresh alternating, one winner among 20 concurrent
// refreshes of one token split across both, work items written through one and read through
// the other.
func TestReplicasShareOneStore(t *testing.T) {
	r := startReplicas(t)
	a, b := r.idp[0].URL, r.idp[1].URL
	a1, err := send("POST", a+"/signup", "application/json", creds("replica-user"), "")
	must(t, a1, err, 201, "signup on replica A")
	if a, err := send("POST", b+"/signup", "application/json", creds("Replica-User"), ""); err != nil || a.status != 409 {
		t.Fatalf("the same username on replica B: %d %s, want 409", a.status, a.body)
	}
	login, err := send("POST", b+"/auth", "application/json", creds("replica-user"), "")
	must(t, login, err, 200, "login on replica B")
	rt := login.field("refresh_token")
	proctest.Secret(rt, login.field("access_token"))
	for i := range 6 {
		got, err := send("POST", r.idp[i%2].URL+"/token", form, refreshForm(rt), "")
		must(t, got, err, 200, fmt.Sprintf("refresh %d on replica %d", i+1, i%2))
		rt = got.field("refresh_token")
		proctest.Secret(rt, got.field("access_token"))
	}

	// 20 concurrent refreshes of one token, split across both replicas: exactly one winner.
	var wins, losses atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 20 {
		wg.Go(func() {
			<-start
			got, err := send("POST", r.idp[i%2].URL+"/token", form, refreshForm(rt), "")
			switch {
			case err != nil:
				t.Errorf("refresh: %v", err)
			case got.status == 200:
				wins.Add(1)
				proctest.Secret(got.field("refresh_token"), got.field("access_token"))
			case got.status == 400 && got.field("error") == "invalid_grant":
				losses.Add(1)
			default:
				t.Errorf("refresh: %d %s", got.status, got.body)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || losses.Load() != 19 {
		t.Fatalf("20 concurrent refreshes across two replicas: %d won, %d refused; want exactly one winner", wins.Load(), losses.Load())
	}

	// Work items: written through one replica, read through the other, with tokens from both.
	tokA, err := send("POST", a+"/auth", "application/json", creds("replica-user"), "")
	must(t, tokA, err, 200, "login on A")
	tokB, err := send("POST", b+"/auth", "application/json", creds("replica-user"), "")
	must(t, tokB, err, 200, "login on B")
	proctest.Secret(tokA.field("access_token"), tokB.field("access_token"), tokA.field("refresh_token"), tokB.field("refresh_token"))
	ids := map[string]bool{}
	for i := range 6 {
		tok := []reply{tokA, tokB}[i%2].field("access_token")
		got, err := send("POST", r.wi[i%2].URL+"/workitems", "application/json", fmt.Sprintf(`{"title":"item %d"}`, i), "JWT "+tok)
		must(t, got, err, 201, fmt.Sprintf("create through work-item replica %d", i%2))
		var env struct{ Result struct{ ID json.Number } }
		json.Unmarshal(got.body, &env)
		if ids[env.Result.ID.String()] {
			t.Fatalf("id %s handed out twice", env.Result.ID)
		}
		ids[env.Result.ID.String()] = true
	}
	for i := range r.wi {
		got, err := send("GET", r.wi[i].URL+"/workitems", "", "", "Bearer "+tokB.field("access_token"))
		must(t, got, err, 200, "list")
		for j := range 6 {
			if !strings.Contains(string(got.body), fmt.Sprintf(`"item %d"`, j)) {
				t.Fatalf("work-item replica %d does not list item %d: %s", i, j, got.body)
			}
		}
	}
}

func kidOfToken(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Header["kid"].(string)
}

// Three on-demand rotations through one replica while clients call both work-item replicas with
// an old token and the freshest from either IdP replica: no request fails, and the other IdP
// replica serves the same JWKS within its poll.
func TestRotationAcrossReplicasUnderLoad(t *testing.T) {
	r := startReplicas(t)
	mustSend(t, 201, "POST", r.idp[0].URL+"/signup", "application/json", creds("rotor"), "")
	first, err := send("POST", r.idp[1].URL+"/auth", "application/json", creds("rotor"), "")
	must(t, first, err, 200, "login")
	old := first.field("access_token")
	proctest.Secret(old, first.field("refresh_token"))
	var fresh atomic.Value
	fresh.Store(old)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, failures atomic.Int64
	var mu sync.Mutex
	var msgs []string
	for i := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok := old
				if i >= 2 {
					tok = fresh.Load().(string)
				}
				got, err := send("GET", r.wi[i%2].URL+"/workitems", "", "", "Bearer "+tok)
				calls.Add(1)
				if err != nil || got.status != 200 {
					failures.Add(1)
					mu.Lock()
					if len(msgs) < 5 {
						msgs = append(msgs, fmt.Sprintf("work-item replica %d: %d %s %v", i%2, got.status, got.body, err))
					}
					mu.Unlock()
				}
			}
		})
	}
	traffic := func() {
		c := calls.Load()
		proctest.Eventually(20*time.Second, func() bool { return calls.Load() >= c+40 })
	}
	jwks := func(u string) string {
		got, err := send("GET", u+"/.well-known/jwks.json", "", "", "")
		if err != nil {
			return err.Error()
		}
		return string(got.body)
	}
	seen := map[string]bool{kidOfToken(t, old): true}
	for n := range 3 {
		traffic()
		mustSend(t, 200, "POST", r.idp[0].URL+"/admin/keys/rotate", "", "", "Bearer "+replicaAdmin)
		// The other replica follows within its one-second poll: the same JWKS on both.
		if !proctest.Eventually(10*time.Second, func() bool { return jwks(r.idp[0].URL) == jwks(r.idp[1].URL) }) {
			t.Fatalf("rotation %d: replica B's JWKS never caught up with A's", n+1)
		}
		for i := range r.idp {
			got, err := send("POST", r.idp[i].URL+"/auth", "application/json", creds("rotor"), "")
			must(t, got, err, 200, "login after rotation")
			tok := got.field("access_token")
			proctest.Secret(tok, got.field("refresh_token"))
			if kid := kidOfToken(t, tok); seen[kid] && i == 0 {
				t.Fatalf("rotation %d: replica A signs with an earlier key %s", n+1, kid)
			}
			// Both replicas sign with the new key, and both work-item replicas accept it at once.
			if kidOfToken(t, tok) != kidOfToken(t, fresh.Load().(string)) && i == 1 && kidOfToken(t, tok) == kidOfToken(t, old) {
				t.Fatalf("rotation %d: replica B still signs with the first key", n+1)
			}
			for w := range r.wi {
				mustSend(t, 200, "GET", r.wi[w].URL+"/workitems", "", "", "Bearer "+tok)
			}
			seen[kidOfToken(t, tok)] = true
			fresh.Store(tok)
		}
	}
	traffic()
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed: %s", failures.Load(), calls.Load(), strings.Join(msgs, "; "))
	}
	t.Logf("%d calls across 3 rotations on two replicas, none failed", calls.Load())
}

// kill -9 of one IdP replica and one work-item replica while signups, refreshes and item
// writes go to both: the survivors keep answering every request sent to them, and nothing a
// client got an answer for is lost.
func TestKill9OneReplicaUnderLoad(t *testing.T) {
	r := startReplicas(t)
	mustSend(t, 201, "POST", r.idp[0].URL+"/signup", "application/json", creds("writer"), "")
	tok := mustSend(t, 200, "POST", r.idp[1].URL+"/auth", "application/json", creds("writer"), "").field("access_token")
	proctest.Secret(tok)

	var mu sync.Mutex
	var signedUp []string         // acknowledged signups
	chains := map[int]string{}    // worker → its last acknowledged refresh token, "" when unknown
	items := map[string]bool{}    // acknowledged item titles
	var survivorFailures []string // requests to the surviving replicas that failed
	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	note := func(replica int, what string, a reply, err error) {
		// Before the kill every request must succeed; after it, only those to replica 1.
		if replica == 1 || !killed.Load() {
			mu.Lock()
			survivorFailures = append(survivorFailures, fmt.Sprintf("%s on replica %d: %d %s %v", what, replica, a.status, a.body, err))
			mu.Unlock()
		}
	}
	for w := range 6 {
		wg.Go(func() {
			rt := ""
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				replica := n % 2
				switch w % 3 {
				case 0: // signups
					name := fmt.Sprintf("user-%d-%d", w, n)
					a, err := send("POST", r.idp[replica].URL+"/signup", "application/json", creds(name), "")
					if err == nil && a.status == 201 {
						mu.Lock()
						signedUp = append(signedUp, name)
						mu.Unlock()
					} else {
						note(replica, "signup", a, err)
					}
				case 1: // a refresh chain
					if rt == "" {
						a, err := send("POST", r.idp[replica].URL+"/auth", "application/json", creds("writer"), "")
						if err != nil || a.status != 200 {
							note(replica, "login", a, err)
							continue
						}
						rt = a.field("refresh_token")
						proctest.Secret(rt, a.field("access_token"))
					} else {
						a, err := send("POST", r.idp[replica].URL+"/token", form, refreshForm(rt), "")
						if err != nil || a.status != 200 {
							// Unanswered: the refresh may have been made, so the chain's state is unknown.
							note(replica, "refresh", a, err)
							rt = ""
						} else {
							rt = a.field("refresh_token")
							proctest.Secret(rt, a.field("access_token"))
						}
					}
					mu.Lock()
					chains[w] = rt
					mu.Unlock()
				case 2: // work items
					title := fmt.Sprintf("item-%d-%d", w, n)
					a, err := send("POST", r.wi[replica].URL+"/workitems", "application/json", fmt.Sprintf(`{"title":%q}`, title), "Bearer "+tok)
					if err == nil && a.status == 201 {
						mu.Lock()
						items[title] = true
						mu.Unlock()
					} else {
						note(replica, "create", a, err)
					}
				}
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(signedUp) + len(items)
	}
	proctest.Eventually(20*time.Second, func() bool { return count() >= 40 })
	killed.Store(true)
	r.idp[0].Kill()
	r.wi[0].Kill()
	c := count()
	proctest.Eventually(20*time.Second, func() bool { return count() >= c+40 })
	close(stop)
	wg.Wait()
	if len(survivorFailures) > 0 {
		t.Fatalf("%d requests to the surviving replicas failed, e.g. %s", len(survivorFailures), survivorFailures[0])
	}
	// Everything acknowledged is there, read through the survivors.
	for _, name := range signedUp {
		mustSend(t, 200, "POST", r.idp[1].URL+"/auth", "application/json", creds(name), "")
	}
	for w, rt := range chains {
		if rt != "" {
			if a, err := send("POST", r.idp[1].URL+"/token", form, refreshForm(rt), ""); err != nil || a.status != 200 {
				t.Fatalf("worker %d's last acknowledged refresh token: %d %s %v", w, a.status, a.body, err)
			}
		}
	}
	list := mustSend(t, 200, "GET", r.wi[1].URL+"/workitems?limit=1000", "", "", "Bearer "+tok)
	for title := range items {
		if !strings.Contains(string(list.body), `"`+title+`"`) {
			t.Fatalf("acknowledged item %s is lost", title)
		}
	}
	t.Logf("after kill -9 of one replica each: %d signups, %d items, %d refresh chains checked", len(signedUp), len(items), len(chains))
}
