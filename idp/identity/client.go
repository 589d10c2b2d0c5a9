package identity

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"jwtidp/shared/apperr"
)

// Grant types a client may be registered for (RFC 6749).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"    // RFC 8628
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange" // RFC 8693
)

// FirstPartyClientID is the IdP's own client: /auth and the browser login act for it. No
// registered client may take its id.
const FirstPartyClientID = "idp"

// Client is a registered OAuth 2.0 / OpenID Connect client (an application that logs its users
// in with the IdP, or a service that calls others with its own token). Confidential clients
// hold a secret, of which the store keeps only SecretHash; public clients (single-page and
// native apps) hold none and must use PKCE.
type Client struct {
	ID                     string
	Name                   string
	Public                 bool
	SecretHash             string // the hash of the secret (see auth.HashClientSecret); "" for a public client
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	Scopes                 []string // the scopes it may be granted
	FirstParty             bool     // its users are not asked for consent
	// ForwardAuth: its users' access tokens pass the IdP's /verify (forward-auth at the
	// edge), as the first-party client's do. Without it, a relying party's token is for that
	// party alone, and the edge refuses it.
	ForwardAuth bool
	CreatedAt   time.Time

	// TokenEndpointAuth is how the client authenticates at /token, /introspect, /revoke and
	// /device/authorize: AuthSecretBasic or AuthSecretPost (a confidential client with a secret;
	// "" means either), AuthPrivateKeyJWT (a signed assertion by a key of JWKS or JWKSURI, no
	// secret), AuthNone (a public client).
	TokenEndpointAuth string `json:",omitempty"`
	JWKS              string `json:",omitempty"` // private_key_jwt: its public keys, a JWKS document
	JWKSURI           string `json:",omitempty"` // private_key_jwt: or where to fetch them (https)
	// BackchannelLogoutURI is where a logout_token is POSTed when a session it got tokens from
	// ends; BackchannelLogoutSessionRequired: it needs sid in it.
	BackchannelLogoutURI             string `json:",omitempty"`
	BackchannelLogoutSessionRequired bool   `json:",omitempty"`
	// ExchangeAudiences are the audiences the token exchange grant may give it tokens for.
	ExchangeAudiences []string `json:",omitempty"`
	// RegisteredBy says who made the registration: "" (an admin or the clients file) or
	// "registration:<initial token id>"/"registration:open" (RFC 7591).
	RegisteredBy string `json:",omitempty"`
	// RegistrationAccessHash is the SHA-256 of the registration access token (RFC 7592) that
	// reads, replaces and deletes a registration made through RFC 7591; "" for any other client.
	RegistrationAccessHash string `json:",omitempty"`
}

// Client authentication methods at the token endpoint (RFC 7591 §2).
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthNone          = "none"
)

// SameAs reports whether c and o are the same registration (a nil list equals an empty one).
func (c Client) SameAs(o Client) bool {
	return c.ID == o.ID && c.Name == o.Name && c.Public == o.Public && c.SecretHash == o.SecretHash &&
		slices.Equal(c.RedirectURIs, o.RedirectURIs) && slices.Equal(c.PostLogoutRedirectURIs, o.PostLogoutRedirectURIs) &&
		slices.Equal(c.GrantTypes, o.GrantTypes) && slices.Equal(c.Scopes, o.Scopes) && c.FirstParty == o.FirstParty &&
		c.ForwardAuth == o.ForwardAuth && c.CreatedAt.Equal(o.CreatedAt) &&
		c.TokenEndpointAuth == o.TokenEndpointAuth && c.JWKS == o.JWKS && c.JWKSURI == o.JWKSURI &&
		c.BackchannelLogoutURI == o.BackchannelLogoutURI && c.BackchannelLogoutSessionRequired == o.BackchannelLogoutSessionRequired &&
		slices.Equal(c.ExchangeAudiences, o.ExchangeAudiences) && c.RegisteredBy == o.RegisteredBy &&
		c.RegistrationAccessHash == o.RegistrationAccessHash
}

// ValidateClientID enforces 1–128 characters of [A-Za-z0-9._-], and not the IdP's own.
func ValidateClientID(id string) error {
	if n := len(id); n < 1 || n > 128 {
		return apperr.Errorf(apperr.EINVALID, "client_id must be 1 to 128 characters long")
	}
	if !nameChars(id) {
		return apperr.Errorf(apperr.EINVALID, "client_id may contain only letters, digits, '.', '_' and '-'")
	}
	if id == FirstPartyClientID {
		return apperr.Errorf(apperr.EINVALID, "client_id %q is the IdP's own", id)
	}
	return nil
}

// Validate checks a client's invariants before it is stored. EINVALID, naming what is wrong.
func (c Client) Validate() error {
	if err := ValidateClientID(c.ID); err != nil {
		return err
	}
	if len(c.Name) > 200 {
		return apperr.Errorf(apperr.EINVALID, "name must be at most 200 characters long")
	}
	if c.Public && c.SecretHash != "" {
		return apperr.Errorf(apperr.EINVALID, "A public client has no secret")
	}
	keyed := c.TokenEndpointAuth == AuthPrivateKeyJWT
	switch c.TokenEndpointAuth {
	case "", AuthSecretBasic, AuthSecretPost:
		if !c.Public && c.SecretHash == "" {
			return apperr.Errorf(apperr.EINVALID, "A confidential client needs a secret")
		}
		if c.Public && c.TokenEndpointAuth != "" {
			return apperr.Errorf(apperr.EINVALID, "token_endpoint_auth_method: a public client authenticates with none")
		}
	case AuthPrivateKeyJWT:
		if c.Public || c.SecretHash != "" {
			return apperr.Errorf(apperr.EINVALID, "A private_key_jwt client is confidential and has no secret")
		}
		if (c.JWKS == "") == (c.JWKSURI == "") {
			return apperr.Errorf(apperr.EINVALID, "A private_key_jwt client needs jwks or jwks_uri (one of them)")
		}
	case AuthNone:
		if !c.Public {
			return apperr.Errorf(apperr.EINVALID, "token_endpoint_auth_method none is a public client's")
		}
	default:
		return apperr.Errorf(apperr.EINVALID, "token_endpoint_auth_method: %q is not supported", c.TokenEndpointAuth)
	}
	if !keyed && (c.JWKS != "" || c.JWKSURI != "") {
		return apperr.Errorf(apperr.EINVALID, "jwks and jwks_uri are for private_key_jwt clients")
	}
	if len(c.JWKS) > 64<<10 {
		return apperr.Errorf(apperr.EINVALID, "jwks is over 64 KiB")
	}
	if c.JWKSURI != "" {
		if u, err := url.Parse(c.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
			if err := ValidateRedirectURI(c.JWKSURI); err != nil { // https, or http to loopback
				return apperr.Errorf(apperr.EINVALID, "jwks_uri must be an https URL (http only for a loopback host)")
			}
		}
	}
	if c.BackchannelLogoutURI != "" {
		if err := ValidateRedirectURI(c.BackchannelLogoutURI); err != nil {
			return apperr.Errorf(apperr.EINVALID, "backchannel_logout_uri must be absolute, https (http only for a loopback host), without a fragment")
		}
	}
	for _, a := range c.ExchangeAudiences {
		if !ScopeToken(a) {
			return apperr.Errorf(apperr.EINVALID, "token_exchange.audiences: %q is not an audience", a)
		}
	}
	if len(c.GrantTypes) == 0 {
		return apperr.Errorf(apperr.EINVALID, "grant_types must name at least one grant type")
	}
	for _, g := range c.GrantTypes {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken:
		case GrantDeviceCode:
		case GrantClientCredentials, GrantTokenExchange:
			if c.Public {
				return apperr.Errorf(apperr.EINVALID, "A public client cannot use the %s grant", g)
			}
		default:
			return apperr.Errorf(apperr.EINVALID, "grant_types: %q is not supported", g)
		}
	}
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return apperr.Errorf(apperr.EINVALID, "redirect_uris must name at least one URI for the authorization_code grant")
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
		if err := ValidateRedirectURI(u); err != nil {
			return err
		}
	}
	for _, s := range c.Scopes {
		if !ScopeToken(s) {
			return apperr.Errorf(apperr.EINVALID, "scopes: %q is not a scope token", s)
		}
	}
	return nil
}

// ScopeToken reports whether s may be a scope: a word without spaces, quotes or backslashes
// (RFC 6749 §3.3), of at most 128 bytes.
func ScopeToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n\"\\") && len(s) <= 128
}

// ValidateRedirectURI enforces API.md: absolute, without a fragment or user info, https except
// for a loopback host (a native app's http://127.0.0.1:port/…). Compared exactly later, so it
// is stored exactly as given.
func ValidateRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil {
		return apperr.Errorf(apperr.EINVALID, "Redirect URI %q must be absolute, without fragment or user info", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
	}
	return apperr.Errorf(apperr.EINVALID, "Redirect URI %q must use https (http only for a loopback host)", raw)
}

// ClientStore keeps registered clients.
type ClientStore interface {
	// CreateClient stores c. EINVALID when c breaks Client.Validate; ECONFLICT when its id is
	// taken.
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns the client with this id. ENOTFOUND when there is none.
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns every client ordered by id; empty, never nil.
	ListClients(ctx context.Context) ([]Client, error)
	// UpdateClient runs fn on the client as stored now and stores its result, in one
	// transaction, and returns what it stored; fn may run more than once. ENOTFOUND when there
	// is no such client (fn is not called); EINVALID when the result changes the id or breaks
	// Client.Validate; fn's own error changes nothing and is returned.
	UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error)
	// DeleteClient removes the client and, in the same transaction, revokes every refresh
	// family issued to it and deletes every consent given to it and every authorization code
	// issued to it. ENOTFOUND when there is none.
	DeleteClient(ctx context.Context, id string) error
}
