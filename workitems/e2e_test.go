package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/jwtauth/forge"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
	"jwtidp/workitems/workitem"
)

// The IdP is a package main of its own, so it runs here as its binary; the work-item service
// runs in this process, except where the process is the subject (kill -9).
var idpBin, wiBin string

func TestMain(m *testing.M) {
	proctest.Main(m, map[*string]string{&idpBin: "jwtidp/idp", &wiBin: "jwtidp/workitems"})
}

func startIDP(t *testing.T, extra ...string) *proctest.Proc {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, proctest.FastArgon...)
	return proctest.Start(t, idpBin, append(args, extra...))
}

// startWI runs `workitems serve` in this process on port 0, trusting issuer, until the test
// ends.
func startWI(t *testing.T, issuer string, extra ...string) *servicetest.Instance {
	t.Helper()
	args := append([]string{"workitems", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--issuer", issuer}, extra...)
	return servicetest.Start(t, context.Background(), program(), args...)
}

// startWIBinary runs the real binary with its data in dir.
func startWIBinary(t *testing.T, issuer, dir string, extra ...string) *proctest.Proc {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--issuer", issuer}, extra...)
	return proctest.Start(t, wiBin, args)
}

// tryCall is call without failing the test when the server is gone.
func tryCall(url, auth string, body any) (answer, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, out}, err
}

func decode(b []byte, v any) error { return json.Unmarshal(b, v) }

// ownerOf is the store key of the token's user: its issuer and subject.
func ownerOf(t *testing.T, bearer, issuer string) string {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(strings.TrimPrefix(bearer, "Bearer "), c); err != nil {
		t.Fatal(err)
	}
	return workitem.Owner(c["iss"].(string), c["sub"].(string))
}

// system starts an IdP and a work-item service that trusts it, and waits until it is ready.
func system(t *testing.T, idpArgs ...string) (idp *proctest.Proc, wi *servicetest.Instance) {
	t.Helper()
	idp = startIDP(t, idpArgs...)
	wi = startWI(t, idp.URL)
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return idp, wi
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) env(t *testing.T) (string, any) {
	t.Helper()
	var e struct {
		Status string
		Result any `json:"result"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("body %q: %v", a.body, err)
	}
	return e.Status, e.Result
}

func call(t *testing.T, method, url, auth string, body any) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			r = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, url, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func token(t *testing.T, idpURL, user string) string {
	t.Helper()
	creds := map[string]string{"username": user, "password": "correct-horse-9"}
	proctest.Secret(creds["password"])
	if a := call(t, "POST", idpURL+"/signup", "", creds); a.status != 201 {
		t.Fatalf("signup: %d %s", a.status, a.body)
	}
	a := call(t, "POST", idpURL+"/auth", "", creds)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(a.body, &tok); a.status != 200 || tok.AccessToken == "" {
		t.Fatalf("auth: %d %s", a.status, a.body)
	}
	proctest.Secret(tok.AccessToken)
	return tok.AccessToken
}

func TestTutorialWalkthrough(t *testing.T) {
	idp, wi := system(t)
	tok := token(t, idp.URL, "alice")
	a := call(t, "POST", wi.URL+"/workitems", "JWT "+tok, map[string]string{"title": "write the docs"})
	if st, res := a.env(t); a.status != 201 || st != "Success" || res.(map[string]any)["title"] != "write the docs" {
		t.Fatalf("create with JWT: %d %s", a.status, a.body)
	}
	a = call(t, "POST", wi.URL+"/workitems", "Bearer "+tok, map[string]string{"title": "second"})
	if a.status != 201 {
		t.Fatalf("create with Bearer: %d %s", a.status, a.body)
	}
	for _, scheme := range []string{"JWT", "Bearer", "bearer", "jwt", "BEARER"} {
		a = call(t, "GET", wi.URL+"/workitems", scheme+" "+tok, nil)
		st, res := a.env(t)
		items, _ := res.([]any)
		if a.status != 200 || st != "Success" || len(items) != 2 || items[0].(map[string]any)["title"] != "write the docs" {
			t.Fatalf("list with %s: %d %s", scheme, a.status, a.body)
		}
		first := items[0].(map[string]any)
		for _, k := range []string{"id", "title", "done", "created_at", "updated_at"} {
			if _, ok := first[k]; !ok {
				t.Fatalf("item lacks %s: %v", k, first)
			}
		}
	}
	if strings.Contains(wi.Log(), tok[len(tok)-30:]) || strings.Contains(idp.Log(), tok[len(tok)-30:]) {
		t.Fatal("a token reached a log")
	}
}

func TestUsersIsolatedAndMassAssignmentIgnored(t *testing.T) {
	idp, wi := system(t)
	alice, bob := "Bearer "+token(t, idp.URL, "alice"), "Bearer "+token(t, idp.URL, "bob")
	a := call(t, "POST", wi.URL+"/workitems", alice, map[string]any{
		"title": "alice's", "id": 4242, "owner": "bob", "created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z",
	})
	_, res := a.env(t)
	item := res.(map[string]any)
	if a.status != 201 || item["id"] == float64(4242) || strings.HasPrefix(item["created_at"].(string), "2000") || item["owner"] != nil {
		t.Fatalf("mass assignment: %d %s", a.status, a.body)
	}
	id := fmt.Sprint(item["id"])
	missing := call(t, "GET", wi.URL+"/workitems/999999", bob, nil)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/workitems/" + id, nil},
		{"PATCH", "/workitems/" + id, map[string]any{"title": "bob was here"}},
		{"DELETE", "/workitems/" + id, nil},
	} {
		a := call(t, c.method, wi.URL+c.path, bob, c.body)
		if a.status != 404 || !bytes.Equal(a.body, missing.body) {
			t.Fatalf("bob %s alice's item: %d %s; want the same 404 as a missing item (%s)", c.method, a.status, a.body, missing.body)
		}
	}
	if _, res := call(t, "GET", wi.URL+"/workitems", bob, nil).env(t); len(res.([]any)) != 0 {
		t.Fatalf("bob lists alice's items: %v", res)
	}
	// Alice's item is untouched, and she can change and delete it; a PATCH cannot move it.
	a = call(t, "PATCH", wi.URL+"/workitems/"+id, alice, map[string]any{"done": true, "id": 1, "owner": "bob"})
	if _, res := a.env(t); a.status != 200 || res.(map[string]any)["done"] != true || res.(map[string]any)["title"] != "alice's" {
		t.Fatalf("patch: %d %s", a.status, a.body)
	}
	for _, bad := range []struct {
		body any
		want string
	}{
		{map[string]any{}, "Nothing to update"},
		{map[string]any{"title": ""}, "must not be empty"},
		{map[string]any{"title": strings.Repeat("x", 501)}, "at most 500"},
		{map[string]any{"done": "yes"}, `"done" must be a boolean`},
		{map[string]any{"colour": "red"}, `Unknown field "colour"`},
	} {
		a := call(t, "PATCH", wi.URL+"/workitems/"+id, alice, bad.body)
		if _, res := a.env(t); a.status != 400 || !strings.Contains(fmt.Sprint(res), bad.want) {
			t.Errorf("patch %v: %d %s; want 400 with %q", bad.body, a.status, a.body, bad.want)
		}
	}
	if a := call(t, "POST", wi.URL+"/workitems", alice, map[string]any{}); a.status != 400 {
		t.Fatalf("create without title: %d", a.status)
	}
	if a := call(t, "POST", wi.URL+"/workitems", alice, map[string]any{"title": strings.Repeat("é", 500)}); a.status != 201 {
		t.Fatalf("500-character title: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", wi.URL+"/workitems/abc", alice, nil); a.status != 404 {
		t.Fatalf("non-numeric id: %d", a.status)
	}
	if a := call(t, "DELETE", wi.URL+"/workitems/"+id, alice, nil); a.status != 204 || len(a.body) != 0 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", wi.URL+"/workitems/"+id, alice, nil); a.status != 404 {
		t.Fatalf("deleted item: %d", a.status)
	}
}

func TestPaging(t *testing.T) {
	idp, wi := system(t)
	tok := "JWT " + token(t, idp.URL, "pat")
	for i := range 5 {
		call(t, "POST", wi.URL+"/workitems", tok, map[string]any{"title": fmt.Sprint("item ", i)})
	}
	_, res := call(t, "GET", wi.URL+"/workitems?limit=2", tok, nil).env(t)
	page := res.([]any)
	if len(page) != 2 || page[0].(map[string]any)["title"] != "item 0" {
		t.Fatalf("first page %v", page)
	}
	last := fmt.Sprint(page[1].(map[string]any)["id"])
	_, res = call(t, "GET", wi.URL+"/workitems?limit=2&after="+last, tok, nil).env(t)
	if page := res.([]any); len(page) != 2 || page[0].(map[string]any)["title"] != "item 2" {
		t.Fatalf("second page %v", page)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=-1"} {
		if a := call(t, "GET", wi.URL+"/workitems?"+q, tok, nil); a.status != 400 {
			t.Errorf("?%s: %d, want 400", q, a.status)
		}
	}
}

func TestRFC6750Answers(t *testing.T) {
	idp, wi := system(t, "--scope", "workitems:read")
	tok := token(t, idp.URL, "reader")
	cases := []struct {
		name, method, auth string
		status             int
		challenge          string
	}{
		{"no token", "GET", "", 401, `Bearer realm="workitems"`},
		{"other scheme", "GET", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", 401, `Bearer realm="workitems"`},
		{"empty bearer", "GET", "Bearer ", 401, `Bearer realm="workitems"`},
		{"garbage token", "GET", "Bearer not.a.jwt", 401, `Bearer realm="workitems", error="invalid_token"`},
		{"over-long header", "GET", "Bearer " + strings.Repeat("a", 9000), 401, `Bearer realm="workitems", error="invalid_token"`},
		{"missing scope", "POST", "Bearer " + tok, 403, `Bearer realm="workitems", error="insufficient_scope", scope="workitems:write"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.method == "POST" {
				body = map[string]string{"title": "x"}
			}
			a := call(t, c.method, wi.URL+"/workitems", c.auth, body)
			if c.status == 401 { // RFC 9728 §5.1: a 401 names the protected-resource metadata
				c.challenge += `, resource_metadata="` + wi.URL + `/.well-known/oauth-protected-resource"`
			}
			if a.status != c.status || a.header.Get("WWW-Authenticate") != c.challenge {
				t.Fatalf("%d %q; want %d %q", a.status, a.header.Get("WWW-Authenticate"), c.status, c.challenge)
			}
			if st, _ := a.env(t); st != "Error" || strings.Contains(string(a.body), "reader") {
				t.Fatalf("body %s", a.body)
			}
		})
	}
	if a := call(t, "GET", wi.URL+"/workitems", "Bearer "+tok, nil); a.status != 200 {
		t.Fatalf("read scope reads: %d", a.status)
	}
}

// fakeIssuer is an httptest IdP whose keys and answers the test controls.
type fakeIssuer struct {
	srv   *httptest.Server
	key   *rsa.PrivateKey
	kid   string
	mode  atomic.Value // "ok", "500", "garbage", "empty", "stall"
	jwks  atomic.Int64 // JWKS requests served
	extra atomic.Pointer[jose.JSONWebKey]
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	f := &fakeIssuer{key: key, kid: "test-key-1"}
	f.mode.Store("ok")
	stall := make(chan struct{})
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL, "jwks_uri": f.srv.URL + "/jwks"})
		case "/jwks":
			f.jwks.Add(1)
			switch f.mode.Load() {
			case "500":
				http.Error(w, "boom", 500)
			case "garbage":
				w.Write([]byte("<html>not json"))
			case "empty":
				w.Write([]byte(`{"keys":[]}`))
			case "stall":
				select {
				case <-stall:
				case <-r.Context().Done():
				}
			default:
				set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: f.kid, Algorithm: "RS256", Use: "sig"}}}
				if k := f.extra.Load(); k != nil {
					set.Keys = append(set.Keys, *k)
				}
				json.NewEncoder(w).Encode(set)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	f.srv.Start()
	t.Cleanup(func() { close(stall); f.srv.Close() })
	return f
}

func (f *fakeIssuer) claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": f.srv.URL, "sub": "user-1", "aud": []string{"workitems"}, "exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "jti": "j1", "scope": "workitems:read workitems:write",
	}
}

func (f *fakeIssuer) sign(t *testing.T, c jwt.MapClaims, header map[string]any, key *rsa.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = f.kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	if key == nil {
		key = f.key
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// RFC 8725's attacks, every one refused with 401 invalid_token; the key URLs that jku and x5u
// name receive no request at all.
func TestForgedTokensRefused(t *testing.T) {
	f := newFakeIssuer(t)
	var lured atomic.Int64
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { lured.Add(1) }))
	defer lure.Close()
	wi := startWI(t, f.srv.URL)
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m := forge.Minter{Key: f.key, KID: f.kid, Issuer: f.srv.URL, Audience: []string{"workitems"}}
	if a := call(t, "GET", wi.URL+"/workitems", "Bearer "+m.Valid(), nil); a.status != 200 {
		t.Fatalf("the baseline token is refused: %d %s", a.status, a.body)
	}
	for _, c := range m.Cases(lure.URL) {
		t.Run(c.Name, func(t *testing.T) {
			a := call(t, "GET", wi.URL+"/workitems", "Bearer "+c.Token, nil)
			if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("%d %q; want 401 invalid_token", a.status, a.header.Get("WWW-Authenticate"))
			}
		})
	}
	if n := lured.Load(); n != 0 {
		t.Fatalf("the attacker's key URLs received %d requests", n)
	}
	// Within the leeway (30 s by default) a just-expired token still passes.
	c := m.Claims()
	c["exp"] = time.Now().Add(-10 * time.Second).Unix()
	if a := call(t, "GET", wi.URL+"/workitems", "Bearer "+m.Sign(c, nil, jwt.SigningMethodRS256, f.key), nil); a.status != 200 {
		t.Fatalf("token 10s past exp with 30s leeway: %d", a.status)
	}
}

func TestCachedKeysSurviveBadJWKSAnswers(t *testing.T) {
	f := newFakeIssuer(t)
	wi := startWI(t, f.srv.URL, "--jwks-refresh", "50ms")
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	tok := "Bearer " + f.sign(t, f.claims(), nil, nil)
	for _, mode := range []string{"500", "garbage", "empty"} {
		f.mode.Store(mode)
		seen := f.jwks.Load()
		if !proctest.Eventually(10*time.Second, func() bool { return f.jwks.Load() >= seen+3 }) {
			t.Fatalf("%s: the JWKS was not refreshed", mode)
		}
		if a := call(t, "GET", wi.URL+"/workitems", tok, nil); a.status != 200 {
			t.Fatalf("after JWKS answers %q: %d %s", mode, a.status, a.body)
		}
	}
	// A stalled JWKS and an unknown kid: the answer still comes within the 2 s fetch timeout.
	f.mode.Store("stall")
	start := time.Now()
	a := call(t, "GET", wi.URL+"/workitems", "Bearer "+f.sign(t, f.claims(), map[string]any{"kid": "rotated-away"}, nil), nil)
	if a.status != 401 || time.Since(start) > 8*time.Second {
		t.Fatalf("unknown kid with a stalled JWKS: %d after %s", a.status, time.Since(start))
	}
	if a := call(t, "GET", wi.URL+"/workitems", tok, nil); a.status != 200 {
		t.Fatalf("known kid while the JWKS stalls: %d", a.status)
	}
}

func TestUnknownKidRefreshesJWKS(t *testing.T) {
	f := newFakeIssuer(t)
	wi := startWI(t, f.srv.URL) // scheduled refresh at its 5-minute default
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// A new key appears in the JWKS; a token signed with it is accepted at once.
	newKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.extra.Store(&jose.JSONWebKey{Key: &newKey.PublicKey, KeyID: "test-key-2", Algorithm: "RS256", Use: "sig"})
	tok := f.sign(t, f.claims(), map[string]any{"kid": "test-key-2"}, newKey)
	if a := call(t, "GET", wi.URL+"/workitems", "Bearer "+tok, nil); a.status != 200 {
		t.Fatalf("token under a newly published kid: %d %s", a.status, a.body)
	}
}

func TestIdPKilledTokensKeepWorking(t *testing.T) {
	idp, wi := system(t)
	tok := "JWT " + token(t, idp.URL, "ken")
	idp.Kill()
	for range 3 {
		if a := call(t, "GET", wi.URL+"/workitems", tok, nil); a.status != 200 {
			t.Fatalf("with the IdP down: %d %s", a.status, a.body)
		}
	}
}

func TestStartsBeforeIdPAndTurnsReady(t *testing.T) {
	addr := proctest.FreeAddr(t)
	wi := startWI(t, "http://"+addr)
	if a := call(t, "GET", wi.URL+"/readyz", "", nil); a.status != 503 {
		t.Fatalf("readyz with no IdP: %d", a.status)
	}
	if a := call(t, "GET", wi.URL+"/healthz", "", nil); a.status != 200 {
		t.Fatalf("healthz with no IdP: %d", a.status)
	}
	// A well-formed token cannot be judged without keys: 503, not 401. (A malformed one can: 401.)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	f := &fakeIssuer{key: k, kid: "k1", srv: &httptest.Server{URL: "http://" + addr}}
	a := call(t, "GET", wi.URL+"/workitems", "Bearer "+f.sign(t, f.claims(), nil, nil), nil)
	if _, res := a.env(t); a.status != 503 || res != "identity provider unavailable" || a.header.Get("Retry-After") == "" {
		t.Fatalf("protected route with no IdP: %d %s", a.status, a.body)
	}
	args := append([]string{"serve", "--addr", addr, "--data", t.TempDir()}, proctest.FastArgon...)
	idp := proctest.Start(t, idpBin, args)
	if err := proctest.WaitReady(wi.URL, 15*time.Second); err != nil {
		t.Fatalf("did not turn ready once the IdP came up: %v\n%s", err, wi.Log())
	}
	if a := call(t, "GET", wi.URL+"/workitems", "Bearer "+token(t, idp.URL, "late"), nil); a.status != 200 {
		t.Fatalf("after the IdP came up: %d", a.status)
	}
}

func TestConcurrentCreatesAllStored(t *testing.T) {
	idp, wi := system(t)
	tok := "Bearer " + token(t, idp.URL, "busy")
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := call(t, "POST", wi.URL+"/workitems", tok, map[string]any{"title": fmt.Sprint(i)}); a.status != 201 {
				t.Errorf("create: %d", a.status)
			}
		}()
	}
	wg.Wait()
	_, res := call(t, "GET", wi.URL+"/workitems", tok, nil).env(t)
	if n := len(res.([]any)); n != 30 {
		t.Fatalf("%d items listed after 30 creates", n)
	}
}

func TestRefreshTokenIsNotAnAccessToken(t *testing.T) {
	idp, wi := system(t)
	creds := map[string]string{"username": "rita", "password": "correct-horse-9"}
	call(t, "POST", idp.URL+"/signup", "", creds)
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal(call(t, "POST", idp.URL+"/auth", "", creds).body, &tok)
	a := call(t, "GET", wi.URL+"/workitems", "Bearer "+tok.RefreshToken, nil)
	if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("refresh token as Bearer: %d %q", a.status, a.header.Get("WWW-Authenticate"))
	}
}

// RFC 9728: the service publishes its protected-resource metadata, naming the IdP as its
// authorization server, and a client that met a 401 finds it from the challenge.
func TestProtectedResourceMetadata(t *testing.T) {
	idp, wi := system(t)
	a := call(t, "GET", wi.URL+"/workitems", "", nil)
	m := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(a.header.Get("WWW-Authenticate"))
	if a.status != 401 || m == nil || m[1] != wi.URL+"/.well-known/oauth-protected-resource" {
		t.Fatalf("401 challenge %q", a.header.Get("WWW-Authenticate"))
	}
	meta := call(t, "GET", m[1], "", nil)
	var doc struct {
		Resource               string   `json:"resource"`
		AuthorizationServers   []string `json:"authorization_servers"`
		ScopesSupported        []string `json:"scopes_supported"`
		BearerMethodsSupported []string `json:"bearer_methods_supported"`
	}
	if err := json.Unmarshal(meta.body, &doc); err != nil || meta.status != 200 {
		t.Fatalf("metadata: %d %s %v", meta.status, meta.body, err)
	}
	if doc.Resource != wi.URL || !slices.Equal(doc.AuthorizationServers, []string{idp.URL}) ||
		!slices.Equal(doc.ScopesSupported, []string{"workitems:read", "workitems:write", "workitems:admin"}) ||
		!slices.Equal(doc.BearerMethodsSupported, []string{"header"}) {
		t.Fatalf("metadata %s", meta.body)
	}
	// The authorization server it names is the IdP: its discovery document says so.
	disc := call(t, "GET", doc.AuthorizationServers[0]+"/.well-known/openid-configuration", "", nil)
	if disc.status != 200 || !strings.Contains(string(disc.body), `"issuer":"`+idp.URL+`"`) {
		t.Fatalf("the named authorization server: %d %s", disc.status, disc.body)
	}
}

// --resource names the service as its clients know it (behind a proxy, under a path): the
// metadata sits where RFC 9728 §3.1 puts it, between the host and that path, and says it. A
// resource that is not an absolute http(s) URL, or has a fragment, stops start-up.
func TestResourceSetting(t *testing.T) {
	idp := startIDP(t)
	wi := startWI(t, idp.URL, "--resource", "https://wi.example/api/")
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	a := call(t, "GET", wi.URL+"/workitems", "", nil)
	if want := `Bearer realm="workitems", resource_metadata="https://wi.example/.well-known/oauth-protected-resource/api"`; a.header.Get("WWW-Authenticate") != want {
		t.Fatalf("challenge %q, want %q", a.header.Get("WWW-Authenticate"), want)
	}
	meta := call(t, "GET", wi.URL+"/.well-known/oauth-protected-resource/api", "", nil)
	if meta.status != 200 || !strings.Contains(string(meta.body), `"resource":"https://wi.example/api/"`) {
		t.Fatalf("metadata: %d %s", meta.status, meta.body)
	}
	for _, bad := range []string{"wi.example", "ftp://wi.example/", "https://wi.example/#top", "https://wi.example/?a=b"} {
		var out bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		started := false
		err := program().Run(ctx, []string{"workitems", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
			"--issuer", idp.URL, "--resource", bad}, service.Env{Stdout: &out, Stderr: &out, Ready: func(string) { started = true; cancel() }})
		cancel()
		if started || err == nil || !strings.Contains(err.Error()+out.String(), "resource") {
			t.Errorf("--resource %q: %v %s", bad, err, out.String())
		}
	}
}
