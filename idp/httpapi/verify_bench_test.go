package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/access"
	"jwtidp/idp/access/accesstest"
	"jwtidp/idp/auth"
	"jwtidp/idp/keys"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// BenchmarkVerify is /verify for a signed-in browser behind a trusted proxy, with no rules and
// with 50 (accesstest.Fifty, the last one matching): the rules must keep it within 0.9× of its
// speed without them. Compare the two with -count and benchstat.
func BenchmarkVerify(b *testing.B) {
	fifty := accesstest.Fifty()
	for _, bc := range []struct {
		name  string
		rules *access.Config
	}{{"no rules", nil}, {"50 rules", &fifty}} {
		b.Run(bc.name, func(b *testing.B) {
			var deps Deps
			h := newIdPAt(b, time.Now, func(d *Deps) {
				d.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
				d.RemoteAddrs = web.ClientAddrs{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
				if bc.rules != nil {
					p, probs := access.Compile(*bc.rules)
					if probs != nil {
						b.Fatal(probs)
					}
					d.Access = func() *access.Policy { return p }
				}
				deps = *d
			})
			w := httptest.NewRecorder()
			signup := httptest.NewRequest("POST", "/signup", strings.NewReader(`{"username":"root","password":"correct-horse-9"}`))
			signup.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(w, signup)
			if w.Code != 201 {
				b.Fatalf("signup: %d", w.Code)
			}
			ctx := context.Background()
			a, err := deps.Auth.SignIn.Authenticate(ctx, auth.Credentials{Username: "root", Password: "correct-horse-9"})
			if err != nil {
				b.Fatal(err)
			}
			a.AMR = append(a.AMR, auth.AMRMultiFactor) // as if with a code: the rule asks for two factors
			signed, err := deps.Auth.SignIn.Complete(ctx, a, auth.Target{Browser: true})
			if err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/verify", nil)
			r.AddCookie(&http.Cookie{Name: "jwtidp_session", Value: signed.Secret})
			asFromProxy(r)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("/verify: %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkVerifyBearer is /verify as the bench's nginx figure 2b asks it: an access token
// from POST /auth, behind a trusted proxy, with 50 rules of which the last one lets the user in
// with one factor. The whole handler, middleware included.
func BenchmarkVerifyBearer(b *testing.B) {
	rules := accesstest.Fifty()
	last := &rules.Rules[len(rules.Rules)-1]
	last.Subject = []string{"user:root"}
	last.Policy = access.OneFactor
	p, probs := access.Compile(rules)
	if probs != nil {
		b.Fatal(probs)
	}
	h := newIdPAt(b, time.Now, func(d *Deps) {
		d.Logger = slog.New(web.NewLogHandler(io.Discard, false, slog.LevelInfo))
		d.RemoteAddrs = web.ClientAddrs{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		d.Access = func() *access.Policy { return p }
		d.Sessions.Users = d.Sessions.Store.(auth.UserReader) // bearer tokens pass at the edge
		// The verified-token cache, as the IdP's --serve sets it.
		d.Verifier = jwtauth.NewVerifier(jwtauth.Config{Issuer: "http://idp.test", Keys: jwtauth.LocalKeys{Lookup: d.Keys.(*keys.Manager).PublicKey, Gen: d.Keys.(*keys.Manager).Generation},
			Now: time.Now, CacheSize: 10000})
	})
	var token string
	for _, path := range []string{"/signup", "/auth"} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", path, strings.NewReader(`{"username":"root","password":"correct-horse-9"}`))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, r)
		if w.Code >= 300 {
			b.Fatalf("%s: %d", path, w.Code)
		}
		if path == "/auth" {
			var m struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || m.AccessToken == "" {
				b.Fatalf("/auth: %s", w.Body)
			}
			token = m.AccessToken
		}
	}
	r := httptest.NewRequest("GET", "/verify", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	asFromProxy(r)
	b.ReportAllocs()
	w := &discardWriter{h: http.Header{}}
	for b.Loop() {
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != 200 {
			b.Fatalf("/verify: %d", w.code)
		}
	}
}

// asFromProxy makes r the subrequest a trusted proxy (127.0.0.1) sends for a client at
// 10.1.2.3 asking GET https://app49.example.com/admin/users?page=2: the request the last of
// accesstest.Fifty's rules is about.
func asFromProxy(r *http.Request) {
	r.RemoteAddr = "127.0.0.1:40000"
	for k, v := range map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app49.example.com",
		"X-Forwarded-Uri": "/admin/users?page=2", "X-Forwarded-Method": "GET", "X-Forwarded-For": "10.1.2.3"} {
		r.Header.Set(k, v)
	}
}

// discardWriter is a ResponseWriter that keeps only the status, reused across iterations so
// that the benchmark counts the handler's allocations, not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(b), nil
}
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
