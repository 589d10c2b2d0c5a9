package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
)

// Token exchange (RFC 8693): a confidential client presents a user's access token of ours and
// gets one for an audience it may ask for, acting for the user.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	// ErrInvalidTarget is RFC 8693 §2.2.2's (and RFC 8707's) error: an audience or resource the
	// client may not ask for, or the IdP does not know.
	ErrInvalidTarget = oidc.ErrInvalidTarget
)

// tokenExchangeGrant is RFC 8693 §2.1 for one kind of subject: an access token this IdP issued,
// still live (its signature, issuer and expiry, its user active, its session or refresh family
// not ended). The new token's sub is the user's, its aud the audience asked for, its client_id
// the exchanging client and its act that client, with the subject token's actor nested.
type tokenExchangeGrant struct{ *Grants }

func (tokenExchangeGrant) Type() string { return identity.GrantTokenExchange }

func (g tokenExchangeGrant) Token(ctx context.Context, r TokenRequest) (Tokens, error) {
	c, err := g.tokenClient(ctx, r.Client)
	if err != nil {
		return Tokens{}, err
	}
	if c.Public {
		g.Logger.InfoContext(ctx, "token exchange refused", "client_id", c.ID, "reason", "a public client")
		return Tokens{}, ErrInvalidClient // the exchange needs a client that authenticates
	}
	if !slices.Contains(c.GrantTypes, identity.GrantTokenExchange) {
		return Tokens{}, grantError(oidc.ErrUnauthorizedClient, "the client may not use the token exchange grant")
	}
	ctx = WithActor(ctx, ClientActor(c.ID))
	p := r.Params.Get
	switch {
	case p("subject_token") == "":
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "subject_token is required")
	case p("subject_token_type") == "":
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "subject_token_type is required")
	case p("subject_token_type") != TokenTypeAccessToken:
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "subject_token_type must be "+TokenTypeAccessToken)
	case p("requested_token_type") != "" && p("requested_token_type") != TokenTypeAccessToken:
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "requested_token_type may only be "+TokenTypeAccessToken)
	case p("actor_token") != "" || p("actor_token_type") != "":
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "actor_token is not supported: the client is the actor")
	case p("audience") == "" && p("resource") == "":
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "audience is required")
	}
	audience := p("audience")
	if audience == "" {
		audience = p("resource") // RFC 8693 §2.1: either names the target
	} else if p("resource") != "" && p("resource") != audience {
		return Tokens{}, grantError(ErrInvalidTarget, "audience and resource name different targets")
	}
	if !slices.Contains(c.ExchangeAudiences, audience) {
		g.Logger.InfoContext(ctx, "token exchange refused", "client_id", c.ID, "audience", audience, "reason", "audience not allowed")
		return Tokens{}, grantError(ErrInvalidTarget, "the client may not ask for tokens for that audience")
	}
	subject, u, err := g.liveSubject(ctx, p("subject_token"))
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			g.Logger.InfoContext(ctx, "token exchange refused", "client_id", c.ID, "reason", oe.Description)
		}
		return Tokens{}, err
	}
	// No wider than the subject token's scope, nor than what the client itself may be granted:
	// a client registered to read cannot write on a user's behalf because the user could.
	allowed := slices.DeleteFunc(strings.Fields(subject.Scope), func(s string) bool { return !slices.Contains(c.Scopes, s) })
	scope, ok := grantScope(allowed, p("scope"))
	if !ok || scope == "" {
		return Tokens{}, grantError(oidc.ErrInvalidScope, "the requested scope is wider than the subject token's or the client's")
	}
	t, err := g.Issue(ctx, Grant{User: u, Client: Client{ID: c.ID, Scope: scope, Audience: []string{audience}}, Scope: scope,
		SessionID: subject.Sid, AMR: subject.AMR, Act: &jwtauth.Actor{Subject: c.ID, Act: subject.Act}, NotAfter: subject.ExpiresAt.Time})
	if err != nil {
		return Tokens{}, err
	}
	t.IssuedTokenType = TokenTypeAccessToken
	g.Logger.InfoContext(ctx, "token exchanged", "sub", u.ID, "client_id", c.ID, "audience", audience, "scope", t.Scope,
		"act", strings.Join((&jwtauth.Actor{Subject: c.ID, Act: subject.Act}).Chain(), " < "))
	return t, nil
}

// errSubject is the answer for a subject token that is not a live access token of ours, with
// which check failed: the client (a confidential one) learns nothing the token does not say.
func errSubject(why string) error {
	return grantError(oidc.ErrInvalidGrant, "subject_token is not a valid access token: "+why)
}

// liveSubject verifies raw as the IdP verifies its own tokens and reads, from the store, that it
// is still live: its user exists and is enabled, and the session or refresh family its sid
// names (if any) has not ended.
func (g tokenExchangeGrant) liveSubject(ctx context.Context, raw string) (*jwtauth.Claims, identity.User, error) {
	if g.VerifyAccess == nil {
		return nil, identity.User{}, errSubject("tokens cannot be verified here")
	}
	c, err := g.VerifyAccess(ctx, raw)
	switch {
	case errors.Is(err, jwtauth.ErrKeysUnavailable):
		return nil, identity.User{}, apperr.Errorf(apperr.EUNAVAILABLE, "Signing keys are not loaded yet")
	case err != nil:
		return nil, identity.User{}, errSubject("it does not verify")
	case c.ExpiresAt == nil || !g.Now().Before(c.ExpiresAt.Time):
		return nil, identity.User{}, errSubject("it has expired") // the IdP's own clock, no leeway
	}
	u, err := g.Users.GetUser(ctx, c.Subject)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND || err == nil && u.Disabled:
		return nil, identity.User{}, errSubject("it names no active user")
	case err != nil:
		return nil, identity.User{}, err
	}
	if c.Sid == "" {
		return c, u, nil
	}
	now := g.Now()
	if g.Sessions != nil {
		s, err := g.Sessions.GetSession(ctx, c.Sid)
		switch apperr.Code(err) {
		case "":
			if s.UserID == u.ID && s.Live(u, now) {
				return c, u, nil
			}
			return nil, identity.User{}, errSubject("its session has ended")
		case apperr.ENOTFOUND:
		default:
			return nil, identity.User{}, err
		}
	}
	families, err := g.Families.ListFamilies(ctx, u.ID)
	if err != nil {
		return nil, identity.User{}, err
	}
	for _, f := range families {
		if f.ID == c.Sid {
			if f.Dead(now) || f.Epoch != u.Epoch {
				return nil, identity.User{}, errSubject("its refresh family was revoked or has expired")
			}
			return c, u, nil
		}
	}
	return nil, identity.User{}, errSubject("its session has ended")
}

// Resources are the resources (RFC 8707) client c may name, for its access tokens' one
// audience: the IdP's audiences (--audience) and the audiences c may exchange tokens for.
func (s *Grants) Resources(c identity.Client) []string {
	return append(slices.Clone(s.FirstParty.Audience), c.ExchangeAudiences...)
}

// resourceAudience is the audience of the access tokens a grant for c issues: the one resource
// asked for, when c may name it, or else the IdP's default; invalid_target otherwise.
func (s *Grants) resourceAudience(c identity.Client, resource string) ([]string, error) {
	if resource == "" {
		return s.FirstParty.Audience, nil
	}
	if !slices.Contains(s.Resources(c), resource) {
		return nil, grantError(ErrInvalidTarget, "resource is not one this client may ask for")
	}
	return []string{resource}, nil
}
