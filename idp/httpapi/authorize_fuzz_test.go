package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/shared/apperr"
)

// fakeAuthorizer knows one client, issues one code, and keeps authorization requests in
// memory.
type fakeAuthorizer struct {
	client   identity.Client
	consent  bool // the user must be asked
	mu       sync.Mutex
	requests map[string]identity.AuthRequest
}

func (f *fakeAuthorizer) GetClient(_ context.Context, id string) (identity.Client, error) {
	if id != f.client.ID {
		return identity.Client{}, apperr.Errorf(apperr.ENOTFOUND, "no client")
	}
	return f.client, nil
}
func (f *fakeAuthorizer) ConsentOf(_ context.Context, _ string, c identity.Client) (oidc.Consent, error) {
	if f.consent {
		return oidc.Consent{}, nil
	}
	return oidc.Consent{Remembered: c.Scopes}, nil
}
func (f *fakeAuthorizer) HasSecondFactor(context.Context, string) (bool, error)           { return true, nil }
func (f *fakeAuthorizer) Grantable(scopes []string, _ []string) []string                  { return scopes }
func (f *fakeAuthorizer) RememberConsent(context.Context, string, string, []string) error { return nil }
func (f *fakeAuthorizer) Resources(identity.Client) []string                              { return []string{"workitems"} }

func (f *fakeAuthorizer) IssueCode(context.Context, auth.CodeRequest) (string, error) {
	return "CODE", nil
}

func (f *fakeAuthorizer) StartAuthRequest(_ context.Context, r identity.AuthRequest) (identity.AuthRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.requests == nil {
		f.requests = map[string]identity.AuthRequest{}
	}
	r.ID = fmt.Sprintf("req-%d", len(f.requests)+1)
	if err := r.Validate(); err != nil {
		return identity.AuthRequest{}, err
	}
	f.requests[r.ID] = r
	return r, nil
}
func (f *fakeAuthorizer) AuthRequest(_ context.Context, id string) (identity.AuthRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.requests[id]
	if !ok || r.Answered {
		return identity.AuthRequest{}, auth.ErrNoAuthRequest
	}
	return r, nil
}
func (f *fakeAuthorizer) update(id string, change func(*identity.AuthRequest)) (identity.AuthRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.requests[id]
	if !ok || r.Answered {
		return identity.AuthRequest{}, auth.ErrNoAuthRequest
	}
	change(&r)
	f.requests[id] = r
	return r, nil
}
func (f *fakeAuthorizer) AskSignIn(_ context.Context, id string) (identity.AuthRequest, error) {
	return f.update(id, func(r *identity.AuthRequest) { r.SignInAfter = time.Unix(1e9, 0) })
}
func (f *fakeAuthorizer) AnswerAuthRequest(_ context.Context, id string) (identity.AuthRequest, error) {
	return f.update(id, func(r *identity.AuthRequest) { r.Answered = true })
}

// fakeAuthorize is the authorization endpoint over a fakeAuthorizer of fuzzClient, at a fixed
// time.
func fakeAuthorize(b *browser, consent bool) *authorizeEndpoint {
	return newAuthorizeEndpoint(b, &fakeAuthorizer{client: fuzzClient, consent: consent}, "https://idp.example",
		func() time.Time { return time.Unix(1e9, 0) }, b.logger, nil, nil)
}

var fuzzClient = identity.Client{ID: "app", Name: "App", RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:8000/cb?x=1"},
	GrantTypes: []string{identity.GrantAuthorizationCode}, Scopes: []string{"openid", "profile"}}

// FuzzAuthorizeEndpoint: whatever query /authorize gets, with or without a session, it answers
// a page (400, or 200 for consent) or 303 — and a 303 goes either to the login page, with the
// way back to the stored request's id alone, or to a redirect URI registered for the client,
// byte for byte the one the request named, with iss and either a code or an error. Never a
// 5xx, never anywhere else; the consent page carries none of the request's parameters. Coming
// back from the login page (signed in by then, or not) holds to the same.
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
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&acr_values=mfa+sfa&login_hint=bob",
	} {
		f.Add(q, true, false)
		f.Add(q, false, true)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, signedIn, consent bool) {
		b, _, s := newBrowser(false)
		a := fakeAuthorize(b, consent)
		serve := func(r *http.Request, h http.HandlerFunc) (*httptest.ResponseRecorder, string) {
			if signedIn {
				r.AddCookie(&http.Cookie{Name: b.cfg.CookieName, Value: s.live})
			}
			w := httptest.NewRecorder()
			h(w, r)
			return w, w.Header().Get("Location")
		}
		// toLogin checks a redirect to the login page: its way back is the stored request's id.
		toLogin := func(loc string) (string, bool) {
			if !strings.HasPrefix(loc, "/login?") {
				return "", false
			}
			login, _ := url.Parse(loc)
			rd, err := url.Parse(login.Query().Get("rd"))
			if err != nil || rd.Path != "/authorize/continue" || len(rd.Query()) != 1 || rd.Query().Get("id") == "" {
				t.Fatalf("%q: to the login page with rd %q", rawQuery, login.Query().Get("rd"))
			}
			return rd.String(), true
		}
		r := httptest.NewRequest("GET", "/authorize", nil)
		r.URL.RawQuery = rawQuery
		asked := r.URL.Query().Get("redirect_uri")
		w, loc := serve(r, a.start)
		if rd, ok := toLogin(loc); ok {
			w, loc = serve(httptest.NewRequest("GET", rd, nil), a.resume) // back from the login page
			if _, ok := toLogin(loc); ok {
				return // not signed in: the login page again
			}
		}
		switch w.Code {
		case 400, 200:
			if loc != "" {
				t.Fatalf("%d with Location %q", w.Code, loc)
			}
			for _, p := range []string{`name="client_id"`, `name="redirect_uri"`, `name="state"`, `name="scope"`} {
				if strings.Contains(w.Body.String(), p) {
					t.Fatalf("%q: the page carries %s", rawQuery, p)
				}
			}
			return
		case 303:
		default:
			t.Fatalf("%q: status %d", rawQuery, w.Code)
		}
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
