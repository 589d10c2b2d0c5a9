package upstream

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"jwtidp/shared/apperr"
	"jwtidp/shared/proctest"
)

const callback = "http://127.0.0.1:1/login/upstream/company/callback"

func oidcConfig(issuer, secret string) Config {
	c := Config{ID: "company", Type: TypeOIDC, Name: "Company", Issuer: issuer, ClientID: "jwtidp", ClientSecret: secret,
		Scopes: []string{"openid", "profile", "email", "groups"}, Claims: Claims{Groups: "groups"}}
	c.Defaults()
	return c
}

// signInUpstream follows the browser's way through oidc-provider's own login and consent
// forms (devInteractions) as login, and returns the callback's query.
func signInUpstream(t *testing.T, authURL, login string) url.Values {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), strings.Split(callback, "?")[0]) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	action := regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	resp, err := c.Get(authURL)
	for step := 0; step < 4 && back == nil; step++ {
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		buf := make([]byte, 64<<10)
		n, _ := resp.Body.Read(buf)
		body.Write(buf[:n])
		resp.Body.Close()
		m := action.FindStringSubmatch(body.String())
		if m == nil {
			t.Fatalf("no form at %s (%d): %s", resp.Request.URL, resp.StatusCode, body.String())
		}
		to, _ := resp.Request.URL.Parse(m[1])
		form := url.Values{"prompt": {"consent"}}
		if strings.Contains(body.String(), `name="login"`) {
			form = url.Values{"prompt": {"login"}, "login": {login}, "password": {"anything"}}
		}
		resp, err = c.PostForm(to.String(), form)
	}
	if back == nil {
		t.Fatal("the upstream never sent the browser back")
	}
	return back.Query()
}

// TestOIDCAgainstOIDCProvider signs in at panva's oidc-provider: discovery, the code with PKCE,
// the ID token verified and its claims mapped; a wrong nonce and a replayed code are refused.
func TestOIDCAgainstOIDCProvider(t *testing.T) {
	port := proctest.FreePort(t)
	p := proctest.StartOIDCProvider(t, "../testdata/oidc-provider", port, callback, "devs", "ops")
	rc, err := NewOIDC(oidcConfig(p.Issuer, p.ClientSecret), callback, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flow := func(state, nonce, verifier string) string {
		u := rc.AuthCodeURL(state, nonce, verifier)
		if u == "" {
			t.Fatal("no authorization URL: discovery failed")
		}
		q, _ := url.Parse(u)
		for k, want := range map[string]string{"state": state, "nonce": nonce, "code_challenge_method": "S256", "response_type": "code", "client_id": "jwtidp", "redirect_uri": callback} {
			if got := q.Query().Get(k); got != want {
				t.Fatalf("authorization URL's %s = %q, want %q", k, got, want)
			}
		}
		if strings.Contains(u, verifier) {
			t.Fatal("the verifier itself went to the upstream")
		}
		back := signInUpstream(t, u, "alice")
		if back.Get("state") != state || back.Get("code") == "" {
			t.Fatalf("callback query %v", back)
		}
		return back.Get("code")
	}
	verifier := strings.Repeat("v", 43)
	code := flow("state-1", "nonce-1", verifier)
	id, err := rc.Exchange(context.Background(), code, verifier, "nonce-1")
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Connector: "company", Subject: "alice", Username: "alice", Email: "alice@upstream.test", EmailVerified: true, Groups: []string{"devs", "ops"}}
	if got, _ := json.Marshal(id); string(got) != string(mustJSON(want)) {
		t.Fatalf("identity %s, want %s", got, mustJSON(want))
	}
	// The same code again: the upstream refuses it, and that is a refusal, not an outage.
	if _, err := rc.Exchange(context.Background(), code, verifier, "nonce-1"); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("replayed code: %v, want EUNAUTHORIZED", err)
	}

	code = flow("state-2", "nonce-2", verifier)
	_, err = rc.Exchange(context.Background(), code, verifier, "another-nonce")
	if apperr.Code(err) != apperr.EUNAUTHORIZED || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("nonce mismatch: %v, want EUNAUTHORIZED naming the nonce", err)
	}
	if apperr.Message(err) != ErrRefused.Message {
		t.Fatalf("the user is told %q", apperr.Message(err))
	}

	code = flow("state-3", "nonce-3", verifier)
	if _, err := rc.Exchange(context.Background(), code, strings.Repeat("w", 43), "nonce-3"); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("wrong PKCE verifier: %v, want EUNAUTHORIZED", err)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// fakeUpstream is an OpenID provider written here, for what a certified one never does: an ID
// token with another issuer, or signed by a key not in its JWKS.
type fakeUpstream struct {
	srv       *httptest.Server
	key       *rsa.PrivateKey // the JWKS's
	signer    *rsa.PrivateKey // what signs the ID tokens
	iss       string          // the ID tokens' iss; the server's URL when ""
	discovery atomic.Int32
	down      atomic.Bool
	garbage   atomic.Bool
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{}
	f.key, _ = rsa.GenerateKey(rand.Reader, 2048)
	f.signer = f.key
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		f.discovery.Add(1)
		if f.garbage.Load() {
			w.Write([]byte("<html>not json"))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/auth",
			"token_endpoint": f.srv.URL + "/token", "jwks_uri": f.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	case "/jwks":
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	case "/token":
		if u, p, _ := r.BasicAuth(); u != "jwtidp" || p != "fake-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		iss := f.iss
		if iss == "" {
			iss = f.srv.URL
		}
		sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: f.signer}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
		now := time.Now()
		raw, _ := jwt.Signed(sig).Claims(map[string]any{"iss": iss, "sub": "u-1", "aud": "jwtidp", "exp": now.Add(time.Minute).Unix(),
			"iat": now.Unix(), "nonce": "n", "preferred_username": "bob", "groups": "admins"}).Serialize()
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": raw, "expires_in": 60})
	default:
		http.NotFound(w, r)
	}
}

func TestOIDCRefusesForeignTokens(t *testing.T) {
	f := newFakeUpstream(t)
	exchange := func() (Identity, error) {
		rc, _ := NewOIDC(oidcConfig(f.srv.URL, "fake-secret"), callback, nil, nil)
		return rc.Exchange(context.Background(), "code", "verifier", "n")
	}
	id, err := exchange()
	if err != nil || id.Subject != "u-1" || id.Username != "bob" || len(id.Groups) != 1 || id.Groups[0] != "admins" {
		t.Fatalf("the fake's good token: %+v, %v", id, err)
	}

	f.iss = "https://evil.example"
	if _, err := exchange(); apperr.Code(err) != apperr.EUNAUTHORIZED || !strings.Contains(err.Error(), "issued by a different provider") {
		t.Fatalf("wrong iss: %v, want EUNAUTHORIZED naming the issuer", err)
	}
	f.iss = ""

	f.signer, _ = rsa.GenerateKey(rand.Reader, 2048)
	if _, err := exchange(); apperr.Code(err) != apperr.EUNAUTHORIZED || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("another key: %v, want EUNAUTHORIZED naming the signature", err)
	}
	f.signer = f.key

	rc, _ := NewOIDC(oidcConfig(f.srv.URL, "fake-secret"), callback, nil, nil)
	if _, err := rc.Exchange(context.Background(), "code", "verifier", "not-n"); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("nonce: %v", err)
	}
	if _, err := rc.Exchange(context.Background(), "code", "verifier", ""); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("empty nonce: %v", err)
	}
}

// TestOIDCUpstreamDown: an upstream that is down or answers garbage is ErrUnavailable, asked
// again only after a few seconds, and found once it is back.
func TestOIDCUpstreamDown(t *testing.T) {
	closed := "http://127.0.0.1:" + strconv.Itoa(proctest.FreePort(t))
	rc, err := NewOIDC(oidcConfig(closed, "s3cret-value"), callback, nil, nil)
	if err != nil {
		t.Fatal("NewOIDC must not contact the upstream:", err)
	}
	_, err = rc.Exchange(context.Background(), "c", "v", "n")
	if !errors.Is(err, ErrUnavailable) || rc.AuthCodeURL("s", "n", "v") != "" {
		t.Fatalf("nothing listening: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "s3cret-value") {
		t.Fatal("the secret reached the error")
	}

	f := newFakeUpstream(t)
	f.garbage.Store(true)
	now := time.Unix(1_000_000, 0)
	c, _ := NewOIDC(oidcConfig(f.srv.URL, "fake-secret"), callback, nil, nil)
	c.(*oidcConnector).now = func() time.Time { return now }
	if _, err := c.Exchange(context.Background(), "c", "verifier", "n"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("garbage discovery: %v, want ErrUnavailable", err)
	}
	f.garbage.Store(false)
	now = now.Add(2 * time.Second)
	if _, err := c.Exchange(context.Background(), "c", "verifier", "n"); !errors.Is(err, ErrUnavailable) || f.discovery.Load() != 1 {
		t.Fatalf("within the retry delay: %v after %d discoveries, want the remembered failure", err, f.discovery.Load())
	}
	now = now.Add(discoveryRetry)
	if _, err := c.Exchange(context.Background(), "c", "verifier", "n"); err != nil || f.discovery.Load() != 2 {
		t.Fatalf("after the delay: %v after %d discoveries", err, f.discovery.Load())
	}
	f.down.Store(true)
	if _, err := c.Exchange(context.Background(), "c", "verifier", "n"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("token endpoint down: %v, want ErrUnavailable", err)
	}
}
