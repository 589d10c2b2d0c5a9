package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// The OpenID Connect authorization-code flow's use cases: the authorization endpoint's
// decisions (consent, issuing a code) and the token endpoint's code exchange and client-bound
// refresh. The protocol's request rules live in package oidc; what the code is bound to and
// what a redemption may issue live here.

// Scopes with a meaning to the IdP itself (OpenID Connect Core §5.4, §11); openid is the
// protocol's own, oidc.ScopeOpenID.
const (
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeOfflineAccess = "offline_access"
)

// ClientAuth is how a client identified itself at the token endpoint (and at /introspect,
// /revoke and /device/authorize, which authenticate clients the same way): a confidential
// client with its secret or a signed assertion (private_key_jwt), a public one with its id
// alone.
type ClientAuth struct {
	ID     string
	Secret string // "" for a public client
	// Assertion is a client_assertion of type AssertionType (the HTTP layer checked the type):
	// the client is then the one it names.
	Assertion string
	// Endpoint is the path of the endpoint it was sent to ("/token"), which an assertion's aud
	// may name (with the issuer in front).
	Endpoint string
}

// Empty reports whether a client sent no authentication and no client_id at all.
func (a ClientAuth) Empty() bool { return a.ID == "" && a.Secret == "" && a.Assertion == "" }

// authenticate is client authentication for every endpoint that needs a confidential client:
// a signed assertion (assertedClient), or else the client's secret (authenticateClient). A
// private_key_jwt client sending a secret, or a secret-based one sending an assertion, is
// ErrInvalidClient; a public client is ErrUnauthorizedClient (it has nothing to prove itself
// with).
func (s *core) authenticate(ctx context.Context, a ClientAuth) (identity.Client, error) {
	if a.Assertion != "" {
		return s.assertedClient(ctx, a)
	}
	return s.authenticateClient(ctx, a.ID, a.Secret)
}

// tokenClient authenticates the client of a token request: a confidential client by its
// secret or its assertion (authenticate); a public client, which has none, by its id (it
// proves itself through PKCE). A confidential client without a secret or assertion, a public
// one with one, or an unknown id is ErrInvalidClient.
func (s *core) tokenClient(ctx context.Context, a ClientAuth) (identity.Client, error) {
	if a.Secret != "" || a.Assertion != "" {
		c, err := s.authenticate(ctx, a)
		if errors.Is(err, ErrUnauthorizedClient) {
			return identity.Client{}, ErrInvalidClient // a public client sent a secret
		}
		return c, err
	}
	c, err := s.GetClient(ctx, a.ID)
	switch apperr.Code(err) {
	case "":
	case apperr.ENOTFOUND:
		s.Logger.InfoContext(ctx, "client authentication failed", "reason", "unknown client")
		return identity.Client{}, ErrInvalidClient
	default:
		return identity.Client{}, err
	}
	if !c.Public {
		s.Logger.InfoContext(ctx, "client authentication failed", "client_id", c.ID, "reason", "no secret")
		return identity.Client{}, ErrInvalidClient
	}
	return c, nil
}

// RememberConsent adds scopes to the user's remembered consent for the client.
func (s *Grants) RememberConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	all := slices.Clone(scopes)
	got, err := s.Consents.GetConsent(ctx, userID, clientID)
	switch apperr.Code(err) {
	case "":
		for _, sc := range got.Scopes {
			if !slices.Contains(all, sc) {
				all = append(all, sc)
			}
		}
	case apperr.ENOTFOUND:
	default:
		return err
	}
	err = s.Consents.SaveConsent(ctx, identity.Consent{UserID: userID, ClientID: clientID, Scopes: all, GrantedAt: s.Now().UTC()})
	if err == nil {
		s.Logger.InfoContext(ctx, "consent given", "sub", userID, "client_id", clientID, "scope", strings.Join(scopes, " "))
	}
	return err
}

// CodeRequest is a checked authorization request, its client, and the session that answers it.
type CodeRequest struct {
	Client  identity.Client
	Request identity.AuthRequest // its redirect URI, PKCE challenge, nonce and scopes bind the code
	Session Resolved
}

// HashCode is the form an authorization code is stored under: it has 256 random bits, so a
// plain SHA-256 suffices.
func HashCode(code string) string { return token.HashRefresh(code) }

// IssueCode makes a single-use authorization code bound to everything in r, valid
// identity.CodeTTL.
func (s *Grants) IssueCode(ctx context.Context, r CodeRequest) (string, error) {
	code, err := token.RandomString(s.Random, 32)
	if err != nil {
		return "", err
	}
	now := s.Now().UTC()
	err = s.Codes.CreateCode(ctx, identity.AuthCode{
		Hash: HashCode(code), ClientID: r.Client.ID, RedirectURI: r.Request.RedirectURI, CodeChallenge: r.Request.CodeChallenge,
		Nonce: r.Request.Nonce, Scopes: r.Request.Scopes, UserID: r.Session.UserID, Epoch: r.Session.Epoch, SessionID: r.Session.SessionID,
		AuthTime: r.Session.AuthTime, AMR: r.Session.AMR, IDP: r.Session.IDP, Resource: r.Request.Resource, CreatedAt: now, ExpiresAt: now.Add(identity.CodeTTL),
	})
	if err != nil {
		return "", err
	}
	s.Logger.InfoContext(ctx, "authorization code issued", "sub", r.Session.UserID, "client_id", r.Client.ID, "sid", r.Session.SessionID)
	return code, nil
}

// grantError is a token-endpoint refusal (RFC 6749 §5.2), with the description the client sees.
func grantError(code, desc string) *oidc.Error { return &oidc.Error{Code: code, Description: desc} }

// errReplay marks a code presented after it was redeemed.
var errReplay = grantError(oidc.ErrInvalidGrant, "the authorization code was already used; what it issued is revoked")

// replayedMark replaces a redeemed code's RefreshHash when a replay has revoked its family, so
// the redemption that made the family, if it finishes after the replay, revokes it too.
const replayedMark = "replayed"

// Exchange is a token request with the authorization-code grant (RFC 6749 §4.1.3).
type Exchange struct {
	Client      ClientAuth
	Code        string
	RedirectURI string
	Verifier    string // RFC 7636 code_verifier
	Resource    string // RFC 8707: must be the code's, or one the client may name when the code has none
}

// ExchangeCode redeems an authorization code: an access token for the code's scopes, an ID
// token when they include openid, and a refresh family bound to the session when they include
// offline_access and the client may refresh. Refusals are *oidc.Error (invalid_grant and the
// rest), or ErrInvalidClient / ErrUnauthorizedClient. A code presented a second time is
// refused and revokes the refresh family its first redemption made (RFC 6749 §4.1.2).
func (s *Grants) ExchangeCode(ctx context.Context, e Exchange) (Tokens, error) {
	c, err := s.tokenClient(ctx, e.Client)
	if err != nil {
		return Tokens{}, err
	}
	if !slices.Contains(c.GrantTypes, identity.GrantAuthorizationCode) {
		return Tokens{}, ErrUnauthorizedClient
	}
	ctx = WithActor(ctx, ClientActor(c.ID)) // a replay's revocation is the client's request
	audience, err := s.resourceAudience(c, e.Resource)
	if err != nil {
		return Tokens{}, err
	}
	refresh, refreshHash, err := token.NewRefresh(s.Random)
	if err != nil {
		return Tokens{}, err
	}
	hash, now := HashCode(e.Code), s.Now()
	replayed := "" // the replayed code's RefreshHash as its first redemption left it
	code, err := s.Codes.UpdateCode(ctx, hash, func(ac identity.AuthCode) (identity.AuthCode, error) {
		replayed = ""
		switch {
		case ac.Used:
			// Marked in this very transaction, before anything is revoked: a first redemption
			// still making its family then finds the mark when it looks again, and ends it.
			replayed, ac.RefreshHash = ac.RefreshHash, replayedMark
			return ac, nil
		case !now.Before(ac.ExpiresAt):
			return ac, grantError(oidc.ErrInvalidGrant, "the authorization code has expired")
		case ac.ClientID != c.ID:
			return ac, grantError(oidc.ErrInvalidGrant, "the authorization code was issued to another client")
		case ac.RedirectURI != e.RedirectURI:
			return ac, grantError(oidc.ErrInvalidGrant, "redirect_uri differs from the authorization request's")
		case e.Resource != "" && ac.Resource != "" && e.Resource != ac.Resource:
			return ac, grantError(oidc.ErrInvalidTarget, "resource differs from the authorization request's")
		}
		if err := checkVerifier(ac.CodeChallenge, e.Verifier); err != nil {
			return ac, err
		}
		ac.Used = true
		if slices.Contains(ac.Scopes, ScopeOfflineAccess) && slices.Contains(c.GrantTypes, identity.GrantRefreshToken) {
			ac.RefreshHash = refreshHash
		}
		return ac, nil
	})
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		s.Logger.InfoContext(ctx, "code exchange refused", "client_id", c.ID, "reason", "unknown code")
		return Tokens{}, grantError(oidc.ErrInvalidGrant, "the authorization code is not valid")
	case err != nil:
		var oe *oidc.Error
		if errors.As(err, &oe) {
			s.Logger.InfoContext(ctx, "code exchange refused", "client_id", c.ID, "reason", oe.Description)
		}
		return Tokens{}, err
	case code.RefreshHash == replayedMark && code.Used:
		s.revokeReplayed(ctx, code, replayed)
		return Tokens{}, errReplay
	}
	u, err := s.Users.GetUser(ctx, code.UserID)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND || (err == nil && u.Epoch != code.Epoch):
		s.Logger.InfoContext(ctx, "code exchange refused", "client_id", c.ID, "sub", code.UserID, "reason", "user gone or credentials changed")
		return Tokens{}, grantError(oidc.ErrInvalidGrant, "the sign-in behind the authorization code is no longer valid")
	case err != nil:
		return Tokens{}, err
	}
	if code.SessionID != "" {
		// The session records the client (once), in the store: when it ends, a client with a
		// back-channel logout URI is told (identity.LogoutMail).
		if _, err := s.Sessions.UpdateSession(ctx, code.SessionID, identity.AddClient(c.ID)); apperr.Code(err) == apperr.ENOTFOUND {
			s.Logger.InfoContext(ctx, "code exchange refused", "client_id", c.ID, "sub", u.ID, "reason", "session ended")
			return Tokens{}, grantError(oidc.ErrInvalidGrant, "the session behind the authorization code has ended")
		} else if err != nil && !errors.Is(err, identity.ErrUnchanged) {
			return Tokens{}, err
		}
	}
	scope := strings.Join(code.Scopes, " ")
	if code.Resource != "" {
		audience = []string{code.Resource} // RFC 8707: the resource the authorization request named
	}
	t, err := s.Issue(ctx, Grant{
		User: u, Client: Client{ID: c.ID, Scope: scope, Audience: audience}, Scope: scope,
		Refresh: code.RefreshHash != "", SessionID: code.SessionID, AMR: code.AMR, IDP: code.IDP, AuthTime: code.AuthTime, refresh: refresh, refreshHash: refreshHash,
	})
	if err != nil {
		return Tokens{}, err
	}
	// What Issue granted: the code's scopes less those limited to groups the user is not in.
	granted := strings.Fields(t.Scope)
	if slices.Contains(granted, oidc.ScopeOpenID) {
		id := token.ID{Subject: u.ID, ClientID: c.ID, Nonce: code.Nonce, AuthTime: code.AuthTime, AMR: code.AMR, IDP: code.IDP,
			ACR: oidc.ACR(code.AMR), SessionID: code.SessionID, AccessToken: t.AccessToken}
		withClaims(&id, u, granted, t.groups)
		if t.IDToken, err = s.Issuer.IDToken(id, s.IDTokenTTL); err != nil {
			return Tokens{}, err
		}
	}
	if t.RefreshToken != "" {
		// A replay that ran between the redemption and the family's creation found no family to
		// revoke; it left its mark on the code, and the family ends now.
		if again, err := s.Codes.UpdateCode(ctx, hash, peekCode); errors.Is(err, errCodePeek) && again.RefreshHash != refreshHash {
			s.revoke(ctx, refreshHash, "revoked: its authorization code was replayed")
			return Tokens{}, errReplay
		}
	}
	s.Logger.InfoContext(ctx, "authorization code redeemed", "sub", u.ID, "client_id", c.ID, "scope", t.Scope)
	return t, nil
}

var errCodePeek = errors.New("peek")

func peekCode(ac identity.AuthCode) (identity.AuthCode, error) { return ac, errCodePeek }

// revokeReplayed revokes the family a replayed code's first redemption made (its first refresh
// token's hash was first); the code is already marked.
func (s *core) revokeReplayed(ctx context.Context, code identity.AuthCode, first string) {
	s.Logger.WarnContext(ctx, "authorization code replayed: what it issued is revoked", "sub", code.UserID, "client_id", code.ClientID)
	if first == "" || first == replayedMark {
		return
	}
	if err := s.revoke(ctx, first, "revoked: its authorization code was replayed"); err != nil {
		s.Logger.ErrorContext(ctx, "revoke after code replay", "err", err)
	}
}

// checkVerifier is RFC 7636 §4.6 at the token endpoint: a code issued with a challenge needs the
// verifier that hashes to it; one issued without a challenge must not be redeemed with a
// verifier (OAuth 2.1 §4.1.3, against PKCE downgrade).
func checkVerifier(challenge, verifier string) error {
	switch {
	case challenge == "" && verifier != "":
		return grantError(oidc.ErrInvalidGrant, "code_verifier was sent but the authorization request had no code_challenge")
	case challenge == "":
		return nil
	case verifier == "":
		return grantError(oidc.ErrInvalidGrant, "code_verifier is required")
	}
	if !oidc.VerifyPKCE(challenge, oidc.MethodS256, verifier) {
		return grantError(oidc.ErrInvalidGrant, "code_verifier does not match the code_challenge")
	}
	return nil
}

// withClaims adds the claims scopes profile and email ask for (OpenID Connect Core §5.4), and
// the user's groups with scope groups.
func withClaims(id *token.ID, u identity.User, scopes, groups []string) {
	if slices.Contains(scopes, ScopeGroups) {
		id.Groups = groups
	}
	if slices.Contains(scopes, ScopeProfile) {
		id.Username = u.Username
	}
	if slices.Contains(scopes, ScopeEmail) && u.Email != "" {
		v := u.EmailVerified
		id.Email, id.EmailVerified = u.Email, &v
	}
}

// RefreshRequest is a token request with the refresh grant.
type RefreshRequest struct {
	Token  string
	Client ClientAuth // zero for the first-party client, which does not authenticate
	Scope  string     // "" keeps the family's; otherwise a subset of it (RFC 6749 §6)
	// Resource (RFC 8707) narrows the access token's audience to that one of the family's.
	Resource string
}

// errWrongClient: a family presented by a client it was not issued to (or by no client when it
// was issued to one). Nothing changes: the family is not the presenter's to revoke.
var errWrongClient = errors.New("refresh family belongs to another client")

var errScopeWidened = errors.New("requested scope exceeds the family's")

// errNotTheFamilysResource: a refresh naming a resource the family's tokens are not for.
var errNotTheFamilysResource = grantError(oidc.ErrInvalidTarget, "resource is not one the refresh token's grant covers")

// RefreshGrant spends a refresh token as Refresh does, for the client that presents it: a
// family issued to a registered client can only be refreshed by that client, authenticated as
// at the code exchange; the first-party client's families by no client at all. Scope may
// narrow the access token's. Refusals: ErrInvalidClient, identity.ErrInvalidGrant, and
// ErrInvalidScope.
func (s *Grants) RefreshGrant(ctx context.Context, r RefreshRequest) (Tokens, error) {
	clientID := ""
	if !r.Client.Empty() {
		c, err := s.tokenClient(ctx, r.Client)
		if err != nil {
			return Tokens{}, err
		}
		if !slices.Contains(c.GrantTypes, identity.GrantRefreshToken) {
			return Tokens{}, ErrUnauthorizedClient
		}
		clientID = c.ID
		ctx = WithActor(ctx, ClientActor(c.ID))
	}
	return s.refresh(ctx, r.Token, r.Resource, func(f identity.Family) (string, error) {
		owner := f.ClientID
		if owner == identity.FirstPartyClientID {
			owner = ""
		}
		if owner != clientID {
			return "", errWrongClient
		}
		if r.Resource != "" && !slices.Contains(s.familyAudience(f), r.Resource) {
			return "", errNotTheFamilysResource
		}
		if r.Scope == "" {
			return f.Scope, nil
		}
		narrowed, ok := grantScope(strings.Fields(f.Scope), r.Scope)
		if !ok {
			return "", errScopeWidened
		}
		return narrowed, nil
	})
}
