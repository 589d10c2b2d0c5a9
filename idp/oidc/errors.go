// Package oidc holds the protocol rules of the OpenID Connect authorization-code flow (OpenID
// Connect Core 1.0, RFC 6749, RFC 7636, RFC 9207, OAuth 2.1 where it is stricter), free of HTTP,
// storage and JOSE: PKCE, the parsing and checking of an authorization request, and the error
// responses of the authorization endpoint. The /authorize and /token handlers call these.
package oidc

import (
	"net/url"
	"strings"
)

// Error codes of RFC 6749 §4.1.2.1 and §5.2, and OpenID Connect Core §3.1.2.6.
const (
	ErrInvalidRequest          = "invalid_request"
	ErrUnauthorizedClient      = "unauthorized_client"
	ErrAccessDenied            = "access_denied"
	ErrUnsupportedResponseType = "unsupported_response_type"
	ErrInvalidScope            = "invalid_scope"
	ErrServerError             = "server_error"
	ErrTemporarilyUnavailable  = "temporarily_unavailable"
	ErrInvalidClient           = "invalid_client"
	ErrInvalidGrant            = "invalid_grant"
	ErrUnsupportedGrantType    = "unsupported_grant_type"

	ErrLoginRequired          = "login_required"
	ErrConsentRequired        = "consent_required"
	ErrInteractionRequired    = "interaction_required"
	ErrRequestNotSupported    = "request_not_supported"
	ErrRequestURINotSupported = "request_uri_not_supported"
)

// Error is an OAuth 2.0 error. Redirect says whether it may be sent to the client's redirect
// URI: false when the client or the redirect URI is missing, unknown or not registered
// (RFC 6749 §4.1.2.1), and the user then gets an error page instead.
type Error struct {
	Code        string
	Description string
	Redirect    bool
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

func redirecting(code, desc string) *Error {
	return &Error{Code: code, Description: desc, Redirect: true}
}
func page(code, desc string) *Error { return &Error{Code: code, Description: desc} }

// RedirectURL is the authorization error response (RFC 6749 §4.1.2.1, RFC 9207): redirectURI
// with error, error_description, state (when not empty) and iss (when not empty) added to its
// query, which is kept byte for byte. Any fragment is dropped. "" when e may not be redirected.
// redirectURI must be one Check accepted.
func (e *Error) RedirectURL(redirectURI, state, issuer string) string {
	if e == nil || !e.Redirect || redirectURI == "" {
		return ""
	}
	v := url.Values{}
	v.Set("error", e.Code)
	if d := cleanDescription(e.Description); d != "" {
		v.Set("error_description", d)
	}
	return appendQuery(redirectURI, v, state, issuer)
}

// CodeRedirectURL is the successful authorization response (RFC 6749 §4.1.2, RFC 9207):
// redirectURI with code, state (when not empty) and iss added to its query, kept byte for byte.
func CodeRedirectURL(redirectURI, code, state, issuer string) string {
	v := url.Values{}
	v.Set("code", code)
	return appendQuery(redirectURI, v, state, issuer)
}

// appendQuery adds v's parameters, and state and iss when not empty, after uri's own query
// without re-encoding it (RFC 6749 §3.1.2: the query component MUST be retained), and drops any
// fragment.
func appendQuery(uri string, v url.Values, state, issuer string) string {
	if state != "" {
		v.Set("state", state)
	}
	if issuer != "" {
		v.Set("iss", issuer)
	}
	uri, _, _ = strings.Cut(uri, "#")
	enc := v.Encode()
	switch {
	case !strings.Contains(uri, "?"):
		return uri + "?" + enc
	case strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&"):
		return uri + enc
	default:
		return uri + "&" + enc
	}
}

// cleanDescription keeps error_description within RFC 6749's %x20-21 / %x23-5B / %x5D-7E.
func cleanDescription(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '?'
		}
	}
	return string(b)
}

// LogoutRedirectURL is RP-Initiated Logout 1.0's redirect after a logout: the registered
// post_logout_redirect_uri with state added to its query when not empty, kept byte for byte.
func LogoutRedirectURL(uri, state string) string {
	if state == "" {
		return uri
	}
	return appendQuery(uri, url.Values{}, state, "")
}
