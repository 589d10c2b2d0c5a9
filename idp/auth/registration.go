package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// Dynamic client registration (RFC 7591) and its management (RFC 7592).

// Registration modes (--registration): closed takes only a request with an initial access
// token an admin minted; open takes any, for loopback http or https redirect URIs.
const (
	RegistrationClosed = "closed"
	RegistrationOpen   = "open"
)

// The refusals of registration, in RFC 7591 §3.2.2's and RFC 6750's terms.
var (
	// ErrRegistrationAccess: no, or a wrong, registration access token for the client named
	// (or no such client, or one an admin registered): one answer for all.
	ErrRegistrationAccess = apperr.Errorf(apperr.EUNAUTHORIZED, "The registration access token is invalid")
)

// MetadataError is invalid_client_metadata or invalid_redirect_uri (Code) with what is wrong.
type MetadataError struct{ Code, Description string }

func (e *MetadataError) Error() string { return e.Code + ": " + e.Description }

func badMetadata(format string, args ...any) error {
	return &MetadataError{Code: "invalid_client_metadata", Description: fmt.Sprintf(format, args...)}
}

// MaxRegistrationTokenTTL bounds an initial access token's life; MaxRegistrationTokenUses its uses.
const (
	MaxRegistrationTokenTTL  = 366 * 24 * time.Hour
	MaxRegistrationTokenUses = 1000
)

// NewRegistrationToken mints an initial access token of uses registrations for ttl: the token,
// shown this once, and what the store keeps (its hash).
func (s *Admin) NewRegistrationToken(ctx context.Context, ttl time.Duration, uses int) (string, identity.RegistrationToken, error) {
	if s.RegistrationTokens == nil {
		return "", identity.RegistrationToken{}, apperr.Errorf(apperr.EINVALID, "Client registration is off")
	}
	if ttl < time.Minute || ttl > MaxRegistrationTokenTTL {
		return "", identity.RegistrationToken{}, apperr.Errorf(apperr.EINVALID, "ttl must be between 1m and %s", MaxRegistrationTokenTTL)
	}
	if uses < 1 || uses > MaxRegistrationTokenUses {
		return "", identity.RegistrationToken{}, apperr.Errorf(apperr.EINVALID, "uses must be between 1 and %d", MaxRegistrationTokenUses)
	}
	raw, err := token.RandomString(s.Random, 32)
	if err != nil {
		return "", identity.RegistrationToken{}, err
	}
	id, err := token.RandomString(s.Random, 9)
	if err != nil {
		return "", identity.RegistrationToken{}, err
	}
	now := s.Now().UTC()
	t := identity.RegistrationToken{ID: id, Hash: HashClientSecret(raw), CreatedAt: now, ExpiresAt: now.Add(ttl), UsesLeft: uses}
	detail := fmt.Sprintf("initial access token %s: %d uses until %s", id, uses, t.ExpiresAt.Format(time.RFC3339))
	if err := s.audited(ctx, func(ctx context.Context) error { return s.RegistrationTokens.CreateRegistrationToken(ctx, t) },
		s.event(ctx, identity.AuditRegistrationTokenCreated, "", Success, detail)); err != nil {
		return "", identity.RegistrationToken{}, err
	}
	s.Logger.InfoContext(ctx, "initial access token minted", "id", id, "expires_at", t.ExpiresAt, "uses", uses)
	return raw, t, nil
}

// Registered is a client just registered or replaced through RFC 7591/7592, with what its
// registrant is shown this once: the client secret (a confidential client's, when one was made)
// and the registration access token (at registration).
type Registered struct {
	Client            identity.Client
	Secret            string
	RegistrationToken string
}

// offeredScopes are the scopes a registration may ask for: OpenID Connect's and those the IdP
// grants at login.
func (s *core) offeredScopes() []string {
	return append([]string{"openid", "profile", "email", "groups", "offline_access"}, strings.Fields(s.FirstParty.Scope)...)
}

// registrable checks and completes metadata (an RFC 7591 request, as a client with no id) as a
// registration may be: never first-party or forward-auth, no token exchange, the grants a
// registration may have (client_credentials only with an initial access token), only offered
// scopes (all of them when none is asked), redirect URIs that are https or http to loopback.
func (s *core) registrable(c identity.Client, open bool) (identity.Client, error) {
	c.FirstParty, c.ForwardAuth, c.ExchangeAudiences = false, false, nil
	c.SecretHash = ""
	if c.TokenEndpointAuth == "" {
		c.TokenEndpointAuth = identity.AuthSecretBasic // RFC 7591 §2's default
	}
	c.Public = c.TokenEndpointAuth == identity.AuthNone
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{identity.GrantAuthorizationCode} // RFC 7591 §2's default
	}
	for _, g := range c.GrantTypes {
		switch g {
		case identity.GrantAuthorizationCode, identity.GrantRefreshToken:
		case identity.GrantClientCredentials, identity.GrantDeviceCode:
			// A device's sign-in shows the person only the client's name, which an open
			// registration lets anyone choose ("Company CLI"): device-code phishing.
			if open {
				return c, badMetadata("grant_types: %s needs an initial access token", g)
			}
		default:
			return c, badMetadata("grant_types: %q cannot be registered", g)
		}
	}
	// The IdP itself fetches a jwks_uri and posts to a backchannel_logout_uri: from a
	// registration, such a URI could aim the IdP's requests inside its own network. Open
	// registration takes neither (inline jwks still work); with an initial access token they
	// must be https to a host that is not an address of a loopback, private or link-local network.
	for name, u := range map[string]string{"jwks_uri": c.JWKSURI, "backchannel_logout_uri": c.BackchannelLogoutURI} {
		switch {
		case u == "":
		case open:
			return c, badMetadata("%s needs an initial access token", name)
		case !publicHTTPS(u):
			return c, badMetadata("%s must be https to a public host", name)
		}
	}
	for _, u := range c.RedirectURIs {
		if err := identity.ValidateRedirectURI(u); err != nil {
			return c, &MetadataError{Code: "invalid_redirect_uri", Description: apperr.Message(err)}
		}
	}
	offered := s.offeredScopes()
	if len(c.Scopes) == 0 {
		c.Scopes = offered
	}
	for _, sc := range c.Scopes {
		if !slices.Contains(offered, sc) {
			return c, badMetadata("scope: %q is not offered by this IdP", sc)
		}
	}
	var once []string // each once, in the order asked (Compact alone drops adjacent copies only)
	for _, sc := range c.Scopes {
		if !slices.Contains(once, sc) {
			once = append(once, sc)
		}
	}
	c.Scopes = once
	return c, nil
}

// publicHTTPS reports whether u is https to a host that is not localhost nor an address of a
// loopback, private, link-local or unspecified network (a name is taken as it is: the
// registration cannot tell where it will resolve).
func publicHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || strings.EqualFold(u.Hostname(), "localhost") {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip == nil || !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified())
}

// validRegistration is c.Validate in RFC 7591's terms.
func validRegistration(c identity.Client) error {
	if err := c.Validate(); err != nil {
		return &MetadataError{Code: "invalid_client_metadata", Description: apperr.Message(err)}
	}
	return nil
}

// Register is RFC 7591's registration of metadata (a client without id), with initialToken
// (an initial access token; "" for none, which only open registration takes): a random
// client_id, a secret for a confidential client that signs with none, and a registration
// access token; only hashes are stored. The token's use is spent only once the metadata is
// found good. identity.ErrRegistrationToken (401) without a usable token when registration is
// closed; *MetadataError (400) for metadata the IdP does not take.
func (s *Grants) Register(ctx context.Context, initialToken string, c identity.Client) (Registered, error) {
	if s.RegistrationTokens == nil {
		return Registered{}, identity.ErrRegistrationToken
	}
	open := s.RegistrationMode == RegistrationOpen && initialToken == ""
	if !open && initialToken == "" {
		return Registered{}, identity.ErrRegistrationToken
	}
	c, err := s.registrable(c, open)
	if err != nil {
		return Registered{}, err
	}
	id, err := token.RandomString(s.Random, 16)
	if err != nil {
		return Registered{}, err
	}
	c.ID = id
	c.CreatedAt = s.Now().UTC()
	admin := &Admin{s.core}
	c, secret, err := admin.withSecret(c, "")
	if err != nil {
		return Registered{}, err
	}
	rat, err := token.RandomString(s.Random, 32)
	if err != nil {
		return Registered{}, err
	}
	c.RegistrationAccessHash = HashClientSecret(rat)
	c.RegisteredBy = identity.RegisteredByOpen
	if err := validRegistration(c); err != nil {
		return Registered{}, err
	}
	if !open {
		t, err := s.RegistrationTokens.SpendRegistrationToken(ctx, HashClientSecret(initialToken), s.Now())
		if err != nil {
			s.Logger.InfoContext(ctx, "client registration refused", "reason", "initial access token not usable")
			return Registered{}, err
		}
		c.RegisteredBy = identity.RegisteredByToken(t.ID)
	}
	ctx = WithActor(ctx, c.RegisteredBy)
	if err := s.audited(ctx, func(ctx context.Context) error { return s.Clients.CreateClient(ctx, c) },
		s.event(ctx, identity.AuditClientCreated, "", Success, "client "+c.ID+" registered ("+c.RegisteredBy+")")); err != nil {
		return Registered{}, err
	}
	s.Logger.InfoContext(ctx, "client registered", "client_id", c.ID, "public", c.Public, "registered_by", c.RegisteredBy)
	return Registered{Client: c, Secret: secret, RegistrationToken: rat}, nil
}

// dummyRegistration stands in for a client that is not there, so an unknown id costs the same
// comparison as a wrong token.
var dummyRegistration = identity.Client{RegisteredBy: identity.RegisteredByOpen, RegistrationAccessHash: HashClientSecret("no client has this token")}

// registrationAllows reports whether rat is the registration access token of c, a client made
// by registration, comparing hashes in constant time.
func registrationAllows(c identity.Client, rat string) bool {
	ok := subtle.ConstantTimeCompare([]byte(HashClientSecret(rat)), []byte(c.RegistrationAccessHash)) == 1
	return ok && rat != "" && c.RegistrationAccessHash != "" && strings.HasPrefix(c.RegisteredBy, "registration:")
}

// ReadRegistration is RFC 7592's read: the client id names, when rat is its registration
// access token. ErrRegistrationAccess otherwise (an unknown client too).
func (s *Grants) ReadRegistration(ctx context.Context, id, rat string) (identity.Client, error) {
	c, err := s.GetClient(ctx, id)
	switch apperr.Code(err) {
	case "":
	case apperr.ENOTFOUND, apperr.EINVALID:
		registrationAllows(dummyRegistration, rat)
		return identity.Client{}, ErrRegistrationAccess
	default:
		return identity.Client{}, err
	}
	if !registrationAllows(c, rat) {
		s.Logger.InfoContext(ctx, "client registration access refused", "client_id", id)
		return identity.Client{}, ErrRegistrationAccess
	}
	return c, nil
}

// UpdateRegistration is RFC 7592's update: metadata replaces the client's, checked as a
// registration is (in the mode it was made in) and decided inside the store's transaction on
// the client as stored, whose registration access token must still be rat. The client keeps
// its id, secret (a new one is made when it becomes confidential), registrant and token.
func (s *Grants) UpdateRegistration(ctx context.Context, id, rat string, metadata identity.Client) (Registered, error) {
	cur, err := s.ReadRegistration(ctx, id, rat)
	if err != nil {
		return Registered{}, err
	}
	next, err := s.registrable(metadata, cur.RegisteredBy == identity.RegisteredByOpen)
	if err != nil {
		return Registered{}, err
	}
	// A secret is made beforehand, and used only if the update finds the client, as stored in
	// its transaction, without one: a concurrent update that made one first keeps its own.
	var secret string
	needsSecret := !next.Public && next.TokenEndpointAuth != identity.AuthPrivateKeyJWT
	if needsSecret {
		if _, secret, err = (&Admin{s.core}).withSecret(next, ""); err != nil {
			return Registered{}, err
		}
	}
	made := false
	ctx = WithActor(ctx, cur.RegisteredBy)
	var out identity.Client
	err = s.audited(ctx, func(ctx context.Context) error {
		out, err = s.Clients.UpdateClient(ctx, id, func(old identity.Client) (identity.Client, error) {
			if !registrationAllows(old, rat) {
				return old, ErrRegistrationAccess
			}
			n := next
			n.ID, n.CreatedAt, n.RegisteredBy, n.RegistrationAccessHash = old.ID, old.CreatedAt, old.RegisteredBy, old.RegistrationAccessHash
			made = false
			switch {
			case !needsSecret:
				n.SecretHash = ""
			case old.SecretHash != "":
				n.SecretHash = old.SecretHash
			default:
				n.SecretHash, made = HashClientSecret(secret), true
			}
			if err := validRegistration(n); err != nil {
				return old, err
			}
			return n, nil
		})
		return err
	}, s.event(ctx, identity.AuditClientUpdated, "", Success, "client "+id+" replaced by its registrant"))
	if err != nil {
		return Registered{}, err
	}
	s.Logger.InfoContext(ctx, "client registration updated", "client_id", id)
	if !made {
		secret = "" // the client keeps the secret it had: shown once, when it was made
	}
	return Registered{Client: out, Secret: secret}, nil
}

// DeleteRegistration is RFC 7592's delete: the client goes, with its refresh families.
func (s *Grants) DeleteRegistration(ctx context.Context, id, rat string) error {
	c, err := s.ReadRegistration(ctx, id, rat)
	if err != nil {
		return err
	}
	ctx = WithActor(ctx, c.RegisteredBy)
	if err := s.audited(ctx, func(ctx context.Context) error { return s.Clients.DeleteClient(ctx, id) },
		s.event(ctx, identity.AuditClientDeleted, "", Success, "client "+id+" deleted by its registrant; its refresh families revoked")); err != nil {
		return err
	}
	s.Logger.InfoContext(ctx, "client registration deleted", "client_id", id)
	return nil
}
