package httpapi

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

var (
	consentPage = template.Must(template.ParseFS(templates, "templates/consent.html"))
	errorPage   = template.Must(template.ParseFS(templates, "templates/error.html"))
)

// Authorizer is what the authorization endpoint needs of the use cases.
type Authorizer interface {
	GetClient(ctx context.Context, id string) (identity.Client, error)
	NeedsConsent(ctx context.Context, userID string, c identity.Client, scopes []string) (bool, error)
	RememberConsent(ctx context.Context, userID, clientID string, scopes []string) error
	IssueCode(ctx context.Context, r auth.CodeRequest) (string, error)
}

// authorizeEndpoint is GET /authorize and the consent form's POST /authorize (OpenID Connect
// Core §3.1.2, RFC 6749 §4.1, RFC 7636, RFC 9207).
type authorizeEndpoint struct {
	b      *browser
	svc    Authorizer
	issuer string
	path   string // the endpoint's path under the issuer, for the login page's rd
	now    func() time.Time
	logger *slog.Logger
}

// authAfter is the parameter the endpoint adds to its own URL when it sends the browser to sign
// in because of prompt=login or max_age: on the way back, a session authenticated before it
// is not enough. A client sending it can only ask for a fresher sign-in.
const authAfter = "auth_after"

func newAuthorizeEndpoint(b *browser, svc Authorizer, issuer string, now func() time.Time, logger *slog.Logger) *authorizeEndpoint {
	path := "/authorize"
	if u, err := url.Parse(issuer); err == nil {
		path = strings.TrimSuffix(u.Path, "/") + "/authorize"
	}
	return &authorizeEndpoint{b: b, svc: svc, issuer: issuer, path: path, now: now, logger: logger}
}

func (a *authorizeEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	consent := ""
	var csrf string
	if r.Method == http.MethodPost {
		form, err := web.DecodeForm(w, r)
		if err != nil {
			a.errorPage(w, web.Status(apperr.Code(err)), &oidc.Error{Code: oidc.ErrInvalidRequest, Description: apperr.Message(err)})
			return
		}
		consent, csrf = form.Get("decision"), form.Get("csrf")
		form.Del("decision")
		form.Del("csrf")
		params = form
	}
	req, perr := oidc.ParseAuthorize(params)
	if perr != nil {
		a.fail(w, r, req, perr.(*oidc.Error))
		return
	}
	client, err := a.svc.GetClient(r.Context(), req.ClientID)
	if err != nil && apperr.Code(err) != apperr.ENOTFOUND {
		a.unavailable(w, r, oidc.AuthorizeRequest{}, err) // the client is not verified: no redirect
		return
	}
	scopes, oe := req.Check(client)
	if oe != nil {
		a.fail(w, r, req, oe)
		return
	}
	secret := a.b.cfg.secret(r)
	s, err := a.b.sessions.Resolve(r.Context(), secret)
	if err != nil && !errors.Is(err, auth.ErrNoSession) {
		a.unavailable(w, r, req, err)
		return
	}
	if reason := a.loginNeeded(err == nil, s, req, params); reason != "" {
		if req.HasPrompt(oidc.PromptNone) {
			a.fail(w, r, req, &oidc.Error{Code: oidc.ErrLoginRequired, Description: reason, Redirect: true})
			return
		}
		a.toLogin(w, r, req, params)
		return
	}
	if r.Method == http.MethodPost {
		if !a.b.keys.csrfOK(r, csrf, "consent", secret, client.ID, strings.Join(scopes, " ")) {
			a.errorPage(w, http.StatusForbidden, &oidc.Error{Code: oidc.ErrInvalidRequest, Description: "the consent form expired or did not come from this site; start the sign-in again"})
			return
		}
		switch consent {
		case "allow":
			if err := a.svc.RememberConsent(r.Context(), s.UserID, client.ID, scopes); err != nil {
				a.unavailable(w, r, req, err)
				return
			}
		case "deny":
			a.logger.InfoContext(r.Context(), "consent denied", "sub", s.UserID, "client_id", client.ID)
			a.fail(w, r, req, &oidc.Error{Code: oidc.ErrAccessDenied, Description: "the user denied the request", Redirect: true})
			return
		default:
			a.errorPage(w, http.StatusBadRequest, &oidc.Error{Code: oidc.ErrInvalidRequest, Description: "decision must be allow or deny"})
			return
		}
	} else {
		need, err := a.svc.NeedsConsent(r.Context(), s.UserID, client, scopes)
		if err != nil {
			a.unavailable(w, r, req, err)
			return
		}
		need = need || (req.HasPrompt(oidc.PromptConsent) && !client.FirstParty)
		if need && req.HasPrompt(oidc.PromptNone) {
			a.fail(w, r, req, &oidc.Error{Code: oidc.ErrConsentRequired, Description: "the user has not allowed this client these scopes", Redirect: true})
			return
		}
		if need {
			a.consentPage(w, params, client, scopes, s, secret)
			return
		}
	}
	code, err := a.svc.IssueCode(r.Context(), auth.CodeRequest{
		Client: client, RedirectURI: req.RedirectURI, CodeChallenge: req.CodeChallenge, Nonce: req.Nonce,
		Scopes: scopes, Session: s,
	})
	if err != nil {
		a.unavailable(w, r, req, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, oidc.CodeRedirectURL(req.RedirectURI, code, req.State, a.issuer), http.StatusSeeOther)
}

// loginNeeded says why the browser must sign in (again) first, or "": no session; prompt=login;
// a sign-in older than max_age; or older than the auth_after this endpoint set itself.
func (a *authorizeEndpoint) loginNeeded(has bool, s auth.Resolved, req oidc.AuthorizeRequest, params url.Values) string {
	now := a.now()
	switch {
	case !has:
		return "the user is not signed in"
	case req.HasPrompt(oidc.PromptLogin), req.HasPrompt(oidc.PromptSelectAccount):
		// select_account: the login page is where a user picks the account to continue as.
		return "the client asked for a new sign-in"
	case req.MaxAge != nil && now.Sub(s.AuthTime) > time.Duration(*req.MaxAge)*time.Second:
		return "the sign-in is older than max_age"
	}
	if after, err := strconv.ParseInt(params.Get(authAfter), 10, 64); err == nil && s.AuthTime.Unix() < after {
		return "the user has not signed in again"
	}
	return ""
}

// toLogin sends the browser to the login page, which sends it back here. prompt=login and
// max_age are replaced by auth_after, so the fresh session satisfies them instead of asking
// again; login_hint fills in the username.
func (a *authorizeEndpoint) toLogin(w http.ResponseWriter, r *http.Request, req oidc.AuthorizeRequest, params url.Values) {
	back := url.Values{}
	for k, v := range params {
		back[k] = v
	}
	if req.HasPrompt(oidc.PromptLogin) || req.HasPrompt(oidc.PromptSelectAccount) || req.MaxAge != nil {
		var rest []string
		for _, p := range strings.Fields(req.Prompt) {
			if p != oidc.PromptLogin && p != oidc.PromptSelectAccount {
				rest = append(rest, p)
			}
		}
		back.Del("prompt")
		if len(rest) > 0 {
			back.Set("prompt", strings.Join(rest, " "))
		}
		back.Del("max_age")
		back.Set(authAfter, strconv.FormatInt(a.now().Unix(), 10))
	}
	login := url.Values{"rd": {a.path + "?" + back.Encode()}}
	if req.LoginHint != "" && identity.ValidateUsername(req.LoginHint) == nil {
		login.Set("login_hint", req.LoginHint)
	}
	to := a.b.loginURL
	if strings.Contains(to, "?") {
		to += "&" + login.Encode()
	} else {
		to += "?" + login.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// fail answers an authorization error: redirected to the client when the client and redirect
// URI are known good, an error page otherwise (RFC 6749 §4.1.2.1: never redirect to an
// unverified URI).
func (a *authorizeEndpoint) fail(w http.ResponseWriter, r *http.Request, req oidc.AuthorizeRequest, e *oidc.Error) {
	if to := e.RedirectURL(req.RedirectURI, req.State, a.issuer); to != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	a.errorPage(w, http.StatusBadRequest, e)
}

// unavailable answers a store failure: temporarily_unavailable to the client when req is a
// checked request (its redirect URI verified), a 503 page when req is the zero request.
func (a *authorizeEndpoint) unavailable(w http.ResponseWriter, r *http.Request, req oidc.AuthorizeRequest, err error) {
	code := oidc.ErrTemporarilyUnavailable
	if apperr.Code(err) != apperr.EUNAVAILABLE {
		a.logger.ErrorContext(r.Context(), "authorize", "err", err)
		code = oidc.ErrServerError
	}
	e := &oidc.Error{Code: code, Description: "the sign-in service is busy; try again", Redirect: req.RedirectURI != ""}
	if e.Redirect {
		a.fail(w, r, req, e)
		return
	}
	web.SetRetryAfter(w, apperr.RetryAfter(err))
	a.errorPage(w, http.StatusServiceUnavailable, e)
}

type errorView struct {
	Style                            template.CSS
	Title, Code, Description, Advice string
}

func (a *authorizeEndpoint) errorPage(w http.ResponseWriter, status int, e *oidc.Error) {
	v := errorView{Style: template.CSS(loginStyle), Title: "Sign-in request refused", Code: e.Code, Description: e.Description,
		Advice: "The application that sent you here made a request this sign-in service cannot accept. Go back to it and try again, or tell its administrator."}
	if status >= 500 {
		v.Title, v.Advice = "Sign-in unavailable", "Please try again in a moment."
	}
	pageHeaders(w, status)
	errorPage.Execute(w, v)
}

type consentParam struct{ Name, Value string }

type consentView struct {
	Style      template.CSS
	Action     string
	CSRF       string
	ClientName string
	Username   string
	Scopes     []string
	Params     []consentParam
}

// scopeText is how the consent page names a scope.
var scopeText = map[string]string{
	oidc.ScopeOpenID:        "Sign you in with your account",
	auth.ScopeProfile:       "See your username",
	auth.ScopeEmail:         "See your email address",
	auth.ScopeOfflineAccess: "Stay signed in when you are away (refresh tokens)",
	"workitems:read":        "Read your work items",
	"workitems:write":       "Create, change and delete your work items",
}

func (a *authorizeEndpoint) consentPage(w http.ResponseWriter, params url.Values, c identity.Client, scopes []string, s auth.Resolved, secret string) {
	v := consentView{Style: template.CSS(loginStyle), Action: "authorize", CSRF: a.b.keys.csrfToken("consent", secret, c.ID, strings.Join(scopes, " ")),
		ClientName: c.Name, Username: s.Username}
	if v.ClientName == "" {
		v.ClientName = c.ID
	}
	for _, sc := range scopes {
		if t, ok := scopeText[sc]; ok {
			v.Scopes = append(v.Scopes, t)
		} else {
			v.Scopes = append(v.Scopes, sc)
		}
	}
	// The form carries the request on: only what the endpoint reads (others are ignored, so they
	// need not survive), each once, and prompt without the consent it asked for.
	for _, k := range append(slices.Clone(oidc.AuthorizeParams), authAfter) {
		val := params.Get(k)
		if k == "prompt" {
			var rest []string
			for _, x := range strings.Fields(val) {
				if x != oidc.PromptConsent && x != oidc.PromptLogin && !slices.Contains(rest, x) {
					rest = append(rest, x)
				}
			}
			val = strings.Join(rest, " ")
		}
		if val != "" {
			v.Params = append(v.Params, consentParam{Name: k, Value: val})
		}
	}
	pageHeaders(w, http.StatusOK)
	consentPage.Execute(w, v)
}
