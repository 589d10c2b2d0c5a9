package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// signingKey is a client's private key with its kid and alg.
type signingKey struct {
	kid, alg string
	key      crypto.Signer
}

func newRSAKey(t *testing.T, kid string) signingKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, "RS256", k}
}

func newECKey(t *testing.T, kid string) signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, "ES256", k}
}

// jwks is the public JWKS of keys, as a client registers or serves it.
func jwks(t *testing.T, keys ...signingKey) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// sign makes a client assertion with k over claims.
func (k signingKey) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	proctest.Secret(s)
	return s
}

// assertionClaims are good claims for client id at now, aud the issuer, a fresh jti.
func assertionClaims(id, aud string, now time.Time) jwt.MapClaims {
	b := make([]byte, 12)
	rand.Read(b)
	return jwt.MapClaims{"iss": id, "sub": id, "aud": aud, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": strings.TrimRight(url.QueryEscape(string(b)), "%")}
}

func adminCreateClient(t *testing.T, base string, c map[string]any) {
	t.Helper()
	b, _ := json.Marshal(c)
	a := do(t, "POST", base+"/admin/clients", "application/json", bytes.NewReader(b), "Authorization", "Bearer cli-admin")
	if a.status != 201 {
		t.Fatalf("create client %v: %d %s", c["client_id"], a.status, a.body)
	}
}

// withAssertion is a form with a private_key_jwt client authentication.
func withAssertion(v url.Values, assertion string) url.Values {
	v.Set("client_assertion_type", assertionType)
	v.Set("client_assertion", assertion)
	return v
}

// private_key_jwt through the program, on its clock: a client registered with its keys (jwks)
// or where to fetch them (jwks_uri, an httptest server) gets tokens at /token with an RS256 or
// ES256 assertion, and authenticates with one at /introspect and /revoke; every bad
// assertion is a 401 invalid_client that changes nothing, and no assertion reaches the log.
func TestPrivateKeyJWT(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--admin-token", "cli-admin", "--rate-limit", "0")
	base := p.URL
	issuer := discoveryDoc(t, base)["issuer"].(string)

	rsaKey, ecKey := newRSAKey(t, "rsa-1"), newECKey(t, "ec-1")
	adminCreateClient(t, base, map[string]any{"client_id": "signer", "name": "Signer", "grant_types": []string{"client_credentials"},
		"scopes": []string{"workitems:read"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(t, rsaKey, ecKey)})

	// A client whose keys are served: the server counts its fetches and can rotate.
	uriKey, rotated := newECKey(t, "uri-1"), newECKey(t, "uri-2")
	var served atomic.Value
	served.Store(jwks(t, uriKey))
	var fetches atomic.Int32
	keysrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(served.Load())
	}))
	t.Cleanup(keysrv.Close)
	adminCreateClient(t, base, map[string]any{"client_id": "fetched", "name": "Fetched", "grant_types": []string{"client_credentials"},
		"scopes": []string{"workitems:read"}, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": keysrv.URL + "/jwks.json"})
	secret := addClient(t, base, "secretive")

	token := func(form url.Values, header ...string) answer {
		t.Helper()
		form.Set("grant_type", "client_credentials")
		return do(t, "POST", base+"/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), header...)
	}
	ok := func(what string, a answer) map[string]any {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("%s: %d %s", what, a.status, a.body)
		}
		return a.json(t)
	}

	// Success: RS256 and ES256, aud the issuer or (in a list) the token endpoint; client_id may
	// be sent too.
	now := clk.Now()
	cc := ok("RS256", token(withAssertion(url.Values{}, rsaKey.sign(t, assertionClaims("signer", issuer, now)))))
	if c := verifyWithJWKS(t, base, issuer, cc["access_token"].(string)); c["sub"] != "signer" || c["client_id"] != "signer" {
		t.Fatalf("claims %v", c)
	}
	es := assertionClaims("signer", "", now)
	es["aud"] = []string{"https://elsewhere.example", base + "/token"}
	ok("ES256, aud a list with the token endpoint", token(withAssertion(url.Values{"client_id": {"signer"}}, ecKey.sign(t, es))))
	ok("fetched keys", token(withAssertion(url.Values{}, uriKey.sign(t, assertionClaims("fetched", issuer, now)))))

	// A replay is refused; so is every other bad assertion, each a 401 invalid_client.
	replayed := rsaKey.sign(t, assertionClaims("signer", issuer, now))
	ok("first use", token(withAssertion(url.Values{}, replayed)))
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, assertionClaims("signer", issuer, now))
	hs.Header["kid"] = "rsa-1"
	hsSigned, _ := hs.SignedString([]byte("a shared secret, which this IdP does not offer"))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, assertionClaims("signer", issuer, now))
	noneSigned, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	with := func(k signingKey, id string, change func(jwt.MapClaims)) string {
		c := assertionClaims(id, issuer, now)
		change(c)
		return k.sign(t, c)
	}
	unknownKid := ecKey
	unknownKid.kid = "nobody"
	strangerKey := newRSAKey(t, "rsa-1") // the kid of signer's key, not its key
	for _, tt := range []struct {
		name string
		form url.Values
		head []string
	}{
		{"replayed jti", withAssertion(url.Values{}, replayed), nil},
		{"HS256", withAssertion(url.Values{}, hsSigned), nil},
		{"alg none", withAssertion(url.Values{}, noneSigned), nil},
		{"wrong iss", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) { c["iss"] = "fetched" })), nil},
		{"wrong sub", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) { c["sub"] = "someone" })), nil},
		{"client_id not the iss", withAssertion(url.Values{"client_id": {"fetched"}}, with(rsaKey, "signer", func(jwt.MapClaims) {})), nil},
		{"wrong aud", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" })), nil},
		{"aud another endpoint", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) { c["aud"] = base + "/introspect" })), nil},
		{"no exp", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) { delete(c, "exp") })), nil},
		{"exp too far", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) { c["exp"] = now.Add(10 * time.Minute).Unix() })), nil},
		{"expired", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-5*time.Minute).Unix(), now.Add(-2*time.Minute).Unix()
		})), nil},
		{"no jti", withAssertion(url.Values{}, with(rsaKey, "signer", func(c jwt.MapClaims) { delete(c, "jti") })), nil},
		{"unknown kid", withAssertion(url.Values{}, with(unknownKid, "signer", func(jwt.MapClaims) {})), nil},
		{"a key of another client", withAssertion(url.Values{}, with(uriKey, "signer", func(jwt.MapClaims) {})), nil},
		{"a stranger's key under a known kid", withAssertion(url.Values{}, with(strangerKey, "signer", func(jwt.MapClaims) {})), nil},
		{"a secret client sending an assertion", withAssertion(url.Values{}, with(rsaKey, "secretive", func(jwt.MapClaims) {})), nil},
		{"an unknown client", withAssertion(url.Values{}, with(rsaKey, "nobody", func(jwt.MapClaims) {})), nil},
		{"a private_key_jwt client sending a secret (Basic)", url.Values{}, []string{"Authorization", basicAuth("signer", secret)}},
		{"a private_key_jwt client sending a secret (post)", url.Values{"client_id": {"signer"}, "client_secret": {secret}}, nil},
		{"a private_key_jwt client sending nothing", url.Values{"client_id": {"signer"}}, nil},
		{"not a JWT", withAssertion(url.Values{}, "not.a.jwt"), nil},
	} {
		a := token(tt.form, tt.head...)
		if a.status != 401 || a.json(t)["error"] != "invalid_client" {
			t.Errorf("%s: %d %s, want 401 invalid_client", tt.name, a.status, a.body)
		}
	}
	// Malformed client authentication is invalid_request.
	for name, form := range map[string]url.Values{
		"an assertion and a secret": withAssertion(url.Values{"client_secret": {secret}}, rsaKey.sign(t, assertionClaims("signer", issuer, now))),
		"another assertion type":    {"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}, "client_assertion": {"x"}},
		"an assertion without type": {"client_assertion": {rsaKey.sign(t, assertionClaims("signer", issuer, now))}},
	} {
		if a := token(form); a.status != 400 || a.json(t)["error"] != "invalid_request" {
			t.Errorf("%s: %d %s, want 400 invalid_request", name, a.status, a.body)
		}
	}

	// A rotated key served at jwks_uri is taken once the cache may ask again (a few seconds),
	// not at every unknown kid.
	served.Store(jwks(t, uriKey, rotated))
	before := fetches.Load()
	if a := token(withAssertion(url.Values{}, rotated.sign(t, assertionClaims("fetched", issuer, now)))); a.status != 401 {
		t.Fatalf("a new kid at once: %d %s, want 401 (fetched %d times)", a.status, a.body, fetches.Load()-before)
	}
	for range 3 {
		token(withAssertion(url.Values{}, rotated.sign(t, assertionClaims("fetched", issuer, now))))
	}
	if n := fetches.Load() - before; n != 0 {
		t.Fatalf("unknown kids within the refresh interval fetched %d times, want 0", n)
	}
	clk.Advance(6 * time.Second)
	now = clk.Now()
	ok("a new kid after the refresh interval", token(withAssertion(url.Values{}, rotated.sign(t, assertionClaims("fetched", issuer, now)))))
	if n := fetches.Load() - before; n != 1 {
		t.Fatalf("fetched %d times, want 1", n)
	}

	// /introspect and /revoke take the same authentication; aud may be that endpoint.
	introspect := func(assertion string) answer {
		t.Helper()
		return postForm(t, base+"/introspect", withAssertion(url.Values{"token": {cc["access_token"].(string)}}, assertion))
	}
	atEndpoint := func(path string) string {
		return ecKey.sign(t, assertionClaims("signer", base+path, now))
	}
	if in := ok("introspect", introspect(atEndpoint("/introspect"))); in["active"] != true || in["client_id"] != "signer" {
		t.Fatalf("introspection: %v", in)
	}
	ok("introspect, aud the issuer", introspect(ecKey.sign(t, assertionClaims("signer", issuer, now))))
	if a := introspect(atEndpoint("/token")); a.status != 401 {
		t.Fatalf("introspect with an assertion for /token: %d %s", a.status, a.body)
	}
	if a := introspect(with(ecKey, "secretive", func(jwt.MapClaims) {})); a.status != 401 {
		t.Fatalf("introspect with a secret client's assertion: %d %s", a.status, a.body)
	}
	revoke := func(assertion string) answer {
		return postForm(t, base+"/revoke", withAssertion(url.Values{"token": {"no such token"}}, assertion))
	}
	if a := revoke(atEndpoint("/revoke")); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	replay := atEndpoint("/revoke")
	if a := revoke(replay); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	if a := revoke(replay); a.status != 401 {
		t.Fatalf("revoke with a replayed assertion: %d %s", a.status, a.body)
	}

	// A jti is remembered while its assertion lives, by every replica of the store: uses of one
	// assertion at once are one success.
	same := rsaKey.sign(t, assertionClaims("signer", issuer, now))
	var wg sync.WaitGroup
	var won atomic.Int32
	for range 8 {
		wg.Go(func() {
			if a := token(withAssertion(url.Values{}, same)); a.status == 200 {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d uses of one assertion succeeded, want 1", won.Load())
	}

	doc := discoveryDoc(t, base)
	for _, member := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"} {
		if !strings.Contains(string(mustJSON(doc[member])), `"private_key_jwt"`) {
			t.Errorf("discovery %s = %v", member, doc[member])
		}
	}
	if got := string(mustJSON(doc["token_endpoint_auth_signing_alg_values_supported"])); got != `["RS256","ES256"]` {
		t.Errorf("token_endpoint_auth_signing_alg_values_supported = %s", got)
	}
	if strings.Contains(string(mustJSON(doc)), "client_secret_jwt") {
		t.Error("discovery offers client_secret_jwt")
	}
}

func discoveryDoc(t *testing.T, base string) map[string]any {
	t.Helper()
	a := do(t, "GET", base+"/.well-known/openid-configuration", "", nil)
	if a.status != 200 {
		t.Fatalf("discovery: %d", a.status)
	}
	return a.json(t)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// The referee: panva's certified openid-client (npm, pinned in testdata/openid-client)
// authenticates with its PrivateKeyJwt — ES256 and RS256 — at /token, /introspect and
// /revoke, and its assertion with a jti used before is refused.
func TestPrivateKeyJWTWithOpenIDClient(t *testing.T) {
	node := proctest.NodePackages(t, "testdata/openid-client", "openid-client")
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin", "--rate-limit", "0", "--audience", "workitems,relying")
	issuer := discoveryDoc(t, p.URL)["issuer"].(string)
	ecKey, rsaKey := newECKey(t, "ec-1"), newRSAKey(t, "rsa-1")
	adminCreateClient(t, p.URL, map[string]any{"client_id": "relying", "name": "openid-client", "grant_types": []string{"client_credentials"},
		"scopes": []string{"workitems:read"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(t, ecKey, rsaKey)})
	var private []jose.JSONWebKey
	for _, k := range []signingKey{ecKey, rsaKey} {
		private = append(private, jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	keys, err := json.Marshal(private)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "private_key_jwt.mjs")
	cmd.Dir = "testdata/openid-client"
	cmd.Env = append(os.Environ(), "ISSUER="+issuer, "CLIENT_ID=relying", "KEYS="+string(keys))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openid-client: %v\n%s\nIdP log:\n%s", err, out, p.Log())
	}
	for _, want := range []string{"ok ES256: token, introspection, revocation", "ok RS256: token, introspection, revocation",
		"ok first use of the jti", "ok replay refused: invalid_client"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("openid-client did not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(p.Log(), "jti already used") {
		t.Fatalf("the IdP did not log the replay's refusal:\n%s", p.Log())
	}
}

// A registration's keys are checked: private keys, unreadable documents and keys no assertion
// can be checked with are a 400 that stores nothing.
func TestPrivateKeyJWTRegistrationRefusals(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin", "--rate-limit", "0")
	ec := newECKey(t, "ec-1")
	privateJWK, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec.key, KeyID: "ec-1"}}})
	var privateSet map[string]any
	json.Unmarshal(privateJWK, &privateSet)
	hmac, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h"}}})
	var hmacSet map[string]any
	json.Unmarshal(hmac, &hmacSet)
	for name, tt := range map[string]struct {
		fields map[string]any
		want   string
	}{
		"a private key":        {map[string]any{"jwks": privateSet}, "public keys only"},
		"a symmetric key":      {map[string]any{"jwks": hmacSet}, "public keys only"},
		"no keys":              {map[string]any{"jwks": map[string]any{"keys": []any{}}}, "needs an RSA key"},
		"not a JWKS":           {map[string]any{"jwks": map[string]any{"keys": "x"}}, "not a JWKS"},
		"a secret too":         {map[string]any{"jwks": jwks(t, ec), "client_secret": strings.Repeat("s", 40)}, "client_secret"},
		"neither":              {map[string]any{}, "jwks or jwks_uri"},
		"plain http elsewhere": {map[string]any{"jwks_uri": "http://keys.example/jwks.json"}, "jwks_uri"},
	} {
		c := map[string]any{"client_id": "keyed", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt"}
		for k, v := range tt.fields {
			c[k] = v
		}
		b, _ := json.Marshal(c)
		a := do(t, "POST", p.URL+"/admin/clients", "application/json", bytes.NewReader(b), "Authorization", "Bearer cli-admin")
		if a.status != 400 || !strings.Contains(string(a.body), tt.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", name, a.status, a.body, tt.want)
		}
	}
	if a := do(t, "GET", p.URL+"/admin/clients/keyed", "", nil, "Authorization", "Bearer cli-admin"); a.status != 404 {
		t.Fatalf("a refused registration was stored: %d %s", a.status, a.body)
	}
}
