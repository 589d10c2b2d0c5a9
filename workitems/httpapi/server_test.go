package httpapi

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
	"jwtidp/workitems/boltdb"
)

const issuer = "http://idp.test"

var testKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

func token(t *testing.T, sub, scope string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwtauth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Subject: sub, Audience: jwt.ClaimStrings{"workitems"},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		Scope: scope,
	})
	tok.Header["typ"], tok.Header["kid"] = "at+jwt", "k1"
	s, err := tok.SignedString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newServer(t *testing.T) http.Handler {
	t.Helper()
	db, err := boltdb.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys := jwtauth.StaticKeys(func(kid string) (*rsa.PublicKey, bool) { return &testKey.PublicKey, kid == "k1" })
	return NewServer(Deps{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Items: db, Store: db,
		Verifier: jwtauth.NewVerifier(jwtauth.Config{Issuer: issuer, Audience: "workitems", Keys: keys}),
		Ready:    web.NewReadiness(nil), Now: time.Now,
	})
}

// Every route's error answers, as a client sees them: status, envelope, and the RFC 6750
// challenge where a token is at fault.
func TestErrorAnswers(t *testing.T) {
	h := newServer(t)
	rw := "workitems:read workitems:write"
	alice, bob, readOnly := token(t, "alice", rw), token(t, "bob", rw), token(t, "alice", "workitems:read")
	do := func(method, path, auth, contentType, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do("POST", "/workitems", "JWT "+alice, "application/json", `{"title":"alice's"}`); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	for _, tt := range []struct {
		name, method, path, auth, ctype, body string
		status                                int
		challenge                             string // in WWW-Authenticate
	}{
		{"no token", "GET", "/workitems", "", "", "", 401, `Bearer realm="workitems"`},
		{"a garbage token", "GET", "/workitems", "Bearer x.y.z", "", "", 401, `error="invalid_token"`},
		{"a wrong scheme", "GET", "/workitems", "Basic " + alice, "", "", 401, `realm="workitems"`},
		{"no write scope", "POST", "/workitems", "Bearer " + readOnly, "application/json", `{"title":"x"}`, 403, `error="insufficient_scope"`},
		{"no write scope to delete", "DELETE", "/workitems/1", "Bearer " + readOnly, "", "", 403, `error="insufficient_scope"`},
		{"limit zero", "GET", "/workitems?limit=0", "Bearer " + alice, "", "", 400, ""},
		{"limit too large", "GET", "/workitems?limit=1001", "Bearer " + alice, "", "", 400, ""},
		{"after not a number", "GET", "/workitems?after=x", "Bearer " + alice, "", "", 400, ""},
		{"not JSON", "POST", "/workitems", "Bearer " + alice, "text/plain", `{"title":"x"}`, 415, ""},
		{"malformed JSON", "POST", "/workitems", "Bearer " + alice, "application/json", `{"title":`, 400, ""},
		{"no title", "POST", "/workitems", "Bearer " + alice, "application/json", `{}`, 400, ""},
		{"an empty title", "POST", "/workitems", "Bearer " + alice, "application/json", `{"title":""}`, 400, ""},
		{"a title over 500 characters", "POST", "/workitems", "Bearer " + alice, "application/json", `{"title":"` + strings.Repeat("é", 501) + `"}`, 400, ""},
		{"a title with a NUL", "POST", "/workitems", "Bearer " + alice, "application/json", `{"title":"a\u0000b"}`, 400, ""},
		{"an unknown field", "POST", "/workitems", "Bearer " + alice, "application/json", `{"title":"x","color":"red"}`, 400, ""},
		{"a field in another case", "POST", "/workitems", "Bearer " + alice, "application/json", `{"Title":"x"}`, 400, ""},
		{"a duplicate field", "POST", "/workitems", "Bearer " + alice, "application/json", `{"title":"x","title":"y"}`, 400, ""},
		{"a body over 64 KiB", "POST", "/workitems", "Bearer " + alice, "application/json", `{"title":"` + strings.Repeat("x", 70<<10) + `"}`, 413, ""},
		{"an id that is no number", "GET", "/workitems/abc", "Bearer " + alice, "", "", 404, ""},
		{"id zero", "GET", "/workitems/0", "Bearer " + alice, "", "", 404, ""},
		{"an unknown id", "GET", "/workitems/99", "Bearer " + alice, "", "", 404, ""},
		{"another owner's item", "GET", "/workitems/1", "Bearer " + bob, "", "", 404, ""},
		{"patching another owner's item", "PATCH", "/workitems/1", "Bearer " + bob, "application/json", `{"done":true}`, 404, ""},
		{"deleting another owner's item", "DELETE", "/workitems/1", "Bearer " + bob, "", "", 404, ""},
		{"a patch with a wrong type", "PATCH", "/workitems/1", "Bearer " + alice, "application/json", `{"done":"yes"}`, 400, ""},
		{"a patch with an empty title", "PATCH", "/workitems/1", "Bearer " + alice, "application/json", `{"title":""}`, 400, ""},
		{"an unknown route", "GET", "/nope", "", "", "", 404, ""},
		{"admin routes off", "GET", "/admin/backup", "Bearer x", "", "", 404, ""},
	} {
		w := do(tt.method, tt.path, tt.auth, tt.ctype, tt.body)
		var env struct {
			Status string `json:"Status"`
			Result string `json:"result"`
		}
		json.Unmarshal(w.Body.Bytes(), &env)
		if w.Code != tt.status || env.Status != "Error" || env.Result == "" || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want %d in the error envelope", tt.name, w.Code, w.Body, tt.status)
		}
		if tt.challenge != "" && !strings.Contains(w.Header().Get("WWW-Authenticate"), tt.challenge) {
			t.Errorf("%s: WWW-Authenticate %q, want %s", tt.name, w.Header().Get("WWW-Authenticate"), tt.challenge)
		}
	}
	// None of that changed alice's item.
	w := do("GET", "/workitems/1", "Bearer "+alice, "", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"title":"alice's"`) || !strings.Contains(w.Body.String(), `"done":false`) {
		t.Fatalf("alice's item after the refused requests: %d %s", w.Code, w.Body)
	}
}
