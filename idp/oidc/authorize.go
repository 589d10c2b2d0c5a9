package oidc

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"jwtidp/idp/identity"
)

// AuthorizeRequest is an authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1,
// RFC 7636 §4.3), as read by ParseAuthorize. A parameter sent without a value is treated as
// omitted (RFC 6749 §3.1): its field is "", and MaxAge nil.
type AuthorizeRequest struct {
	ResponseType        string
	ClientID            string
	RedirectURI         string
	Scope               string
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              string
	LoginHint           string
	MaxAge              *int
	ACRValues           []string // space-delimited in the query, in order of preference
	Resource            string   // RFC 8707's resource indicator; CheckResource checks it

	// problem is what ParseAuthorize found wrong beyond client_id and redirect_uri; Check
	// reports it, once it knows the error may be redirected.
	problem *Error
}

// Prompt values (OpenID Connect Core §3.1.2.1).
const (
	PromptNone          = "none"
	PromptLogin         = "login"
	PromptConsent       = "consent"
	PromptSelectAccount = "select_account"
)

// ScopeOpenID is the scope that makes the request an OpenID Connect one (an ID token is issued).
const ScopeOpenID = "openid"

// AuthorizeParams are the parameters the IdP reads; each may be sent at most once (RFC 6749
// §3.1). Others are ignored, as RFC 6749 §3.1 requires.
var AuthorizeParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
	"code_challenge_method", "prompt", "login_hint", "max_age", "acr_values", "response_mode",
	"request", "request_uri", "resource",
}

// ParseAuthorize reads an authorization request's query. Its error, an *Error that never
// redirects, is for a client_id or redirect_uri given more than once: the IdP cannot tell where
// it may send the user, so it shows an error page. Every other problem (another parameter
// given twice, a max_age that is not a number, a request object…) is kept in the request and
// reported by Check, after Check has verified the client and the redirect URI, so that it can
// be redirected.
func ParseAuthorize(q url.Values) (AuthorizeRequest, error) {
	for _, p := range []string{"client_id", "redirect_uri"} {
		if len(q[p]) > 1 {
			return AuthorizeRequest{}, page(ErrInvalidRequest, p+" is given more than once")
		}
	}
	r := AuthorizeRequest{
		ResponseType:        q.Get("response_type"),
		ClientID:            q.Get("client_id"),
		RedirectURI:         q.Get("redirect_uri"),
		Scope:               q.Get("scope"),
		State:               q.Get("state"),
		Nonce:               q.Get("nonce"),
		CodeChallenge:       q.Get("code_challenge"),
		CodeChallengeMethod: q.Get("code_challenge_method"),
		Prompt:              q.Get("prompt"),
		LoginHint:           q.Get("login_hint"),
		ACRValues:           strings.Fields(q.Get("acr_values")),
		Resource:            q.Get("resource"),
	}
	for _, p := range AuthorizeParams {
		if len(q[p]) > 1 {
			r.problem = redirecting(ErrInvalidRequest, p+" is given more than once")
			return r, nil
		}
	}
	if s := q.Get("max_age"); s != "" {
		n, ok := parseMaxAge(s)
		if !ok {
			r.problem = redirecting(ErrInvalidRequest, "max_age must be a non-negative integer number of seconds")
			return r, nil
		}
		r.MaxAge = &n
	}
	switch {
	case q.Get("request") != "":
		r.problem = redirecting(ErrRequestNotSupported, "request objects are not supported")
	case q.Get("request_uri") != "":
		r.problem = redirecting(ErrRequestURINotSupported, "request_uri is not supported")
	case q.Get("response_mode") != "" && q.Get("response_mode") != "query":
		r.problem = redirecting(ErrInvalidRequest, "response_mode must be query")
	}
	return r, nil
}

// parseMaxAge: a decimal number of seconds, digits only (no sign), that fits an int.
func parseMaxAge(s string) (int, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Check applies the authorization endpoint's rules to r for client c, the client the store
// returned for r.ClientID (the zero Client when there is none). On success it returns the
// requested scopes, in the order asked, without duplicates, all of them ones c may have, and
// r.RedirectURI is byte for byte one of c's registered redirect URIs.
//
// Errors, in the order checked:
//   - no redirect (Redirect false, an error page): client_id missing (invalid_request) or not a
//     registered client (invalid_client); redirect_uri missing or not exactly one registered for
//     c (invalid_request);
//   - redirected to r.RedirectURI: what ParseAuthorize kept (a parameter given twice, a bad
//     max_age: invalid_request; request or request_uri: request_not_supported,
//     request_uri_not_supported; a response_mode other than query: invalid_request);
//     response_type missing (invalid_request) or not "code" (unsupported_response_type); c not
//     registered for authorization_code (unauthorized_client); PKCE (invalid_request): a method
//     without a challenge, a challenge whose method is not S256 (plain, named or by default, is
//     refused) or that is not 43 characters of base64url, or no challenge from a public client;
//     scope missing or naming one c may not have (invalid_scope); prompt naming an unknown value
//     or none with another (invalid_request).
func (r AuthorizeRequest) Check(c identity.Client) (scopes []string, err *Error) {
	switch {
	case r.ClientID == "":
		return nil, page(ErrInvalidRequest, "client_id is required")
	case r.ClientID == identity.FirstPartyClientID || c.ID == "" || c.ID != r.ClientID:
		return nil, page(ErrInvalidClient, "client_id is not a registered client")
	case r.RedirectURI == "":
		return nil, page(ErrInvalidRequest, "redirect_uri is required")
	case !slices.Contains(c.RedirectURIs, r.RedirectURI):
		return nil, page(ErrInvalidRequest, "redirect_uri is not registered for this client")
	}
	// From here on the error may be sent to r.RedirectURI.
	if r.problem != nil {
		e := *r.problem
		return nil, &e
	}
	switch r.ResponseType {
	case "":
		return nil, redirecting(ErrInvalidRequest, "response_type is required")
	case "code":
	default:
		return nil, redirecting(ErrUnsupportedResponseType, "response_type must be code")
	}
	if !slices.Contains(c.GrantTypes, identity.GrantAuthorizationCode) {
		return nil, redirecting(ErrUnauthorizedClient, "the client is not registered for the authorization_code grant")
	}
	if e := r.checkPKCE(c); e != nil {
		return nil, e
	}
	scopes, e := r.checkScope(c)
	if e != nil {
		return nil, e
	}
	if e := checkPrompt(r.Prompt); e != nil {
		return nil, e
	}
	return scopes, nil
}

func (r AuthorizeRequest) checkPKCE(c identity.Client) *Error {
	switch {
	case r.CodeChallenge == "" && r.CodeChallengeMethod != "":
		return redirecting(ErrInvalidRequest, "code_challenge_method is given without code_challenge")
	case r.CodeChallenge == "" && c.Public:
		return redirecting(ErrInvalidRequest, "a public client must send code_challenge with code_challenge_method S256")
	case r.CodeChallenge == "":
		return nil
	case r.CodeChallengeMethod == "":
		// RFC 7636 §4.3: the method defaults to plain, which is refused.
		return redirecting(ErrInvalidRequest, "code_challenge_method must be S256 (plain is not supported)")
	}
	if err := ValidChallenge(r.CodeChallenge, r.CodeChallengeMethod); err != nil {
		return err.(*Error)
	}
	return nil
}

// checkScope: scope = scope-token *( SP scope-token ) (RFC 6749 §3.3), case-sensitive; every
// token must be one the client may have. Repeated spaces are tolerated.
func (r AuthorizeRequest) checkScope(c identity.Client) ([]string, *Error) {
	var scopes []string
	for _, s := range strings.Split(r.Scope, " ") {
		if s == "" || slices.Contains(scopes, s) {
			continue
		}
		if !slices.Contains(c.Scopes, s) {
			return nil, redirecting(ErrInvalidScope, "a requested scope is not allowed for this client")
		}
		scopes = append(scopes, s)
	}
	if len(scopes) == 0 {
		return nil, redirecting(ErrInvalidScope, "scope is required")
	}
	return scopes, nil
}

// checkPrompt: space-delimited values of none, login, consent, select_account; none only alone
// (OpenID Connect Core §3.1.2.1).
func checkPrompt(p string) *Error {
	vals := strings.Fields(p)
	for _, v := range vals {
		switch v {
		case PromptNone:
			if len(vals) > 1 {
				return redirecting(ErrInvalidRequest, "prompt none cannot be combined with another value")
			}
		case PromptLogin, PromptConsent, PromptSelectAccount:
		default:
			return redirecting(ErrInvalidRequest, "prompt has an unsupported value")
		}
	}
	return nil
}

// HasPrompt reports whether r's prompt parameter includes v (one of the Prompt constants).
func (r AuthorizeRequest) HasPrompt(v string) bool { return hasPrompt(r.Prompt, v) }

// ErrInvalidTarget is RFC 8707 §2's (and RFC 8693's) error: a resource or audience the client
// may not ask for.
const ErrInvalidTarget = "invalid_target"

// CheckResource is RFC 8707 §2 at the authorization endpoint: resource, when given, must be one
// of allowed (the audiences the IdP knows for the client); else invalid_target, redirected.
func CheckResource(resource string, allowed []string) *Error {
	if resource == "" || slices.Contains(allowed, resource) {
		return nil
	}
	return redirecting(ErrInvalidTarget, "resource is not one this client may ask for")
}
