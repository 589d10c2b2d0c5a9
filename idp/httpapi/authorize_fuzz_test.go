package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// fakeAuthorizer knows one client and issues one code.
type fakeAuthorizer struct {
	client  identity.Client
	consent bool // the user must be asked
}

func (f fakeAuthorizer) GetClient(_ context.Context, id string) (identity.Client, error) {
	if id != f.client.ID {
		return identity.Client{}, apperr.Errorf(apperr.ENOTFOUND, "no client")
	}
	return f.client, nil
}
func (f fakeAuthorizer) NeedsConsent(context.Context, string, identity.Client, []string) (bool, error) {
	return f.consent, nil
}
func (f fakeAuthorizer) RememberConsent(context.Context, string, string, []string) error { return nil }
func (f fakeAuthorizer) IssueCode(context.Context, auth.CodeRequest) (string, error) {
	return "CODE", nil
}

var fuzzClient = identity.Client{ID: "app", Name: "App", RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:8000/cb?x=1"},
	GrantTypes: []string{identity.GrantAuthorizationCode}, Scopes: []string{"openid", "profile"}}

// FuzzAuthorizeEndpoint: whatever query /authorize gets, with or without a session, it answers
// a page (400, or 200 for consent) or 303 — and a 303 goes either to the login page or to a
// redirect URI registered for the client, byte for byte the one the request named, with iss
// and either a code or an error. Never a 5xx, never anywhere else.
func FuzzAuthorizeEndpoint(f *testing.F) {
	for _, q := range []string{
		"", "client_id=app", "client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
		"response_type=code&client_id=app&redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2Fcb%3Fx%3D1&scope=openid+profile&prompt=none",
		"response_type=token&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&scope=openid",
		"response_type=code&client_id=app&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&max_age=0&prompt=login",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%23frag&scope=openid",
	} {
		f.Add(q, true, false)
		f.Add(q, false, true)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, signedIn, consent bool) {
		b, _, s := newBrowser(false)
		a := newAuthorizeEndpoint(b, fakeAuthorizer{client: fuzzClient, consent: consent}, "https://idp.example",
			func() time.Time { return time.Unix(1e9, 0) }, b.logger)
		r := httptest.NewRequest("GET", "/authorize", nil)
		r.URL.RawQuery = rawQuery
		if signedIn {
			r.AddCookie(&http.Cookie{Name: b.cfg.CookieName, Value: s.live})
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		loc := w.Header().Get("Location")
		switch w.Code {
		case 400, 200:
			if loc != "" {
				t.Fatalf("%d with Location %q", w.Code, loc)
			}
			return
		case 303:
		default:
			t.Fatalf("%q: status %d", rawQuery, w.Code)
		}
		if strings.HasPrefix(loc, "/login?") {
			return
		}
		asked := r.URL.Query().Get("redirect_uri")
		registered := false
		for _, u := range fuzzClient.RedirectURIs {
			registered = registered || u == asked
		}
		if !registered || !strings.HasPrefix(loc, asked) || (loc[len(asked)] != '?' && loc[len(asked)] != '&') {
			t.Fatalf("%q: redirected to %q", rawQuery, loc)
		}
		got, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("%q: Location %q: %v", rawQuery, loc, err)
		}
		q := got.Query()
		if q.Get("iss") != "https://idp.example" || (q.Get("code") == "") == (q.Get("error") == "") {
			t.Fatalf("%q: redirected with %v", rawQuery, q)
		}
		if q.Get("code") != "" && !signedIn {
			t.Fatalf("%q: a code without a session", rawQuery)
		}
	})
}
