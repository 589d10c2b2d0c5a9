package auth

import (
	"context"
	"errors"
	"net/url"

	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
)

// GrantType is one grant of the token endpoint (RFC 6749 §4 and the extension grants): a new
// grant is a type of its own in this package, registered in newGrants, and the endpoint needs no
// change. Token answers a token request of its type, from its parameters and the client's
// authentication as sent (not yet checked: the grant decides whether it needs one). Refusals are
// *oidc.Error (the RFC 6749 §5.2 code and its description), or ErrInvalidClient.
type GrantType interface {
	Type() string
	Token(ctx context.Context, r TokenRequest) (Tokens, error)
}

// TokenRequest is a token request: the client's authentication and the form's parameters.
type TokenRequest struct {
	Client ClientAuth
	Params url.Values
}

// Grants are the token endpoint's grants and the protocol endpoints around them: the
// authorization endpoint's code and consent (oidc.go), revocation, introspection and userinfo.
type Grants struct {
	*core
	types map[string]GrantType
}

func newGrants(c *core) *Grants {
	g := &Grants{core: c}
	g.types = map[string]GrantType{}
	for _, t := range []GrantType{authorizationCodeGrant{g}, refreshTokenGrant{g}, clientCredentialsGrant{g},
		deviceCodeGrant{g}, tokenExchangeGrant{g},
	} {
		g.types[t.Type()] = t
	}
	return g
}

// Supports reports whether a grant of grantType exists: the token endpoint refuses any other
// before it reads the client's authentication, as it always has.
func (g *Grants) Supports(grantType string) bool {
	_, ok := g.types[grantType]
	return ok
}

// Token answers a token request of grantType by its grant; unsupported_grant_type for a type no
// grant has.
func (g *Grants) Token(ctx context.Context, grantType string, r TokenRequest) (Tokens, error) {
	t, ok := g.types[grantType]
	if !ok {
		return Tokens{}, grantError(oidc.ErrUnsupportedGrantType, "this grant_type is not supported: discovery's grant_types_supported lists those that are")
	}
	// A request naming no client at all (no client_id, secret or assertion) is invalid_client
	// before any parameter is read, for every grant but those that may go without one.
	if _, optional := t.(clientOptional); !optional && r.Client.Empty() {
		return Tokens{}, ErrInvalidClient
	}
	return t.Token(ctx, r)
}

// authorizationCodeGrant is RFC 6749 §4.1.3 with RFC 7636 §4.5: the client authenticates as it
// was registered (a secret, or for a public client its id and the code_verifier).
type authorizationCodeGrant struct{ *Grants }

func (authorizationCodeGrant) Type() string { return identity.GrantAuthorizationCode }

func (g authorizationCodeGrant) Token(ctx context.Context, r TokenRequest) (Tokens, error) {
	switch {
	case r.Params.Get("code") == "":
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "code is required")
	case r.Params.Get("redirect_uri") == "":
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "redirect_uri is required")
	}
	for _, p := range []string{"code", "redirect_uri", "code_verifier", "client_id", "client_secret", "grant_type"} {
		if len(r.Params[p]) > 1 {
			return Tokens{}, grantError(oidc.ErrInvalidRequest, p+" is given more than once")
		}
	}
	return g.ExchangeCode(ctx, Exchange{Client: r.Client, Code: r.Params.Get("code"),
		RedirectURI: r.Params.Get("redirect_uri"), Verifier: r.Params.Get("code_verifier"), Resource: r.Params.Get("resource")})
}

// refreshTokenGrant is RFC 6749 §6. The first-party client's families need no client
// authentication (as before the IdP had clients); a registered client's need the client's.
type refreshTokenGrant struct{ *Grants }

func (refreshTokenGrant) Type() string { return identity.GrantRefreshToken }

// clientOptional is a grant a request may make without naming a client: the first-party
// client's refresh families need no client authentication.
type clientOptional interface{ clientOptional() }

func (refreshTokenGrant) clientOptional() {}

func (g refreshTokenGrant) Token(ctx context.Context, r TokenRequest) (Tokens, error) {
	if r.Params.Get("refresh_token") == "" {
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "refresh_token is required")
	}
	t, err := g.RefreshGrant(ctx, RefreshRequest{Token: r.Params.Get("refresh_token"), Client: r.Client, Scope: r.Params.Get("scope"),
		Resource: r.Params.Get("resource")})
	if errors.Is(err, identity.ErrInvalidGrant) {
		return Tokens{}, grantError(oidc.ErrInvalidGrant, "refresh token is invalid, expired or revoked")
	}
	return t, err // ErrUnauthorizedClient and ErrInvalidScope: the endpoint's words for every grant
}

// clientCredentialsGrant is RFC 6749 §4.4.
type clientCredentialsGrant struct{ *Grants }

func (clientCredentialsGrant) Type() string { return identity.GrantClientCredentials }

func (g clientCredentialsGrant) Token(ctx context.Context, r TokenRequest) (Tokens, error) {
	t, err := g.clientCredentials(ctx, r.Client, r.Params.Get("scope"), r.Params.Get("resource"))
	switch {
	case errors.Is(err, ErrUnauthorizedClient):
		return Tokens{}, grantError(oidc.ErrUnauthorizedClient, "the client may not use the client_credentials grant")
	case errors.Is(err, ErrInvalidScope):
		return Tokens{}, grantError(oidc.ErrInvalidScope, "the requested scope is not among the client's scopes")
	}
	return t, err
}
