package oidc

import (
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"jwtidp/idp/identity"
)

var (
	confidential = identity.Client{
		ID:           "app",
		SecretHash:   "x",
		RedirectURIs: []string{"https://app.example.com/cb", "https://app.example.com/cb2?tenant=a%2Fb&x", "http://127.0.0.1:8080/cb"},
		GrantTypes:   []string{identity.GrantAuthorizationCode, identity.GrantRefreshToken},
		Scopes:       []string{"openid", "profile", "email", "offline_access", "workitems:read"},
	}
	public = identity.Client{
		ID:           "spa",
		Public:       true,
		RedirectURIs: []string{"https://spa.example.com/cb"},
		GrantTypes:   []string{identity.GrantAuthorizationCode},
		Scopes:       []string{"openid", "profile"},
	}
	service = identity.Client{
		ID:           "svc",
		SecretHash:   "x",
		RedirectURIs: []string{"https://svc.example.com/cb"},
		GrantTypes:   []string{identity.GrantClientCredentials},
		Scopes:       []string{"openid", "workitems:read"},
	}
)

// query builds an authorization request for client c to its first redirect URI with PKCE, then
// applies edits: "k=v" sets k, "-k" removes it, "+k=v" adds a second value.
func query(c identity.Client, edits ...string) url.Values {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ID},
		"redirect_uri":          {c.RedirectURIs[0]},
		"scope":                 {"openid profile"},
		"state":                 {"st"},
		"nonce":                 {"n"},
		"code_challenge":        {rfcChallenge},
		"code_challenge_method": {"S256"},
	}
	for _, e := range edits {
		switch {
		case strings.HasPrefix(e, "-"):
			q.Del(e[1:])
		case strings.HasPrefix(e, "+"):
			k, v, _ := strings.Cut(e[1:], "=")
			q.Add(k, v)
		default:
			k, v, _ := strings.Cut(e, "=")
			q.Set(k, v)
		}
	}
	return q
}

func authorize(q url.Values, c identity.Client) ([]string, *Error) {
	r, err := ParseAuthorize(q)
	if err != nil {
		return nil, err.(*Error)
	}
	return r.Check(c)
}

func TestAuthorizeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		q        url.Values
		c        identity.Client
		code     string
		redirect bool
	}{
		// Never redirected (RFC 6749 §4.1.2.1).
		{"unknown client", query(confidential, "client_id=nobody"), identity.Client{}, ErrInvalidClient, false},
		{"client the store did not return", query(confidential), public, ErrInvalidClient, false},
		{"the IdP's own client id", query(confidential, "client_id=idp"), identity.Client{ID: "idp", RedirectURIs: confidential.RedirectURIs, GrantTypes: confidential.GrantTypes, Scopes: confidential.Scopes}, ErrInvalidClient, false},
		{"no client_id", query(confidential, "-client_id"), confidential, ErrInvalidRequest, false},
		{"client_id twice", query(confidential, "+client_id=app"), confidential, ErrInvalidRequest, false},
		{"no redirect_uri", query(confidential, "-redirect_uri"), confidential, ErrInvalidRequest, false},
		{"redirect_uri twice", query(confidential, "+redirect_uri=https://app.example.com/cb"), confidential, ErrInvalidRequest, false},
		{"unregistered redirect_uri", query(confidential, "redirect_uri=https://evil.example.com/cb"), confidential, ErrInvalidRequest, false},
		{"extended path", query(confidential, "redirect_uri=https://app.example.com/cb/x"), confidential, ErrInvalidRequest, false},
		{"extended query", query(confidential, "redirect_uri=https://app.example.com/cb?x=1"), confidential, ErrInvalidRequest, false},
		{"registered query changed", query(confidential, "redirect_uri=https://app.example.com/cb2?tenant=a/b&x"), confidential, ErrInvalidRequest, false},
		{"trailing slash", query(confidential, "redirect_uri=https://app.example.com/cb/"), confidential, ErrInvalidRequest, false},
		{"fragment added", query(confidential, "redirect_uri=https://app.example.com/cb#f"), confidential, ErrInvalidRequest, false},
		{"differently-cased host", query(confidential, "redirect_uri=https://APP.example.com/cb"), confidential, ErrInvalidRequest, false},
		{"differently-cased scheme", query(confidential, "redirect_uri=HTTPS://app.example.com/cb"), confidential, ErrInvalidRequest, false},
		{"differently-cased path", query(confidential, "redirect_uri=https://app.example.com/CB"), confidential, ErrInvalidRequest, false},
		{"default port added", query(confidential, "redirect_uri=https://app.example.com:443/cb"), confidential, ErrInvalidRequest, false},
		{"loopback port changed", query(confidential, "redirect_uri=http://127.0.0.1:9090/cb"), confidential, ErrInvalidRequest, false},
		{"another client's redirect_uri", query(confidential, "redirect_uri=https://spa.example.com/cb"), confidential, ErrInvalidRequest, false},
		{"unknown client with bad response_type", query(confidential, "client_id=nobody", "response_type=token"), identity.Client{}, ErrInvalidClient, false},

		// Redirected with error.
		{"response_type token", query(confidential, "response_type=token"), confidential, ErrUnsupportedResponseType, true},
		{"response_type code id_token", query(confidential, "response_type=code id_token"), confidential, ErrUnsupportedResponseType, true},
		{"response_type Code", query(confidential, "response_type=Code"), confidential, ErrUnsupportedResponseType, true},
		{"no response_type", query(confidential, "-response_type"), confidential, ErrInvalidRequest, true},
		{"response_type twice", query(confidential, "+response_type=code"), confidential, ErrInvalidRequest, true},
		{"scope twice", query(confidential, "+scope=openid"), confidential, ErrInvalidRequest, true},
		{"state twice", query(confidential, "+state=x"), confidential, ErrInvalidRequest, true},
		{"code_challenge twice", query(confidential, "+code_challenge="+rfcChallenge), confidential, ErrInvalidRequest, true},
		{"max_age twice", query(confidential, "max_age=1", "+max_age=1"), confidential, ErrInvalidRequest, true},
		{"not registered for authorization_code", query(service), service, ErrUnauthorizedClient, true},
		{"public client without PKCE", query(public, "-code_challenge", "-code_challenge_method"), public, ErrInvalidRequest, true},
		{"public client, method only", query(public, "-code_challenge"), public, ErrInvalidRequest, true},
		{"confidential client, method only", query(confidential, "-code_challenge"), confidential, ErrInvalidRequest, true},
		{"plain", query(public, "code_challenge_method=plain", "code_challenge="+rfcVerifier), public, ErrInvalidRequest, true},
		{"plain from a confidential client", query(confidential, "code_challenge_method=plain", "code_challenge="+rfcVerifier), confidential, ErrInvalidRequest, true},
		{"no method (plain by default)", query(public, "-code_challenge_method"), public, ErrInvalidRequest, true},
		{"method s256", query(public, "code_challenge_method=s256"), public, ErrInvalidRequest, true},
		{"method S512", query(public, "code_challenge_method=S512"), public, ErrInvalidRequest, true},
		{"short challenge", query(public, "code_challenge="+rfcChallenge[:42]), public, ErrInvalidRequest, true},
		{"long challenge", query(public, "code_challenge="+rfcChallenge+"A"), public, ErrInvalidRequest, true},
		{"challenge not base64url", query(public, "code_challenge="+rfcChallenge[:42]+"+"), public, ErrInvalidRequest, true},
		{"scope the client may not have", query(public, "scope=openid email"), public, ErrInvalidScope, true},
		{"differently-cased scope", query(confidential, "scope=OpenID"), confidential, ErrInvalidScope, true},
		{"no scope", query(confidential, "-scope"), confidential, ErrInvalidScope, true},
		{"only spaces as scope", query(confidential, "scope=  "), confidential, ErrInvalidScope, true},
		{"prompt none and login", query(confidential, "prompt=none login"), confidential, ErrInvalidRequest, true},
		{"prompt consent and none", query(confidential, "prompt=consent none"), confidential, ErrInvalidRequest, true},
		{"prompt unknown", query(confidential, "prompt=always"), confidential, ErrInvalidRequest, true},
		{"max_age negative", query(confidential, "max_age=-1"), confidential, ErrInvalidRequest, true},
		{"max_age signed", query(confidential, "max_age=+5"), confidential, ErrInvalidRequest, true},
		{"max_age fraction", query(confidential, "max_age=1.5"), confidential, ErrInvalidRequest, true},
		{"max_age word", query(confidential, "max_age=ten"), confidential, ErrInvalidRequest, true},
		{"max_age with space", query(confidential, "max_age= 5"), confidential, ErrInvalidRequest, true},
		{"max_age overflows", query(confidential, "max_age=99999999999999999999"), confidential, ErrInvalidRequest, true},
		{"request object", query(confidential, "request=eyJ"), confidential, ErrRequestNotSupported, true},
		{"request_uri", query(confidential, "request_uri=https://x"), confidential, ErrRequestURINotSupported, true},
		{"response_mode fragment", query(confidential, "response_mode=fragment"), confidential, ErrInvalidRequest, true},
		{"response_mode form_post", query(confidential, "response_mode=form_post"), confidential, ErrInvalidRequest, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scopes, err := authorize(tc.q, tc.c)
			if err == nil {
				t.Fatalf("accepted, scopes %q", scopes)
			}
			if err.Code != tc.code || err.Redirect != tc.redirect {
				t.Fatalf("got %s (redirect %v), want %s (redirect %v)", err, err.Redirect, tc.code, tc.redirect)
			}
			if scopes != nil {
				t.Errorf("scopes %q with an error", scopes)
			}
			u := err.RedirectURL(tc.q.Get("redirect_uri"), "st", "https://idp.example.com")
			if tc.redirect != (u != "") {
				t.Errorf("RedirectURL = %q, redirect %v", u, tc.redirect)
			}
		})
	}
}

func TestAuthorizeAccepts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		q      url.Values
		c      identity.Client
		scopes []string
	}{
		{"confidential with PKCE", query(confidential), confidential, []string{"openid", "profile"}},
		{"confidential without PKCE", query(confidential, "-code_challenge", "-code_challenge_method"), confidential, []string{"openid", "profile"}},
		{"public with PKCE", query(public), public, []string{"openid", "profile"}},
		{"registered URI with a query", query(confidential, "redirect_uri="+confidential.RedirectURIs[1]), confidential, []string{"openid", "profile"}},
		{"loopback URI", query(confidential, "redirect_uri="+confidential.RedirectURIs[2]), confidential, []string{"openid", "profile"}},
		{"order kept, duplicates dropped", query(confidential, "scope=workitems:read openid  workitems:read email openid"), confidential, []string{"workitems:read", "openid", "email"}},
		{"plain OAuth (no openid)", query(confidential, "scope=workitems:read"), confidential, []string{"workitems:read"}},
		{"prompt none", query(confidential, "prompt=none"), confidential, []string{"openid", "profile"}},
		{"prompt login consent", query(confidential, "prompt=login consent"), confidential, []string{"openid", "profile"}},
		{"prompt select_account", query(confidential, "prompt=select_account"), confidential, []string{"openid", "profile"}},
		{"max_age 0", query(confidential, "max_age=0"), confidential, []string{"openid", "profile"}},
		{"empty values count as omitted", query(public, "max_age=", "prompt=", "nonce=", "state=", "response_mode="), public, []string{"openid", "profile"}},
		{"response_mode query", query(confidential, "response_mode=query"), confidential, []string{"openid", "profile"}},
		{"unknown parameters ignored, even twice", query(confidential, "+display=page", "+display=popup"), confidential, []string{"openid", "profile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, perr := ParseAuthorize(tc.q)
			if perr != nil {
				t.Fatal(perr)
			}
			scopes, err := r.Check(tc.c)
			if err != nil {
				t.Fatalf("refused: %s", err)
			}
			if !slices.Equal(scopes, tc.scopes) {
				t.Errorf("scopes %q, want %q", scopes, tc.scopes)
			}
			if !slices.Contains(tc.c.RedirectURIs, r.RedirectURI) {
				t.Errorf("redirect URI %q not registered", r.RedirectURI)
			}
		})
	}
}

func TestParseAuthorizeFields(t *testing.T) {
	r, err := ParseAuthorize(query(confidential, "prompt=login consent", "max_age=300", "login_hint=ann", "acr_values=mfa  urn:x:loa sfa"))
	if err != nil {
		t.Fatal(err)
	}
	want := AuthorizeRequest{ResponseType: "code", ClientID: "app", RedirectURI: "https://app.example.com/cb",
		Scope: "openid profile", State: "st", Nonce: "n", CodeChallenge: rfcChallenge, CodeChallengeMethod: "S256",
		Prompt: "login consent", LoginHint: "ann", ACRValues: []string{"mfa", "urn:x:loa", "sfa"}}
	if r.MaxAge == nil || *r.MaxAge != 300 {
		t.Fatalf("MaxAge = %v", r.MaxAge)
	}
	r.MaxAge = nil
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if !r.HasPrompt(PromptLogin) || !r.HasPrompt(PromptConsent) || r.HasPrompt(PromptNone) {
		t.Error("HasPrompt")
	}
	r, _ = ParseAuthorize(query(confidential))
	if r.MaxAge != nil {
		t.Error("MaxAge set without max_age")
	}
}

func TestRedirectURL(t *testing.T) {
	e := &Error{Code: ErrInvalidScope, Description: `scope "x" & more`, Redirect: true}
	for _, tc := range []struct{ uri, state, want string }{
		{"https://app.example.com/cb", "a b&c=d", "https://app.example.com/cb?error=invalid_scope&error_description=scope+%3Fx%3F+%26+more&iss=https%3A%2F%2Fidp.example.com%2F&state=a+b%26c%3Dd"},
		// The registered query is kept byte for byte, not re-encoded.
		{"https://app.example.com/cb2?tenant=a%2Fb&x", "s", "https://app.example.com/cb2?tenant=a%2Fb&x&error=invalid_scope&error_description=scope+%3Fx%3F+%26+more&iss=https%3A%2F%2Fidp.example.com%2F&state=s"},
		{"https://app.example.com/cb?", "", "https://app.example.com/cb?error=invalid_scope&error_description=scope+%3Fx%3F+%26+more&iss=https%3A%2F%2Fidp.example.com%2F"},
		// A fragment is never added, nor kept.
		{"https://app.example.com/cb#frag", "s", "https://app.example.com/cb?error=invalid_scope&error_description=scope+%3Fx%3F+%26+more&iss=https%3A%2F%2Fidp.example.com%2F&state=s"},
		{"https://app.example.com/cb?a=1#frag", "#s", "https://app.example.com/cb?a=1&error=invalid_scope&error_description=scope+%3Fx%3F+%26+more&iss=https%3A%2F%2Fidp.example.com%2F&state=%23s"},
	} {
		got := e.RedirectURL(tc.uri, tc.state, "https://idp.example.com/")
		if got != tc.want {
			t.Errorf("RedirectURL(%q, %q)\n got %s\nwant %s", tc.uri, tc.state, got, tc.want)
		}
		u, err := url.Parse(got)
		if err != nil || u.Fragment != "" || strings.Contains(got, "#") {
			t.Errorf("%q: unparsable or has a fragment", got)
			continue
		}
		q := u.Query()
		if q.Get("error") != ErrInvalidScope || q.Get("state") != tc.state || q.Get("iss") != "https://idp.example.com/" {
			t.Errorf("%q reads back as %v", got, q)
		}
	}
	if got := (&Error{Code: ErrInvalidClient}).RedirectURL("https://app.example.com/cb", "s", "i"); got != "" {
		t.Errorf("a non-redirecting error gave %q", got)
	}
	if got := (*Error)(nil).RedirectURL("https://app.example.com/cb", "s", "i"); got != "" {
		t.Errorf("nil error gave %q", got)
	}
	if got := CodeRedirectURL("https://app.example.com/cb2?tenant=a%2Fb&x#f", "c/d+e", "s", "https://idp.example.com"); got != "https://app.example.com/cb2?tenant=a%2Fb&x&code=c%2Fd%2Be&iss=https%3A%2F%2Fidp.example.com&state=s" {
		t.Errorf("CodeRedirectURL = %s", got)
	}
}

func FuzzAuthorize(f *testing.F) {
	for _, q := range []url.Values{
		query(confidential), query(confidential, "-code_challenge", "-code_challenge_method"),
		query(confidential, "redirect_uri="+confidential.RedirectURIs[1], "prompt=none login", "max_age=5"),
		query(confidential, "+scope=x", "response_type=token"), query(confidential, "request=x", "redirect_uri=https://APP.example.com/cb"),
	} {
		f.Add(q.Encode())
	}
	f.Add("client_id=app&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&response_type=code&scope=openid%20openid")
	f.Add("%zz&client_id=app;x")
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		r, perr := ParseAuthorize(q)
		if perr != nil {
			e := perr.(*Error)
			if e.Redirect || e.RedirectURL(q.Get("redirect_uri"), "s", "i") != "" {
				t.Fatalf("ParseAuthorize's error %v redirects", e)
			}
			return
		}
		scopes, err := r.Check(confidential)
		if err != nil {
			u := err.RedirectURL(r.RedirectURI, r.State, "https://idp.example.com")
			if !err.Redirect && u != "" {
				t.Fatalf("non-redirecting %v yields %q", err, u)
			}
			if err.Redirect {
				if !slices.Contains(confidential.RedirectURIs, r.RedirectURI) {
					t.Fatalf("%v redirects to unregistered %q", err, r.RedirectURI)
				}
				if !strings.HasPrefix(u, strings.SplitN(r.RedirectURI, "#", 2)[0]) || strings.Contains(u, "#") {
					t.Fatalf("redirect URL %q does not extend %q", u, r.RedirectURI)
				}
				pu, perr := url.Parse(u)
				if perr != nil || pu.Query().Get("error") != err.Code || pu.Query().Get("state") != r.State {
					t.Fatalf("redirect URL %q does not read back (%v)", u, perr)
				}
			}
			return
		}
		if !slices.Contains(confidential.RedirectURIs, r.RedirectURI) {
			t.Fatalf("accepted unregistered redirect URI %q", r.RedirectURI)
		}
		if len(scopes) == 0 || r.ResponseType != "code" {
			t.Fatalf("accepted %+v with scopes %q", r, scopes)
		}
		for i, s := range scopes {
			if !slices.Contains(confidential.Scopes, s) || slices.Contains(scopes[:i], s) {
				t.Fatalf("scopes %q", scopes)
			}
		}
		if r.CodeChallenge != "" && ValidChallenge(r.CodeChallenge, r.CodeChallengeMethod) != nil {
			t.Fatalf("accepted challenge %q/%q", r.CodeChallenge, r.CodeChallengeMethod)
		}
		if r.HasPrompt(PromptNone) && len(strings.Fields(r.Prompt)) != 1 {
			t.Fatalf("accepted prompt %q", r.Prompt)
		}
	})
}
