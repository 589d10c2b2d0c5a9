package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
)

// ErrInsufficientScope refuses /userinfo to a relying party's token that was not granted
// openid: it is an OAuth token, not an OpenID Connect one (OpenID Connect Core §5.3).
var ErrInsufficientScope = apperr.Errorf(apperr.EFORBIDDEN, "The access token was not granted the openid scope")

// errNoUser is what a token whose subject is no user gets: a client's own token, or a deleted
// user's. The HTTP layer answers it as an invalid token.
var errNoUser = apperr.Errorf(apperr.ENOTFOUND, "The access token names no user")

// SetEmail sets the user's own email ("" removes it), once proof shows the owner asks
// (ErrWrongPassword, ErrNotFresh otherwise, and nothing changes). A new address is unverified;
// the one already stored changes nothing. EINVALID for a malformed address, ErrEmailTaken
// (ECONFLICT) when another user has it in any letter case, ENOTFOUND when userID is no user.
func (s *Account) SetEmail(ctx context.Context, userID, email string, proof Reauth) (identity.User, error) {
	if err := identity.ValidateEmail(email); err != nil {
		return identity.User{}, err
	}
	owner, err := s.Users.GetUser(ctx, userID)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return identity.User{}, errNoUser
	}
	if err != nil {
		return identity.User{}, err
	}
	if err := s.reauthenticate(ctx, owner, proof); err != nil {
		return identity.User{}, err
	}
	detail := "email set, unverified"
	if email == "" {
		detail = "email removed"
	}
	var u identity.User
	mctx := s.withNotice(ctx, owner, NoticeEmail) // to the address it had, when verified
	err = s.audited(mctx, func(ctx context.Context) error {
		var err error
		u, err = s.Users.UpdateUser(ctx, userID, func(cur identity.User) (identity.User, error) { return cur.SetEmail(email) })
		return err
	}, s.event(ctx, identity.AuditEmailChange, userID, Success, detail))
	switch {
	case errors.Is(err, identity.ErrUnchanged):
		return s.Users.GetUser(ctx, userID)
	case apperr.Code(err) == apperr.ENOTFOUND:
		return identity.User{}, errNoUser
	case errors.Is(err, identity.ErrEmailTaken) || apperr.Code(err) == apperr.ECONFLICT:
		// The only conflict an email change can meet is another user's email.
		s.Logger.InfoContext(ctx, "email change refused", "sub", userID, "reason", "taken")
		return identity.User{}, identity.ErrEmailTaken
	case err != nil:
		return identity.User{}, err
	}
	// The address itself stays out of the log: it is personal data.
	s.Logger.InfoContext(ctx, "email changed", "sub", u.ID, "removed", u.Email == "")
	s.mailQueued(mctx)
	s.sendVerification(ctx, u, u.Email)
	return u, nil
}

// VerifyEmail marks the user's email verified: the admin's act (the owner's is VerifyEmailLink).
// user is the user's id (sub); email is the address the admin looked at, compared with the
// user's inside the update. ENOTFOUND for no such user; EINVALID for no email named;
// identity.ErrEmailNotCurrent (ECONFLICT) when the user's email is not that address (any more),
// and nothing changes. Verifying a verified email is not an error.
func (s *Admin) VerifyEmail(ctx context.Context, user, email string) (identity.User, error) {
	if email == "" {
		return identity.User{}, apperr.Errorf(apperr.EINVALID, "Field \"email\" is required: the address you verify")
	}
	u, err := s.findUser(ctx, user)
	if err != nil {
		return identity.User{}, err
	}
	var v identity.User
	err = s.audited(ctx, func(ctx context.Context) error {
		v, err = s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) { return cur.VerifyEmailAddress(email) })
		return err
	}, s.event(ctx, identity.AuditEmailVerified, u.ID, Success, ""))
	switch {
	case errors.Is(err, identity.ErrUnchanged):
		return s.Users.GetUser(ctx, u.ID)
	case errors.Is(err, identity.ErrEmailNotCurrent):
		s.Logger.InfoContext(ctx, "email verification refused: not the user's address now", "sub", u.ID)
		return identity.User{}, err
	case err != nil:
		return identity.User{}, err
	}
	s.Logger.InfoContext(ctx, "email verified by an admin", "sub", v.ID)
	return v, nil
}

// findUser is the user whose id (sub) is user — never a username, which anyone picks at
// signup and so could pick to be someone else's sub. ENOTFOUND when there is none.
func (s *core) findUser(ctx context.Context, user string) (identity.User, error) {
	notFound := apperr.Errorf(apperr.ENOTFOUND, "No user with id %q", user)
	if user == "" {
		return identity.User{}, notFound
	}
	u, err := s.Users.GetUser(ctx, user)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return identity.User{}, notFound
	}
	return u, err
}

// Userinfo is OpenID Connect Core §5.3: the claims about the user an access token (already
// verified) with subject sub, client clientID and scope may read. sub always; for the IdP's
// own client (the /auth and browser-login tokens, which /userinfo always answered)
// preferred_username, and email with email_verified when the user has one; for a relying party
// only with scope openid (else ErrInsufficientScope), preferred_username with scope profile and
// email with email_verified with scope email, when the user has one. groups (a list, empty for
// none) with scope groups. errNoUser (ENOTFOUND) when sub is no user: a client's own token, or
// a deleted user's.
func (s *Account) Userinfo(ctx context.Context, sub, clientID, scope string) (map[string]any, error) {
	u, err := s.Users.GetUser(ctx, sub)
	if apperr.Code(err) == apperr.ENOTFOUND || err == nil && u.Disabled {
		return nil, errNoUser // a disabled user's token tells nothing more about them
	}
	if err != nil {
		return nil, err
	}
	scopes := strings.Fields(scope)
	firstParty := clientID == identity.FirstPartyClientID
	if !firstParty && !slices.Contains(scopes, "openid") {
		return nil, ErrInsufficientScope
	}
	claims := map[string]any{"sub": u.ID}
	if firstParty || slices.Contains(scopes, "profile") {
		claims["preferred_username"] = u.Username
	}
	if u.Email != "" && (firstParty || slices.Contains(scopes, "email")) {
		claims["email"] = u.Email
		claims["email_verified"] = u.EmailVerified
	}
	if slices.Contains(scopes, ScopeGroups) {
		groups, err := groupsOf(ctx, s.Groups, u.ID)
		if err != nil {
			return nil, err
		}
		claims["groups"] = groups
	}
	return claims, nil
}

// Token types of an introspection answer (RFC 7662 §2.2, RFC 7009 §2.1's hints).
const (
	TokenTypeAccess  = "access_token"
	TokenTypeRefresh = "refresh_token"
)

// Introspection is RFC 7662's answer. When Active is false every other field is empty: an
// inactive token is described no further.
type Introspection struct {
	Active    bool
	TokenType string // TokenTypeAccess or TokenTypeRefresh
	Scope     string
	ClientID  string
	Username  string // the user's, when the token is a user's
	Subject   string
	Audience  []string
	Issuer    string
	IssuedAt  time.Time // access tokens only
	ExpiresAt time.Time
}

// VerifyAccess checks an access token with the IdP's own keys and returns its claims (the HTTP
// layer passes its jwtauth.Verifier's Verify).
type VerifyAccess func(ctx context.Context, raw string) (*jwtauth.Claims, error)

// errPeek is what the introspection's step returns so that looking a family up changes nothing.
var errPeek = errors.New("introspection: look, don't touch")

// Introspect is RFC 7662: an authenticated confidential client asks whether tok — an access
// token (checked with verify) or a refresh token — is active, and what it says. A client sees
// only the tokens issued to itself and the access tokens whose aud contains its client id (it
// is their resource server, RFC 7662 §4); any other token is inactive to it, so that one
// registered client cannot read what another's tokens say. Public clients cannot authenticate,
// so they get ErrInvalidClient like an unknown client or a wrong secret. hint (token_type_hint)
// only orders the lookups. Anything unknown, malformed, expired, revoked, spent, of a disabled
// or deleted user, or a client's token whose client is gone, is inactive: Introspection{}, no
// error; so is a refresh token whose user's credentials changed since. An access token is
// self-contained and carries no session or credential epoch: after a logout or a password
// change it stays active until it expires (--token-ttl), as it does at every resource server
// that verifies it itself.
func (s *Grants) Introspect(ctx context.Context, clientID, secret, tok, hint string, verify VerifyAccess) (Introspection, error) {
	return s.IntrospectAs(ctx, ClientAuth{ID: clientID, Secret: secret}, tok, hint, verify)
}

// IntrospectAs is Introspect for the client authenticated by a: its secret or its signed
// assertion.
func (s *Grants) IntrospectAs(ctx context.Context, a ClientAuth, tok, hint string, verify VerifyAccess) (Introspection, error) {
	c, err := s.authenticate(ctx, a)
	if errors.Is(err, ErrUnauthorizedClient) {
		return Introspection{}, ErrInvalidClient // a public client: it has no secret to authenticate with
	}
	if err != nil {
		return Introspection{}, err
	}
	lookups := []func(context.Context, string, VerifyAccess) (Introspection, error){s.introspectAccess, s.introspectRefresh}
	if hint == TokenTypeRefresh {
		slices.Reverse(lookups)
	}
	var in Introspection
	for _, look := range lookups {
		if in, err = look(ctx, tok, verify); err != nil || in.Active {
			break
		}
	}
	if err != nil {
		return Introspection{}, err
	}
	if in.Active && !mayIntrospect(c.ID, in) {
		s.Logger.InfoContext(ctx, "introspection", "client_id", c.ID, "active", false, "reason", "another client's token")
		return Introspection{}, nil
	}
	s.Logger.InfoContext(ctx, "introspection", "client_id", c.ID, "active", in.Active, "token_type", in.TokenType, "sub", in.Subject)
	return in, nil
}

// mayIntrospect reports whether the client caller may be told about the active token in: it was
// issued to caller, or it is an access token for caller (its aud names it).
func mayIntrospect(caller string, in Introspection) bool {
	return in.ClientID == caller || in.TokenType == TokenTypeAccess && slices.Contains(in.Audience, caller)
}

func (s *core) introspectAccess(ctx context.Context, raw string, verify VerifyAccess) (Introspection, error) {
	if verify == nil || strings.Count(raw, ".") != 2 {
		return Introspection{}, nil // not a JWT: no access token of ours
	}
	c, err := verify(ctx, raw)
	if errors.Is(err, jwtauth.ErrKeysUnavailable) {
		return Introspection{}, apperr.Errorf(apperr.EUNAVAILABLE, "Signing keys are not loaded yet")
	}
	if err != nil || c.ExpiresAt == nil || !s.Now().Before(c.ExpiresAt.Time) {
		// The verifier allows clock-skew leeway; introspection answers for this IdP's own clock.
		return Introspection{}, nil
	}
	in := Introspection{Active: true, TokenType: TokenTypeAccess, Scope: c.Scope, ClientID: c.ClientID, Subject: c.Subject,
		Audience: c.Audience, Issuer: c.Issuer, ExpiresAt: c.ExpiresAt.UTC()}
	if c.IssuedAt != nil {
		in.IssuedAt = c.IssuedAt.UTC()
	}
	u, err := s.Users.GetUser(ctx, c.Subject)
	switch apperr.Code(err) {
	case "":
		if u.Disabled {
			return Introspection{}, nil
		}
		in.Username = usernameFor(u, c.ClientID, c.Scope)
		return in, nil
	case apperr.ENOTFOUND:
	default:
		return Introspection{}, err
	}
	// No such user: a client's own token (sub is the client) is active while the client is
	// registered; a deleted user's token is not.
	if c.Subject != c.ClientID {
		return Introspection{}, nil
	}
	if _, err := s.GetClient(ctx, c.ClientID); apperr.Code(err) == apperr.ENOTFOUND {
		return Introspection{}, nil
	} else if err != nil {
		return Introspection{}, err
	}
	return in, nil
}

func (s *core) introspectRefresh(ctx context.Context, raw string, _ VerifyAccess) (Introspection, error) {
	hash := token.HashRefresh(raw)
	var f identity.Family
	var u identity.User
	_, err := s.Families.UpdateFamilyByToken(ctx, hash, func(cur identity.Family, owner identity.User) (identity.Family, error) {
		f, u = cur, owner
		return identity.Family{}, errPeek // the zero family: nothing is stored
	})
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return Introspection{}, nil
	case err != nil && !errors.Is(err, errPeek):
		return Introspection{}, err
	}
	if f.Dead(s.Now()) || f.Current != hash || u.ID == "" || u.ID != f.UserID || u.Epoch != f.Epoch || u.Disabled {
		return Introspection{}, nil // revoked, expired, spent, or its user gone, changed or disabled since
	}
	audience := f.Audience
	if len(audience) == 0 {
		audience = s.FirstParty.Audience // a family made before families kept their audience
	}
	return Introspection{Active: true, TokenType: TokenTypeRefresh, Scope: f.Scope, ClientID: f.ClientID, Username: usernameFor(u, f.ClientID, f.Scope),
		Subject: u.ID, Audience: audience, Issuer: s.Issuer.Issuer, ExpiresAt: f.ExpiresAt}, nil
}
