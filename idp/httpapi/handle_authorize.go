package httpapi

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
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
	ConsentOf(ctx context.Context, userID string, c identity.Client) (oidc.Consent, error)
	HasSecondFactor(ctx context.Context, userID string) (bool, error)
	// Grantable is the scopes a user in groups would be granted now (a scope limited to
	// groups they are not in is left out): what the consent page asks for and remembers.
	Grantable(scopes []string, groups []string) []string
	RememberConsent(ctx context.Context, userID, clientID string, scopes []string) error
	IssueCode(ctx context.Context, r auth.CodeRequest) (string, error)
	// Resources are the resources (RFC 8707) the client may name at /authorize.
	Resources(c identity.Client) []string
	// The request kept while the browser is on a page.
	StartAuthRequest(ctx context.Context, r identity.AuthRequest) (identity.AuthRequest, error)
	AuthRequest(ctx context.Context, id string) (identity.AuthRequest, error)
	AskSignIn(ctx context.Context, id string) (identity.AuthRequest, error)
	AnswerAuthRequest(ctx context.Context, id string) (identity.AuthRequest, error)
}

// authorizeEndpoint is the authorization endpoint (OpenID Connect Core §3.1.2, RFC 6749 §4.1,
// RFC 7636, RFC 9207): GET and POST /authorize check a request once; when the browser must see
// a page (the login, the consent) the request is stored and the page carries only its id,
// which comes back to /authorize/continue — after the sign-in (GET) or as the consent's answer
// (POST). What happens next is oidc.Next's to decide, every time.
type authorizeEndpoint struct {
	b         *browser
	svc       Authorizer
	issuer    string
	path      string // the endpoint's path under the issuer, for the pages' links
	now       func() time.Time
	logger    *slog.Logger
	limiter   *web.RateLimiter  // per client, on the requests that are stored; nil: none
	scopeText map[string]string // how the consent page names a scope; others by name
}

func newAuthorizeEndpoint(b *browser, svc Authorizer, issuer string, now func() time.Time, logger *slog.Logger,
	limiter *web.RateLimiter, firstPartyScopes map[string]string) *authorizeEndpoint {
	path := "/authorize"
	if u, err := url.Parse(issuer); err == nil {
		path = strings.TrimSuffix(u.Path, "/") + "/authorize"
	}
	text := map[string]string{}
	for _, m := range []map[string]string{firstPartyScopes, auth.ScopeText} {
		for k, v := range m {
			text[k] = v
		}
	}
	return &authorizeEndpoint{b: b, svc: svc, issuer: issuer, path: path, now: now, logger: logger, limiter: limiter, scopeText: text}
}

// start is GET /authorize, and POST /authorize with the request form-encoded (OpenID Connect
// Core §3.1.2.1): a new request, checked here once.
func (a *authorizeEndpoint) start(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		form, err := web.DecodeForm(w, r)
		if err != nil {
			a.errorPage(w, web.Status(apperr.Code(err)), &oidc.Error{Code: oidc.ErrInvalidRequest, Description: apperr.Message(err)})
			return
		}
		params = form
	}
	req, perr := oidc.ParseAuthorize(params)
	if perr != nil {
		a.fail(w, r, identity.AuthRequest{}, perr.(*oidc.Error))
		return
	}
	client, err := a.svc.GetClient(r.Context(), req.ClientID)
	if err != nil && apperr.Code(err) != apperr.ENOTFOUND {
		a.unavailable(w, r, identity.AuthRequest{}, err) // the client is not verified: no redirect
		return
	}
	now := a.now()
	scopes, oe := req.Check(client)
	if oe == nil {
		oe = oidc.CheckResource(req.Resource, a.svc.Resources(client))
	}
	if oe != nil {
		a.fail(w, r, req.Request(nil, now), oe)
		return
	}
	a.next(w, r, client, req.Request(scopes, now), false)
}

// resume is GET /authorize/continue?id=: the browser is back from signing in.
func (a *authorizeEndpoint) resume(w http.ResponseWriter, r *http.Request) {
	ids := r.URL.Query()["id"]
	if len(ids) != 1 {
		a.gone(w)
		return
	}
	if req, client, ok := a.stored(w, r, ids[0]); ok {
		a.next(w, r, client, req, false)
	}
}

// consent is POST /authorize/continue: the consent page's answer, which carries the request's
// id, the decision and a CSRF token bound to the session cookie and to that id.
func (a *authorizeEndpoint) consent(w http.ResponseWriter, r *http.Request) {
	form, err := web.DecodeForm(w, r)
	if err != nil {
		a.errorPage(w, web.Status(apperr.Code(err)), &oidc.Error{Code: oidc.ErrInvalidRequest, Description: apperr.Message(err)})
		return
	}
	id, decision, secret := form.Get("id"), form.Get("decision"), a.b.cfg.secret(r)
	if !a.b.keys.csrfOK(r, form.Get("csrf"), "consent", secret, id) {
		a.errorPage(w, http.StatusForbidden, &oidc.Error{Code: oidc.ErrInvalidRequest, Description: "the consent form expired or did not come from this site; start the sign-in again"})
		return
	}
	if decision != "allow" && decision != "deny" {
		a.errorPage(w, http.StatusBadRequest, &oidc.Error{Code: oidc.ErrInvalidRequest, Description: "decision must be allow or deny"})
		return
	}
	req, client, ok := a.stored(w, r, id)
	if !ok {
		return
	}
	s, err := a.b.sessions.Resolve(r.Context(), secret)
	switch {
	case errors.Is(err, auth.ErrNoSession):
		a.next(w, r, client, req, false) // the session ended meanwhile: sign in first
		return
	case err != nil:
		a.unavailable(w, r, req, err)
		return
	case decision == "deny":
		a.logger.InfoContext(r.Context(), "consent denied", "sub", s.UserID, "client_id", client.ID)
		if a.answered(w, r, req) {
			a.fail(w, r, req, &oidc.Error{Code: oidc.ErrAccessDenied, Description: "the user denied the request", Redirect: true})
		}
		return
	}
	if err := a.svc.RememberConsent(r.Context(), s.UserID, client.ID, a.svc.Grantable(req.Scopes, s.Groups)); err != nil {
		a.unavailable(w, r, req, err)
		return
	}
	a.next(w, r, client, req, true)
}

// stored reads the request id and its client as they are now (oidc.Recheck); false when the
// answer is written: the request gone (a 400 page), or the client changed under it.
func (a *authorizeEndpoint) stored(w http.ResponseWriter, r *http.Request, id string) (identity.AuthRequest, identity.Client, bool) {
	req, err := a.svc.AuthRequest(r.Context(), id)
	if errors.Is(err, auth.ErrNoAuthRequest) {
		a.gone(w)
		return req, identity.Client{}, false
	}
	if err != nil {
		a.unavailable(w, r, identity.AuthRequest{}, err)
		return req, identity.Client{}, false
	}
	client, err := a.svc.GetClient(r.Context(), req.ClientID)
	if err != nil && apperr.Code(err) != apperr.ENOTFOUND {
		a.unavailable(w, r, identity.AuthRequest{}, err)
		return req, client, false
	}
	if oe := oidc.Recheck(req, client); oe != nil {
		if !oe.Redirect || a.answered(w, r, req) {
			a.fail(w, r, req, oe)
		}
		return req, client, false
	}
	return req, client, true
}

// next runs oidc.Next on the request and the browser's session and does what it says: the
// login page or the consent page (the request stored for them, and only its id on them), or
// the answer to the client. given: the user allowed the request on its consent page just now.
func (a *authorizeEndpoint) next(w http.ResponseWriter, r *http.Request, client identity.Client, req identity.AuthRequest, given bool) {
	ctx := r.Context()
	secret := a.b.cfg.secret(r)
	s, err := a.b.sessions.Resolve(ctx, secret)
	if err != nil && !errors.Is(err, auth.ErrNoSession) {
		a.unavailable(w, r, req, err)
		return
	}
	sess, consent := oidc.Session{Present: err == nil, AuthTime: s.AuthTime, AMR: s.AMR}, oidc.Consent{Given: given}
	if sess.Present {
		if oidc.AsksMFA(req) && oidc.ACR(s.AMR) != oidc.ACRMFA {
			sess.HasSecondFactor, err = a.svc.HasSecondFactor(ctx, s.UserID)
		}
		if err == nil {
			consent, err = a.svc.ConsentOf(ctx, s.UserID, client)
			consent.Given = given
		}
		if err != nil {
			a.unavailable(w, r, req, err)
			return
		}
	}
	// Consent is asked for, and checked against, what this user would be granted: a scope
	// limited to a group they are not in is neither shown nor waited for.
	asked := req
	if sess.Present {
		asked.Scopes = a.svc.Grantable(req.Scopes, s.Groups)
	}
	step, oe := oidc.Next(asked, sess, consent, a.now())
	switch step {
	case oidc.StepLogin, oidc.StepSecondFactor:
		hint := req.LoginHint
		if step == oidc.StepSecondFactor {
			hint = s.Username // the same user, again, with a second factor
		}
		if req, ok := a.keep(w, r, req, true); ok {
			a.toLogin(w, r, req.ID, hint)
		}
	case oidc.StepConsent:
		if req, ok := a.keep(w, r, req, false); ok {
			req.Scopes = asked.Scopes
			a.consentPage(w, client, req, s, secret)
		}
	case oidc.StepError:
		if a.answered(w, r, req) {
			a.fail(w, r, req, oe)
		}
	case oidc.StepCode:
		if !a.answered(w, r, req) {
			return
		}
		code, err := a.svc.IssueCode(ctx, auth.CodeRequest{Client: client, Request: req, Session: s})
		if err != nil {
			a.unavailable(w, r, req, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, oidc.CodeRedirectURL(req.RedirectURI, code, req.State, a.issuer), http.StatusSeeOther)
	}
}

// keep stores a new request for a page, under the per-client rate limit (anyone may make one),
// or records on a stored one that it sends the browser to sign in (signIn); false when the
// answer is written instead.
func (a *authorizeEndpoint) keep(w http.ResponseWriter, r *http.Request, req identity.AuthRequest, signIn bool) (identity.AuthRequest, bool) {
	var err error
	switch {
	case req.ID == "":
		if err := a.limiter.Check(r); err != nil {
			web.SetRetryAfter(w, apperr.RetryAfter(err))
			a.page(w, http.StatusTooManyRequests, &oidc.Error{Code: oidc.ErrTemporarilyUnavailable, Description: "too many sign-in requests from this address"},
				"Too many requests", "Please wait a moment and try again.")
			return req, false
		}
		if signIn {
			req.SignInAfter = a.now().UTC()
		}
		var stored identity.AuthRequest
		if stored, err = a.svc.StartAuthRequest(r.Context(), req); apperr.Code(err) == apperr.EINVALID {
			a.fail(w, r, req, &oidc.Error{Code: oidc.ErrInvalidRequest, Description: apperr.Message(err), Redirect: true})
			return req, false
		}
		if err == nil {
			req = stored // on a store failure, req stays the checked request, so the error is redirected
		}
	case signIn && req.SignInAfter.IsZero():
		req, err = a.svc.AskSignIn(r.Context(), req.ID)
	}
	if errors.Is(err, auth.ErrNoAuthRequest) {
		a.gone(w)
		return req, false
	}
	if err != nil {
		a.unavailable(w, r, req, err)
		return req, false
	}
	return req, true
}

// answered marks a stored request answered before the client is answered, so that its id
// answers once; false when the answer is written instead (another answer won: a 400 page). A
// request never stored has nothing to mark.
func (a *authorizeEndpoint) answered(w http.ResponseWriter, r *http.Request, req identity.AuthRequest) bool {
	if req.ID == "" {
		return true
	}
	_, err := a.svc.AnswerAuthRequest(r.Context(), req.ID)
	switch {
	case errors.Is(err, auth.ErrNoAuthRequest):
		a.gone(w)
		return false
	case err != nil:
		a.unavailable(w, r, req, err)
		return false
	}
	return true
}

// continueURL is where the login page sends the browser back to: the request's id alone.
func (a *authorizeEndpoint) continueURL(id string) string {
	return a.path + "/continue?" + url.Values{"id": {id}}.Encode()
}

// toLogin sends the browser to the login page, which sends it back to the stored request;
// login_hint, when it is a username, fills the username in.
func (a *authorizeEndpoint) toLogin(w http.ResponseWriter, r *http.Request, id, hint string) {
	login := url.Values{"rd": {a.continueURL(id)}}
	if hint != "" && identity.ValidateUsername(hint) == nil {
		login.Set("login_hint", hint)
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
// URI are known good (e.Redirect, req's redirect URI and state), an error page otherwise (RFC
// 6749 §4.1.2.1: never redirect to an unverified URI).
func (a *authorizeEndpoint) fail(w http.ResponseWriter, r *http.Request, req identity.AuthRequest, e *oidc.Error) {
	if to := e.RedirectURL(req.RedirectURI, req.State, a.issuer); to != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	a.errorPage(w, http.StatusBadRequest, e)
}

// unavailable answers a store failure: temporarily_unavailable to the client when req is a
// checked request (its redirect URI verified), a 503 page when req is the zero request.
func (a *authorizeEndpoint) unavailable(w http.ResponseWriter, r *http.Request, req identity.AuthRequest, err error) {
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

// gone answers an id that cannot continue (unknown, expired, answered): never a redirect, for
// nothing says where to; the person starts again where they came from.
func (a *authorizeEndpoint) gone(w http.ResponseWriter) {
	a.page(w, http.StatusBadRequest, &oidc.Error{Code: oidc.ErrInvalidRequest, Description: "this sign-in request is unknown, has expired or was already answered"},
		"Sign-in request expired", "Go back to the application you came from and sign in from there again.")
}

type errorView struct {
	Style                            template.CSS
	Title, Code, Description, Advice string
}

func (a *authorizeEndpoint) errorPage(w http.ResponseWriter, status int, e *oidc.Error) {
	if status >= 500 {
		a.page(w, status, e, "Sign-in unavailable", "Please try again in a moment.")
		return
	}
	a.page(w, status, e, "Sign-in request refused",
		"The application that sent you here made a request this sign-in service cannot accept. Go back to it and try again, or tell its administrator.")
}

func (a *authorizeEndpoint) page(w http.ResponseWriter, status int, e *oidc.Error, title, advice string) {
	pageHeaders(w, status)
	errorPage.Execute(w, errorView{Style: template.CSS(loginStyle), Title: title, Code: e.Code, Description: e.Description, Advice: advice})
}

type consentView struct {
	Style      template.CSS
	Action     string
	CSRF       string
	ID         string
	ClientName string
	Username   string
	Scopes     []string
}

// consentPage asks the signed-in user whether the client may have the request's scopes. The
// form carries the request's id alone, and a CSRF token bound to the session and to that id.
func (a *authorizeEndpoint) consentPage(w http.ResponseWriter, c identity.Client, req identity.AuthRequest, s auth.Resolved, secret string) {
	v := consentView{Style: template.CSS(loginStyle), Action: a.path + "/continue", CSRF: a.b.keys.csrfToken("consent", secret, req.ID),
		ID: req.ID, ClientName: c.Name, Username: s.Username}
	if v.ClientName == "" {
		v.ClientName = c.ID
	}
	for _, sc := range req.Scopes {
		if t, ok := a.scopeText[sc]; ok {
			v.Scopes = append(v.Scopes, t)
		} else {
			v.Scopes = append(v.Scopes, sc)
		}
	}
	pageHeaders(w, http.StatusOK)
	consentPage.Execute(w, v)
}
