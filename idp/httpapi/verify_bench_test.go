package httpapi

import (
	"context"
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
			r.RemoteAddr = "127.0.0.1:40000"
			r.AddCookie(&http.Cookie{Name: "jwtidp_session", Value: signed.Secret})
			for k, v := range map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app49.example.com",
				"X-Forwarded-Uri": "/admin/users?page=2", "X-Forwarded-Method": "GET", "X-Forwarded-For": "10.1.2.3"} {
				r.Header.Set(k, v)
			}
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
