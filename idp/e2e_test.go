package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// idpBin is the built binary, for the tests whose subject is the process itself: kill -9, a
// signal, a second process on the same folder, a file-size limit. The rest run in-process.
var idpBin string

// The binaries are built into a folder of this process's own: a fixed path under /tmp would be
// shared with any other checkout's tests running at the same time.
func TestMain(m *testing.M) {
	// The in-process IdPs sign with JWTIDP_TEST_SIGNER's backend (proctest gives it to the
	// binaries as IDP_SIGNER), so that CI runs the suite once per signer.
	if s := os.Getenv("JWTIDP_TEST_SIGNER"); s != "" {
		defaultSigner = s
	}
	proctest.Main(m, map[*string]string{&idpBin: "jwtidp/idp", &wiBin: "jwtidp/workitems"})
}

// startIDP runs `idp serve` in this process on port 0 with its data in dir, until the test
// ends or it is stopped (Stop).
func startIDP(t *testing.T, dir string, extra ...string) *servicetest.Instance {
	t.Helper()
	return startIDPEnv(t, dir, service.Env{}, extra...)
}

// startIDPEnv is startIDP with an environment: variables (Getenv) and a clock.
func startIDPEnv(t *testing.T, dir string, env service.Env, extra ...string) *servicetest.Instance {
	t.Helper()
	args := append([]string{"idp", "serve", "--addr", "127.0.0.1:0", "--data", dir}, proctest.FastArgon...)
	return servicetest.StartEnv(t, context.Background(), program(), env, append(args, extra...)...)
}

// startIDPBinary runs the real binary on port 0 with its data in dir.
func startIDPBinary(t *testing.T, dir string, extra ...string) *proctest.Proc {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, proctest.FastArgon...)
	return proctest.Start(t, idpBin, append(args, extra...))
}

// runIDP runs one idp command (args after the program's name) in this process, as main would:
// its output, with the error last as main prints it, and the error.
func runIDP(args []string, env ...string) (string, error) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := program().Run(ctx, append([]string{"idp"}, args...), service.Env{
		Getenv: getenv(env...), Stdout: &out, Stderr: &out,
	})
	if err != nil {
		fmt.Fprintf(&out, "idp: %v\n", err)
	}
	return out.String(), err
}

// getenv is an environment of the given KEY=value pairs.
func getenv(kvs ...string) func(string) string {
	vars := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return func(k string) string { return vars[k] }
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", a.body, err)
	}
	return m
}

func do(t *testing.T, method, url, contentType string, body io.Reader, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func postJSON(t *testing.T, url string, v any) answer {
	t.Helper()
	b, _ := json.Marshal(v)
	return do(t, "POST", url, "application/json", bytes.NewReader(b))
}

func signup(t *testing.T, base, user, pw string) {
	t.Helper()
	proctest.Secret(pw)
	if a := postJSON(t, base+"/signup", map[string]string{"username": user, "password": pw}); a.status != 201 {
		t.Fatalf("signup %s: %d %s", user, a.status, a.body)
	}
}

func login(t *testing.T, base, user, pw string) map[string]any {
	t.Helper()
	a := postJSON(t, base+"/auth", map[string]string{"username": user, "password": pw})
	if a.status != 200 {
		t.Fatalf("auth %s: %d %s", user, a.status, a.body)
	}
	m := a.json(t)
	at, _ := m["access_token"].(string)
	rt, _ := m["refresh_token"].(string)
	proctest.Secret(pw, at, rt)
	return m
}

// jwksKeys decodes the served JWKS document itself, not anything the IdP holds in memory.
func jwksKeys(t *testing.T, base string) (map[string]*rsa.PublicKey, []byte) {
	t.Helper()
	a := do(t, "GET", base+"/.well-known/jwks.json", "", nil)
	if a.status != 200 {
		t.Fatalf("jwks: %d", a.status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(a.body, &set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		pub, ok := k.Key.(*rsa.PublicKey)
		if !ok || !k.IsPublic() {
			t.Fatalf("JWKS key %s is not a public RSA key", k.KeyID)
		}
		keys[k.KeyID] = pub
	}
	return keys, a.body
}

func verifyWithJWKS(t *testing.T, base, issuer, raw string) jwt.MapClaims {
	t.Helper()
	return verifyForAudience(t, base, issuer, "workitems", raw)
}

// verifyForAudience is verifyWithJWKS for a token whose aud must contain audience.
func verifyForAudience(t *testing.T, base, issuer, audience, raw string) jwt.MapClaims {
	t.Helper()
	keys, _ := jwksKeys(t, base)
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		k, ok := keys[tok.Header["kid"].(string)]
		if !ok {
			return nil, fmt.Errorf("kid %v not in JWKS", tok.Header["kid"])
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(issuer), jwt.WithAudience(audience), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("token does not verify against the served JWKS: %v", err)
	}
	if tok.Header["typ"] != "at+jwt" {
		t.Fatalf("typ = %v, want at+jwt", tok.Header["typ"])
	}
	return claims
}

func TestSignupLoginTokenVerifiesAgainstJWKS(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "Alice", "correct-horse-9")
	tok := login(t, p.URL, "alice", "correct-horse-9") // usernames compare case-insensitively
	if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(900) || tok["refresh_token"] == "" {
		t.Fatalf("auth answer %v", tok)
	}
	if rt, _ := tok["refresh_token"].(string); len(rt) < 43 {
		t.Fatalf("refresh token %q is shorter than 256 bits", rt)
	}
	c := verifyWithJWKS(t, p.URL, p.URL, tok["access_token"].(string))
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "preferred_username"} {
		if _, ok := c[k]; !ok {
			t.Errorf("claim %s missing", k)
		}
	}
	if c["scope"] != "workitems:read workitems:write" || c["preferred_username"] != "Alice" {
		t.Errorf("claims %v", c)
	}
	if sub, _ := c["sub"].(string); len(sub) < 20 || strings.Contains(strings.ToLower(sub), "alice") {
		t.Errorf("sub %q is not opaque", sub)
	}
	// The access token also works at /userinfo.
	a := do(t, "GET", p.URL+"/userinfo", "", nil, "Authorization", "Bearer "+tok["access_token"].(string))
	if a.status != 200 || a.json(t)["sub"] != c["sub"] || a.json(t)["preferred_username"] != "Alice" {
		t.Fatalf("userinfo: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", p.URL+"/userinfo", "", nil); a.status != 401 || a.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("userinfo without token: %d %v", a.status, a.header)
	}
	// Logs hold neither the password nor the tokens.
	if lg := p.Log(); strings.Contains(lg, "correct-horse-9") || strings.Contains(lg, tok["access_token"].(string)[40:80]) || strings.Contains(lg, tok["refresh_token"].(string)) {
		t.Fatal("a secret reached the log")
	}
}

func TestSignupRules(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "bob", "correct-horse-9")
	tests := []struct {
		name      string
		body      string
		status    int
		wantInMsg string
	}{
		{"duplicate in another case", `{"username":"BOB","password":"another-pass-1"}`, 409, "User already exists"},
		{"username too short", `{"username":"ab","password":"another-pass-1"}`, 400, "3 to 64"},
		{"username too long", `{"username":"` + strings.Repeat("a", 65) + `","password":"another-pass-1"}`, 400, "3 to 64"},
		{"username bad character", `{"username":"a b c","password":"another-pass-1"}`, 400, "letters, digits"},
		{"password too short", `{"username":"carol","password":"short1"}`, 400, "at least 8"},
		{"password too long", `{"username":"carol","password":"` + strings.Repeat("p", 1025) + `"}`, 400, "at most 1024"},
		{"password is the username", `{"username":"carol.jones","password":"CAROL.JONES"}`, 400, "username"},
		{"common password", `{"username":"carol","password":"iloveyou"}`, 400, "common"},
		{"missing password", `{"username":"carol"}`, 400, `"password" is required`},
		{"missing username", `{"password":"another-pass-1"}`, 400, `"username" is required`},
		{"unknown field", `{"username":"carol","password":"another-pass-1","admin":true}`, 400, `Unknown field "admin"`},
		{"malformed", `{"username":"carol",`, 400, "not valid JSON"},
		{"wrong type", `{"username":1,"password":"another-pass-1"}`, 400, `"username" must be a string`},
		{"not an object", `[]`, 400, "JSON object"},
		{"two objects", `{"username":"carol","password":"another-pass-1"}{}`, 400, "single JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, "POST", p.URL+"/signup", "application/json", strings.NewReader(tt.body))
			m := a.json(t)
			if a.status != tt.status || m["Status"] != "Error" || !strings.Contains(m["result"].(string), tt.wantInMsg) {
				t.Fatalf("got %d %s; want %d with %q", a.status, a.body, tt.status, tt.wantInMsg)
			}
			if a.header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type %q", a.header.Get("Content-Type"))
			}
		})
	}
	// None of the refused signups created a user.
	for _, u := range []string{"carol", "carol.jones"} {
		if a := postJSON(t, p.URL+"/auth", map[string]string{"username": u, "password": "another-pass-1"}); a.status != 401 {
			t.Fatalf("refused signup %s left a user: %d", u, a.status)
		}
	}
	if a := do(t, "POST", p.URL+"/signup", "text/plain", strings.NewReader(`{}`)); a.status != 415 {
		t.Fatalf("text/plain: %d, want 415", a.status)
	}
	if a := do(t, "POST", p.URL+"/signup", "", strings.NewReader(`{}`)); a.status != 415 {
		t.Fatalf("no content type: %d, want 415", a.status)
	}
	// Unicode passwords are fine and not truncated: a prefix does not log in.
	signup(t, p.URL, "dora", "pässwörd-☃-long")
	login(t, p.URL, "dora", "pässwörd-☃-long")
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "dora", "password": "pässwörd-☃"}); a.status != 401 {
		t.Fatalf("prefix logged in: %d", a.status)
	}
}

func TestUnknownUserAndWrongPasswordLookTheSame(t *testing.T) {
	p := startIDP(t, t.TempDir())
	signup(t, p.URL, "erin", "correct-horse-9")
	wrong := postJSON(t, p.URL+"/auth", map[string]string{"username": "erin", "password": "wrong-password-1"})
	unknown := postJSON(t, p.URL+"/auth", map[string]string{"username": "nobody", "password": "wrong-password-1"})
	if wrong.status != 401 || unknown.status != 401 || !bytes.Equal(wrong.body, unknown.body) {
		t.Fatalf("wrong password: %d %q; unknown user: %d %q", wrong.status, wrong.body, unknown.status, unknown.body)
	}
	if string(wrong.body) != `{"Status":"Error","result":"Invalid credentials"}`+"\n" {
		t.Fatalf("body %q", wrong.body)
	}
	// Both spent a hash: the unknown user went through the dummy hash.
	if n := metric(t, p.URL, "idp_password_hash_slot_wait_seconds_count"); n != 3 {
		t.Fatalf("hashes = %v, want 3 (signup, wrong password, unknown user)", n)
	}
}

// metric reads one unlabelled sample from /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	a := do(t, "GET", base+"/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(a.body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestLimits(t *testing.T) {
	p := startIDP(t, t.TempDir())
	big := bytes.Repeat([]byte("a"), 10<<20)
	a := do(t, "POST", p.URL+"/signup", "application/json", bytes.NewReader(big))
	if a.status != 413 || a.json(t)["Status"] != "Error" {
		t.Fatalf("10 MiB body: %d %s", a.status, a.body)
	}
	// The same without a Content-Length: refused once 64 KiB have been read.
	pr, pw := io.Pipe()
	go func() { pw.Write(big); pw.Close() }()
	if a := do(t, "POST", p.URL+"/signup", "application/json", pr); a.status != 413 {
		t.Fatalf("chunked 10 MiB body: %d", a.status)
	}
	before := metric(t, p.URL, "idp_password_hash_slot_wait_seconds_count")
	long := strings.Repeat("x", 1025)
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "frank", "password": long}); a.status != 400 {
		t.Fatalf("1025-byte password at signup: %d", a.status)
	}
	// No account can have it: a 400 before anything is looked up, hashed or counted.
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "frank", "password": long}); a.status != 400 {
		t.Fatalf("1025-byte password at login: %d", a.status)
	}
	if after := metric(t, p.URL, "idp_password_hash_slot_wait_seconds_count"); after != before {
		t.Fatalf("a 1025-byte password was hashed (%v hashes, want %v)", after, before)
	}
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if a := do(t, "POST", p.URL+"/auth", "application/json", strings.NewReader(deep)); a.status != 400 {
		t.Fatalf("deep JSON: %d", a.status)
	}
	if a := do(t, "GET", p.URL+"/nope", "", nil); a.status != 404 || a.json(t)["Status"] != "Error" {
		t.Fatalf("unknown path: %d %s", a.status, a.body)
	}
}

func TestRestartKeepsUsersAndKey(t *testing.T) {
	dir := t.TempDir()
	p := startIDP(t, dir)
	signup(t, p.URL, "gina", "correct-horse-9")
	tok := login(t, p.URL, "gina", "correct-horse-9")["access_token"].(string)
	_, jwks1 := jwksKeys(t, p.URL)
	if err := p.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.Log())
	}
	// An immediate restart opens the store at once (the lock was released).
	p2 := startIDP(t, dir)
	_, jwks2 := jwksKeys(t, p2.URL)
	if !bytes.Equal(jwks1, jwks2) {
		t.Fatalf("JWKS changed across the restart:\n%s\n%s", jwks1, jwks2)
	}
	// The issuer is derived from the new port, so check signature and claims by hand.
	keys, _ := jwksKeys(t, p2.URL)
	if _, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) { return keys[tk.Header["kid"].(string)], nil },
		jwt.WithValidMethods([]string{"RS256"})); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	login(t, p2.URL, "gina", "correct-horse-9")
}

func TestRestartKeepsTokenValidWithFixedIssuer(t *testing.T) {
	dir := t.TempDir()
	const iss = "https://login.example.test"
	p := startIDP(t, dir, "--issuer", iss)
	signup(t, p.URL, "hank", "correct-horse-9")
	tok := login(t, p.URL, "hank", "correct-horse-9")["access_token"].(string)
	p.Stop()
	p2 := startIDP(t, dir, "--issuer", iss)
	if a := do(t, "GET", p2.URL+"/userinfo", "", nil, "Authorization", "JWT "+tok); a.status != 200 {
		t.Fatalf("userinfo after restart: %d %s", a.status, a.body)
	}
	verifyWithJWKS(t, p2.URL, iss, tok)
}

func TestSecondProcessOnSameFolderExits(t *testing.T) {
	dir := t.TempDir()
	startIDPBinary(t, dir)
	out, err := proctest.Run(idpBin, []string{"--addr", "127.0.0.1:0", "--data", dir})
	if err == nil {
		t.Fatal("second process started on a locked folder")
	}
	if !strings.Contains(out, dir) || !strings.Contains(out, "in use by another process") {
		t.Fatalf("message does not name the folder and the lock: %s", out)
	}
}

func TestJWKSAndDiscovery(t *testing.T) {
	dir := t.TempDir()
	const iss = "https://id.example.test/tenant"
	p := startIDP(t, dir, "--issuer", iss)
	keys, body := jwksKeys(t, p.URL)
	if len(keys) != 2 {
		t.Fatalf("first start publishes %d keys, want current and next", len(keys))
	}
	var raw struct{ Keys []map[string]any }
	json.Unmarshal(body, &raw)
	for _, k := range raw.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[private]; ok {
				t.Fatalf("JWKS key has private member %q", private)
			}
		}
		if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" || k["kid"] == "" || k["n"] == "" || k["e"] == "" {
			t.Fatalf("JWKS key %v", k)
		}
	}
	a := do(t, "GET", p.URL+"/.well-known/jwks.json", "", nil)
	etag := a.header.Get("ETag")
	if etag == "" || !strings.HasPrefix(a.header.Get("Cache-Control"), "public, max-age=") {
		t.Fatalf("JWKS headers %v", a.header)
	}
	if a := do(t, "GET", p.URL+"/.well-known/jwks.json", "", nil, "If-None-Match", etag); a.status != 304 || len(a.body) != 0 {
		t.Fatalf("If-None-Match: %d", a.status)
	}
	d := do(t, "GET", p.URL+"/.well-known/openid-configuration", "", nil).json(t)
	if d["issuer"] != iss {
		t.Fatalf("issuer %v", d["issuer"])
	}
	for _, k := range []string{"jwks_uri", "token_endpoint", "revocation_endpoint", "userinfo_endpoint", "authorization_endpoint",
		"introspection_endpoint", "end_session_endpoint", "device_authorization_endpoint"} {
		if u, _ := d[k].(string); !strings.HasPrefix(u, iss+"/") {
			t.Errorf("%s = %q, want an absolute URL under %s", k, u, iss)
		}
	}
	// Exactly what is implemented (API.md's OpenID Connect section).
	for k, want := range map[string]string{
		"id_token_signing_alg_values_supported":          "[RS256]",
		"token_endpoint_auth_methods_supported":          "[client_secret_basic client_secret_post none private_key_jwt]",
		"grant_types_supported":                          "[authorization_code refresh_token client_credentials urn:ietf:params:oauth:grant-type:token-exchange urn:ietf:params:oauth:grant-type:device_code]",
		"response_types_supported":                       "[code]",
		"response_modes_supported":                       "[query]",
		"code_challenge_methods_supported":               "[S256]",
		"subject_types_supported":                        "[public]",
		"authorization_response_iss_parameter_supported": "true",
		"scopes_supported":                               "[openid profile email groups offline_access workitems:read workitems:write]",
	} {
		if got := fmt.Sprint(d[k]); got != want {
			t.Errorf("discovery %s = %s, want %s", k, got, want)
		}
	}
	for _, k := range []string{"grant_types_supported", "response_types_supported", "subject_types_supported"} {
		if _, ok := d[k]; !ok {
			t.Errorf("discovery lacks %s", k)
		}
	}
	// The bbolt file and folder are private.
	st, _ := os.Stat(filepath.Join(dir, "idp.db"))
	dst, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o600 || dst.Mode().Perm() != 0o700 {
		t.Fatalf("modes: file %v, folder %v", st.Mode().Perm(), dst.Mode().Perm())
	}
}

func TestConfiguration(t *testing.T) {
	dir := t.TempDir()
	// The variable works, and the flag wins over it.
	p := startIDPEnv(t, dir, service.Env{Getenv: getenv("IDP_TOKEN_TTL=5m", "IDP_AUDIENCE=a1,a2", "IDP_ISSUER=http://issuer.example.test")},
		"--token-ttl", "2m")
	signup(t, p.URL, "ivan", "correct-horse-9")
	tok := login(t, p.URL, "ivan", "correct-horse-9")
	if tok["expires_in"] != float64(120) {
		t.Fatalf("expires_in %v, want 120 (the flag)", tok["expires_in"])
	}
	parts := strings.Split(tok["access_token"].(string), ".")
	var c map[string]any
	b, _ := jwt.NewParser().DecodeSegment(parts[1])
	json.Unmarshal(b, &c)
	if fmt.Sprint(c["aud"]) != "[a1 a2]" || c["iss"] != "http://issuer.example.test" {
		t.Fatalf("claims from the environment: %v", c)
	}
	for _, bad := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--token-ttl", "soon"}, "", "token-ttl"},
		{nil, "IDP_TOKEN_TTL=forever", "IDP_TOKEN_TTL"},
		{nil, "IDP_KEY_ROTATION=-1h", "key-rotation"},
		{[]string{"--issuer", "ftp://x"}, "", "--issuer"},
		{[]string{"--key-bits", "1024"}, "", "--key-bits"},
		{[]string{"--addr", "nonsense"}, "", "--addr"},
		{nil, "IDP_AUDIENCE= ", "--audience"},
		{[]string{"--refresh-ttl", "1m"}, "", "--refresh-ttl"},
	} {
		args := append([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:0"}, bad.args...)
		var env []string
		if bad.env != "" {
			env = append(env, bad.env)
		}
		out, err := runIDP(args, env...)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("%v %v: err %v, output %q; want a failure naming %s", bad.args, bad.env, err, out, bad.want)
		}
	}
}

// burstLogins sends n logins of user at once to /auth and counts the answers by status; a 503
// without Retry-After, or that keeps the connection open, is an error of the test.
func burstLogins(t *testing.T, base, user, pw string, n int) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for range n {
		wg.Go(func() {
			b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
			resp, err := http.Post(base+"/auth", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if resp.StatusCode == 503 && !resp.Close {
				t.Error("503 without Connection: close: a refused client keeps its connection through the burst")
			}
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts
}

// Past --hash-queue logins waiting for a slot, one more is a 503 with Retry-After at once,
// although --hash-wait would let it wait long enough to succeed (and without the bound, every
// login here does): a burst does not hold a request per login.
func TestLoginQueueBounded(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--hash-concurrency", "1", "--hash-wait", "60s", "--hash-queue", "2", "--rate-limit", "0", "--throttle-failures", "0")
	signup(t, p.URL, "kurt", "correct-horse-9")
	if counts := burstLogins(t, p.URL, "kurt", "correct-horse-9", 40); counts[200] == 0 || counts[503] == 0 || counts[200]+counts[503] != 40 {
		t.Fatalf("answers %v: want some 200, some 503 (the queue's bound), nothing else", counts)
	}
}

// Logins wait for a hashing slot; whatever the queue, every answer is one the contract allows.
// (Throttling off: it would let only five of one account's logins from one client run at once.)
func TestConcurrentLoginsBoundedAnswers(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--hash-concurrency", "2", "--hash-wait", "200ms", "--rate-limit", "0", "--throttle-failures", "0")
	signup(t, p.URL, "judy", "correct-horse-9")
	if counts := burstLogins(t, p.URL, "judy", "correct-horse-9", 200); counts[200] == 0 || counts[200]+counts[503] != 200 {
		t.Fatalf("answers %v: want only 200 and 503, some 200", counts)
	}
}

func TestSIGTERMFinishesInFlightRequests(t *testing.T) {
	dir := t.TempDir()
	// Real argon2 cost and one slot: each login takes tens of milliseconds, so a queue forms.
	p := proctest.Start(t, idpBin, []string{"--addr", "127.0.0.1:0", "--data", dir, "--hash-concurrency", "1", "--hash-wait", "30s"})
	// Ten accounts: the throttle lets at most five attempts on one account from one client run
	// at once (they count before they finish).
	for i := range 10 {
		signup(t, p.URL, fmt.Sprint("kate", i), "correct-horse-9")
	}
	var wg sync.WaitGroup
	results := make(chan int, 10)
	started := make(chan struct{}, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(map[string]string{"username": fmt.Sprint("kate", i), "password": "correct-horse-9"})
			started <- struct{}{}
			resp, err := http.Post(p.URL+"/auth", "application/json", bytes.NewReader(b))
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	for range 10 {
		<-started
	}
	// The server has all ten requests: in flight (the scrape itself is one more) or answered.
	reached := func() float64 {
		return metric(t, p.URL, "http_requests_in_flight") - 1 + metric(t, p.URL, `http_requests_total{route="POST /auth",status="200"}`)
	}
	if !proctest.Eventually(10*time.Second, func() bool { return reached() >= 10 }) {
		t.Fatalf("only %v of the logins reached the server", reached())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	for code := range results {
		if code != 200 {
			t.Errorf("in-flight request answered %d", code)
		}
	}
	if err := p.Wait(20 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Log())
	}
}

// need skips when a tool is missing, or fails where integration is required (CI).
func need(t *testing.T, tool string) { proctest.Need(t, tool) }

// The session cookie of API.md: HttpOnly, SameSite=Lax, Secure when the issuer is https, the
// configured parent Domain, the __Host- prefix when https has no Domain, and a value that is
// only an opaque id.
func TestSessionCookieAttributes(t *testing.T) {
	for _, tt := range []struct {
		issuer, domain, name string
		secure               bool
	}{
		{"https://login.example.test", "example.test", "jwtidp_session", true},
		{"https://login.example.test", "", "__Host-jwtidp_session", true},
		{"http://login.example.test", "", "jwtidp_session", false},
	} {
		args := []string{"--issuer", tt.issuer}
		if tt.domain != "" {
			args = append(args, "--cookie-domain", tt.domain)
		}
		p := startIDP(t, t.TempDir(), args...)
		signup(t, p.URL, "cookie-user", "correct-horse-9")
		resp, _ := browserLoginResp(t, p.URL, "cookie-user", "correct-horse-9")
		var c *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == tt.name {
				c = ck
			}
		}
		if resp.StatusCode != 303 || c == nil {
			t.Fatalf("%s: login %d, cookie %v", tt.issuer, resp.StatusCode, c)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.secure || c.Domain != tt.domain || c.MaxAge <= 0 ||
			c.Path != "/" || len(c.Value) != 43 || strings.ContainsAny(c.Value, ".~") {
			t.Fatalf("%s: cookie %+v", tt.issuer, c)
		}
	}
}
