package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"slices"
	"strings"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// Clients is what the use cases need of the client store.
type Clients = identity.ClientStore

// MinClientSecretBytes is the shortest secret a clients file may give: a secret is stored as a
// plain SHA-256, which is right only for a secret nobody can guess.
const MinClientSecretBytes = 32

// The refusals of the client-credentials grant, in RFC 6749 §5.2's terms.
var (
	// ErrInvalidClient: unknown client, wrong or missing secret (one answer for all).
	ErrInvalidClient = apperr.Errorf(apperr.EUNAUTHORIZED, "Client authentication failed")
	// ErrUnauthorizedClient: a public client, or one not registered for the grant.
	ErrUnauthorizedClient = apperr.Errorf(apperr.EFORBIDDEN, "The client is not allowed this grant type")
	// ErrInvalidScope: a requested scope the client may not have.
	ErrInvalidScope = apperr.Errorf(apperr.EINVALID, "The requested scope exceeds the client's scopes")
)

// HashClientSecret is the form a client secret is stored in. A plain SHA-256 (base64url)
// suffices because secrets are high-entropy (32 random bytes when generated, at least
// MinClientSecretBytes when given in a file): there is nothing to brute-force.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// dummyClient stands in for an unknown client, so a wrong client_id costs the same hash and
// comparison as a wrong secret.
var dummyClient = identity.Client{SecretHash: HashClientSecret("no client has this secret")}

// VerifyClientSecret reports whether secret is c's, comparing hashes in constant time. A public
// client (no hash) never verifies.
func VerifyClientSecret(c identity.Client, secret string) bool {
	got := HashClientSecret(secret)
	ok := subtle.ConstantTimeCompare([]byte(got), []byte(c.SecretHash)) == 1
	return ok && !c.Public && c.SecretHash != ""
}

// NewClientSecret returns a generated client secret: 32 random bytes, base64url.
func (s *Admin) NewClientSecret() (string, error) { return token.RandomString(s.Random, 32) }

// ClientCredentials is RFC 6749 §4.4: a confidential client authenticates with its secret and
// gets an access token for itself — sub and client_id are the client, aud the IdP's configured
// audience, scope the requested scopes (all of the client's when scope is empty). No refresh
// family, no ID token.
func (s *Grants) ClientCredentials(ctx context.Context, clientID, secret, scope string) (Tokens, error) {
	return s.clientCredentials(ctx, ClientAuth{ID: clientID, Secret: secret}, scope, "")
}

// ClientCredentialsAs is ClientCredentials for a client authenticated by a, its secret or
// its signed assertion.
func (s *Grants) ClientCredentialsAs(ctx context.Context, a ClientAuth, scope string) (Tokens, error) {
	return s.clientCredentials(ctx, a, scope, "")
}

// clientCredentials is ClientCredentialsAs with RFC 8707's resource: the token's one audience,
// when the client may name it.
func (s *Grants) clientCredentials(ctx context.Context, a ClientAuth, scope, resource string) (Tokens, error) {
	c, err := s.authenticate(ctx, a)
	if err != nil {
		return Tokens{}, err
	}
	if !slices.Contains(c.GrantTypes, identity.GrantClientCredentials) {
		s.Logger.InfoContext(ctx, "client credentials refused", "client_id", c.ID, "reason", "grant not registered")
		return Tokens{}, ErrUnauthorizedClient
	}
	granted, ok := grantScope(c.Scopes, scope)
	if !ok {
		s.Logger.InfoContext(ctx, "client credentials refused", "client_id", c.ID, "reason", "scope not allowed")
		return Tokens{}, ErrInvalidScope
	}
	audience, err := s.resourceAudience(c, resource)
	if err != nil {
		return Tokens{}, err
	}
	t, err := s.Issue(ctx, Grant{
		User:   identity.User{ID: c.ID},
		Client: Client{ID: c.ID, Scope: granted, Audience: audience},
		Scope:  granted,
	})
	if err != nil {
		return Tokens{}, err
	}
	s.Logger.InfoContext(ctx, "client credentials granted", "client_id", c.ID, "scope", granted)
	return t, nil
}

// authenticateClient finds the client and checks its secret: ErrInvalidClient for an unknown
// client or a wrong secret, after the same work; ErrUnauthorizedClient for a public client,
// which has no secret to authenticate with and may not use a grant that needs one.
func (s *core) authenticateClient(ctx context.Context, clientID, secret string) (identity.Client, error) {
	var c identity.Client
	var err error = apperr.Errorf(apperr.ENOTFOUND, "no client store")
	if s.Clients != nil {
		c, err = s.Clients.GetClient(ctx, clientID)
	}
	switch apperr.Code(err) {
	case "":
	case apperr.ENOTFOUND, apperr.EINVALID:
		VerifyClientSecret(dummyClient, secret)
		s.Logger.InfoContext(ctx, "client authentication failed", "reason", "unknown client")
		return identity.Client{}, ErrInvalidClient
	default:
		return identity.Client{}, err
	}
	if c.Public {
		VerifyClientSecret(dummyClient, secret)
		s.Logger.InfoContext(ctx, "client credentials refused", "client_id", c.ID, "reason", "public client")
		return identity.Client{}, ErrUnauthorizedClient
	}
	if !VerifyClientSecret(c, secret) {
		s.Logger.InfoContext(ctx, "client authentication failed", "client_id", c.ID, "reason", "wrong secret")
		return identity.Client{}, ErrInvalidClient
	}
	return c, nil
}

// grantScope is the scope a client gets for a request: every requested scope must be one of
// allowed; none requested means all of allowed. Duplicates are dropped, the order kept.
func grantScope(allowed []string, requested string) (string, bool) {
	want := strings.Fields(requested)
	if len(want) == 0 {
		want = allowed
	}
	var out []string
	for _, s := range want {
		if !slices.Contains(allowed, s) {
			return "", false
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " "), true
}

// RegisterClient stores a new client. A confidential client gets secret, or a generated one
// when secret is empty; the secret is returned (to be shown once) and only its hash is stored.
// EINVALID when c breaks the rules, ECONFLICT when its id is taken.
func (s *Admin) RegisterClient(ctx context.Context, c identity.Client, secret string) (identity.Client, string, error) {
	c, secret, err := s.withSecret(c, secret)
	if err != nil {
		return identity.Client{}, "", err
	}
	c.CreatedAt = s.Now().UTC()
	if err := c.Validate(); err != nil {
		return identity.Client{}, "", err
	}
	if err := s.notASubject(ctx, c.ID); err != nil {
		return identity.Client{}, "", err
	}
	if err := s.audited(ctx, func(ctx context.Context) error { return s.Clients.CreateClient(ctx, c) },
		s.event(ctx, identity.AuditClientCreated, "", Success, "client "+c.ID)); err != nil {
		return identity.Client{}, "", err
	}
	s.Logger.InfoContext(ctx, "client registered", "client_id", c.ID, "public", c.Public)
	return c, secret, nil
}

// withSecret is c with its secret's hash for a registration: one is made for a confidential
// client that brings none, and returned to be shown this once.
func (s *Admin) withSecret(c identity.Client, secret string) (identity.Client, string, error) {
	if !c.Public && secret == "" && c.TokenEndpointAuth != identity.AuthPrivateKeyJWT {
		var err error
		if secret, err = s.NewClientSecret(); err != nil {
			return c, "", err
		}
	}
	c, err := withClientSecret(c, secret)
	return c, secret, err
}

// withClientSecret is c with the hash of secret, under the one rule of client secrets: a public
// client has none, nor has a private_key_jwt one (its keys stand for it); any other
// confidential one needs one of at least MinClientSecretBytes. EINVALID.
func withClientSecret(c identity.Client, secret string) (identity.Client, error) {
	c.SecretHash = ""
	keyed := c.TokenEndpointAuth == identity.AuthPrivateKeyJWT
	switch {
	case c.Public && secret != "":
		return c, apperr.Errorf(apperr.EINVALID, "A public client has no client_secret")
	case keyed && secret != "":
		return c, apperr.Errorf(apperr.EINVALID, "A private_key_jwt client has no client_secret: it signs with its keys")
	case keyed && c.JWKS != "":
		return c, CheckClientJWKS(c.JWKS)
	case c.Public || keyed:
		return c, nil
	case secret == "":
		return c, apperr.Errorf(apperr.EINVALID, "A confidential client needs its client_secret")
	case len(secret) < MinClientSecretBytes:
		return c, apperr.Errorf(apperr.EINVALID, "client_secret must be at least %d random characters (openssl rand -hex 32)", MinClientSecretBytes)
	}
	c.SecretHash = HashClientSecret(secret)
	return c, nil
}

// CheckDeclaredClient checks a client declared with its secret (a clients file's entry) as
// DeclareClient will store it — the secret's rule and Client.Validate — so a bad file is refused
// at start-up before anything is stored. EINVALID says what is wrong, never the secret.
func CheckDeclaredClient(c identity.Client, secret string) error {
	c, err := withClientSecret(c, secret)
	if err != nil {
		return err
	}
	return c.Validate()
}

// DeclareClient makes the stored client match c with secret (required for a confidential
// client): created when it does not exist, updated otherwise (keeping its creation time). It
// reports whether it created the client. This is how a clients file is applied at start-up.
func (s *Admin) DeclareClient(ctx context.Context, c identity.Client, secret string) (bool, error) {
	c, err := withClientSecret(c, secret)
	if err != nil {
		return false, err
	}
	if err := s.notASubject(ctx, c.ID); err != nil {
		return false, err
	}
	err = s.audited(ctx, func(ctx context.Context) error {
		_, err := s.Clients.UpdateClient(ctx, c.ID, func(cur identity.Client) (identity.Client, error) {
			next := c
			next.CreatedAt = cur.CreatedAt
			if next.SameAs(cur) {
				return cur, identity.ErrUnchanged // every start applies the file: no write, no event
			}
			return next, nil
		})
		return err
	}, s.event(ctx, identity.AuditClientUpdated, "", Success, "client "+c.ID+" updated to match the clients file"))
	if errors.Is(err, identity.ErrUnchanged) {
		return false, nil
	}
	if apperr.Code(err) == apperr.ENOTFOUND {
		_, _, err = s.RegisterClient(ctx, c, secret)
		if apperr.Code(err) == apperr.ECONFLICT {
			return s.DeclareClient(ctx, c, secret) // created meanwhile (another replica): update it
		}
		return err == nil, err
	}
	if err != nil {
		return false, err
	}
	s.Logger.InfoContext(ctx, "client updated", "client_id", c.ID)
	return false, nil
}

// notASubject refuses a client id that is some user's id: a client's own tokens carry its id as
// sub, and a resource server must not take them for that user's (RFC 9068 §5). User ids are
// 128 random bits, so a user made later will not collide with a client.
func (s *core) notASubject(ctx context.Context, id string) error {
	_, err := s.Users.GetUser(ctx, id)
	switch apperr.Code(err) {
	case apperr.ENOTFOUND:
		return nil
	case "":
		return apperr.Errorf(apperr.EINVALID, "client_id %q is a user's subject identifier; choose another", id)
	default:
		return err
	}
}

// DeleteClient removes a client and revokes every refresh family issued to it.
func (s *Admin) DeleteClient(ctx context.Context, id string) error {
	if err := s.audited(ctx, func(ctx context.Context) error { return s.Clients.DeleteClient(ctx, id) },
		s.event(ctx, identity.AuditClientDeleted, "", Success, "client "+id+"; its refresh families revoked")); err != nil {
		return err
	}
	s.Logger.InfoContext(ctx, "client deleted", "client_id", id)
	return nil
}

// GetClient returns the registered client with this id. ENOTFOUND when there is none.
func (s *core) GetClient(ctx context.Context, id string) (identity.Client, error) {
	if s.Clients == nil {
		return identity.Client{}, apperr.Errorf(apperr.ENOTFOUND, "No client %q", id)
	}
	return s.Clients.GetClient(ctx, id)
}

// ListClients returns every registered client ordered by id.
func (s *Admin) ListClients(ctx context.Context) ([]identity.Client, error) {
	if s.Clients == nil {
		return []identity.Client{}, nil
	}
	return s.Clients.ListClients(ctx)
}
