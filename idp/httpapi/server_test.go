package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/storetest"

	"github.com/prometheus/client_golang/prometheus"

	"jwtidp/idp/auth"
	"jwtidp/idp/boltdb"
	"jwtidp/idp/keys"
	"jwtidp/idp/password"
	"jwtidp/idp/token"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// newIdP is the whole HTTP layer over real use cases and a real store in a temporary folder.
func newIdP(t *testing.T) http.Handler {
	t.Helper()
	return newIdPWith(t, nil)
}

// newIdPWith is newIdP with its dependencies adjusted by edit (nil: none), and registered
// clients in memory.
func newIdPWith(t *testing.T, edit func(*Deps)) http.Handler {
	t.Helper()
	return newIdPAt(t, time.Now, edit)
}

// newIdPAt is newIdPWith on the clock now.
func newIdPAt(t testing.TB, now func() time.Time, edit func(*Deps)) http.Handler {
	t.Helper()
	ctx := context.Background()
	db, err := boltdb.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	km, err := keys.New(ctx, db, keys.Options{Bits: 2048, Now: now, Random: rand.Reader, Logger: log,
		Policy: keys.Policy{TokenTTL: 15 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 2, time.Second, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sessions := &auth.Sessions{Store: db, TTL: time.Hour, CacheTTL: time.Second, Now: now, Random: rand.Reader, Logger: log}
	svc := auth.New(auth.Config{Browser: sessions, Users: db, Families: db, Clients: storetest.NewMemClients(), Hasher: h, RefreshTTL: time.Hour, Now: now, Random: rand.Reader, Logger: log,
		FirstParty: auth.Client{ID: "idp", Scope: "workitems:read", Audience: []string{"workitems"}},
		Issuer:     &token.Issuer{Issuer: "http://idp.test", TTL: 15 * time.Minute, Keys: km, Now: now, Random: rand.Reader}})
	d := Deps{
		Logger: log, Registry: prometheus.NewRegistry(), Auth: svc, Keys: km, Ready: web.NewReadiness(), Issuer: "http://idp.test",
		JWKSMaxAge: time.Minute, Store: db, Sessions: sessions, BrowserKey: []byte("k"), LoginURL: "/login",
		Session: SessionConfig{CookieName: "jwtidp_session", TTL: time.Hour}, Redirects: Redirects{Default: "/"},
		Verifier: jwtauth.NewVerifier(jwtauth.Config{Issuer: "http://idp.test", Keys: jwtauth.LocalKeys{Lookup: km.PublicKey, Gen: km.Generation}, Now: now}),
		Now:      now,
	}
	if edit != nil {
		edit(&d)
	}
	return NewServer(d)
}

// Every JSON and form route's error answers: the app envelope for the app routes, RFC 6749's
// shape for /token and /revoke, and nothing stored on the way.
func TestIdPErrorAnswers(t *testing.T) {
	h := newIdP(t)
	do := func(method, path, auth, ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const form = "application/x-www-form-urlencoded"
	if w := do("POST", "/signup", "", "application/json", `{"username":"alice","password":"correct-horse-9"}`); w.Code != 201 {
		t.Fatalf("signup: %d %s", w.Code, w.Body)
	}
	for _, tt := range []struct {
		name, method, path, auth, ctype, body string
		status                                int
		oauth                                 string // the RFC 6749 error code; "" for the app envelope
	}{
		{"signup: not JSON", "POST", "/signup", "", "text/plain", `{}`, 415, ""},
		{"signup: a field missing", "POST", "/signup", "", "application/json", `{"username":"bob"}`, 400, ""},
		{"signup: a username outside the rules", "POST", "/signup", "", "application/json", `{"username":"b b","password":"correct-horse-9"}`, 400, ""},
		{"signup: a common password", "POST", "/signup", "", "application/json", `{"username":"bob","password":"password1"}`, 400, ""},
		{"signup: taken in another case", "POST", "/signup", "", "application/json", `{"username":"ALICE","password":"correct-horse-9"}`, 409, ""},
		{"signup: a field in another case", "POST", "/signup", "", "application/json", `{"Username":"bob","password":"correct-horse-9"}`, 400, ""},
		{"auth: a wrong password", "POST", "/auth", "", "application/json", `{"username":"alice","password":"wrong-horse-9"}`, 401, ""},
		{"auth: an unknown user", "POST", "/auth", "", "application/json", `{"username":"nobody","password":"wrong-horse-9"}`, 401, ""},
		{"auth: a Kelvin sign", "POST", "/auth", "", "application/json", "{\"username\":\"\u212Aate\",\"password\":\"correct-horse-9\"}", 400, ""},
		{"auth: invalid UTF-8", "POST", "/auth", "", "application/json", "{\"username\":\"al\xffice\",\"password\":\"correct-horse-9\"}", 400, ""},
		{"auth: a duplicate field", "POST", "/auth", "", "application/json", `{"username":"alice","username":"alice","password":"correct-horse-9"}`, 400, ""},
		{"token: not a form", "POST", "/token", "", "application/json", `{}`, 400, "invalid_request"},
		{"token: no grant type", "POST", "/token", "", form, "refresh_token=x", 400, "invalid_request"},
		{"token: the password grant", "POST", "/token", "", form, "grant_type=password&username=alice", 400, "unsupported_grant_type"},
		{"token: no refresh token", "POST", "/token", "", form, "grant_type=refresh_token", 400, "invalid_request"},
		{"token: an unknown refresh token", "POST", "/token", "", form, "grant_type=refresh_token&refresh_token=x", 400, "invalid_grant"},
		{"token: a repeated parameter", "POST", "/token", "", form, "grant_type=refresh_token&grant_type=refresh_token&refresh_token=x", 400, "invalid_request"},
		{"token: a form over 64 KiB", "POST", "/token", "", form, "grant_type=refresh_token&refresh_token=" + strings.Repeat("x", 70<<10), 413, "invalid_request"},
		{"revoke: no token", "POST", "/revoke", "", form, "", 400, "invalid_request"},
		{"revoke: an unreadable Basic header", "POST", "/revoke", "Basic !!!", form, "token=x", 401, "invalid_client"},
		{"token: the code grant without a client", "POST", "/token", "", form, "grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Fa.example%2Fcb", 401, "invalid_client"},
		{"token: the code grant without a code", "POST", "/token", "", form, "grant_type=authorization_code&client_id=app&redirect_uri=https%3A%2F%2Fa.example%2Fcb", 400, "invalid_request"},
		{"token: the code grant without a redirect URI", "POST", "/token", "", form, "grant_type=authorization_code&client_id=app&code=x", 400, "invalid_request"},
		{"token: a code given twice", "POST", "/token", "", form, "grant_type=authorization_code&client_id=app&code=x&code=y&redirect_uri=r", 400, "invalid_request"},
		{"introspect: no client", "POST", "/introspect", "", form, "token=x", 401, "invalid_client"},
		{"totp: no bearer token", "POST", "/account/totp", "", "", "", 401, ""},
		{"totp confirm: no bearer token", "POST", "/account/totp/confirm", "", "application/json", `{"code":"123456"}`, 401, ""},
		{"totp: disable without a bearer token", "DELETE", "/account/totp", "", "application/json", `{"password":"a","code":"1"}`, 401, ""},
		{"password: no bearer token", "POST", "/account/password", "", "application/json", `{"current_password":"a","new_password":"b"}`, 401, ""},
		{"userinfo: a garbage token", "GET", "/userinfo", "Bearer x.y.z", "", "", 401, ""},
		{"admin: off", "GET", "/admin/keys", "Bearer x", "", "", 404, ""},
		{"an unknown route", "GET", "/nope", "", "", "", 404, ""},
	} {
		w := do(tt.method, tt.path, tt.auth, tt.ctype, tt.body)
		var body struct {
			Status string `json:"Status"`
			Result string `json:"result"`
			Error  string `json:"error"`
		}
		json.Unmarshal(w.Body.Bytes(), &body)
		ok := w.Code == tt.status && w.Header().Get("Content-Type") == "application/json"
		if tt.oauth == "" {
			ok = ok && body.Status == "Error" && body.Result != ""
		} else {
			ok = ok && body.Error == tt.oauth && w.Header().Get("Cache-Control") == "no-store"
		}
		if !ok {
			t.Errorf("%s: %d %s, want %d %s", tt.name, w.Code, w.Body, tt.status, tt.oauth)
		}
	}
	// /verify never answers with a body, and never 5xx.
	for _, auth := range []string{"", "Bearer x.y.z", "JWT "} {
		if w := do("GET", "/verify", auth, "", ""); w.Code != 401 || w.Body.Len() != 0 {
			t.Errorf("/verify with %q: %d %q", auth, w.Code, w.Body)
		}
	}
	if w := do("POST", "/auth", "", "application/json", `{"username":"alice","password":"correct-horse-9"}`); w.Code != 200 {
		t.Fatalf("alice after the refused requests: %d %s", w.Code, w.Body)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
