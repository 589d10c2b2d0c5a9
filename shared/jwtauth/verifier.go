// Package jwtauth verifies the IdP's RS256 access tokens for any Go service: a Verifier over a
// key source, HTTP middleware with RFC 6750 answers, scope checks and context accessors. Keys
// come from the issuer's JWKS through RemoteKeys (keyfunc/v3); header parameters that point at
// keys (jku, x5u, jwk, x5c) are never followed.
package jwtauth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenBytes caps the Authorization value before any parsing.
const MaxTokenBytes = 8 << 10

// Claims are the access-token claims a service may rely on once verified.
type Claims struct {
	jwt.RegisteredClaims
	ClientID          string `json:"client_id"`
	Scope             string `json:"scope"`
	PreferredUsername string `json:"preferred_username"`
	// AMR says how the user signed in (RFC 8176): "pwd"; "pwd", "otp", "mfa" with a one-time
	// code. None on a client's own token.
	AMR []string `json:"amr,omitempty"`
	// Sid names the browser session or refresh family the token came from (the id the IdP's
	// GET /account/sessions lists): a handle, not a secret. None on a client's own token.
	Sid string `json:"sid,omitempty"`
	// Groups are the user's groups when the token was issued, on the IdP's own tokens (its
	// first-party client's); none otherwise. A service that needs a role should check a scope
	// limited to a group instead: a relying party's token carries that too.
	Groups []string `json:"groups,omitempty"`
	// Act is the actor a token exchange (RFC 8693 §4.1) made the token for: the client that
	// acts for sub, with the actor before it nested inside. None on a token nobody exchanged.
	Act *Actor `json:"act,omitempty"`
}

// Actor is RFC 8693 §4.1's act claim: who acts, and the actor of the token it exchanged.
type Actor struct {
	Subject string `json:"sub"`
	Act     *Actor `json:"act,omitempty"`
}

// Chain is the actors' subjects, the current one first; none for a nil Actor.
func (a *Actor) Chain() []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Subject)
	}
	return out
}

// HasScope reports whether the token grants scope.
func (c *Claims) HasScope(scope string) bool {
	return slices.Contains(strings.Fields(c.Scope), scope)
}

// HasAMR reports whether the user signed in with method (an RFC 8176 value: "mfa", "otp"…).
func (c *Claims) HasAMR(method string) bool { return slices.Contains(c.AMR, method) }

// KeySource finds the public key for a kid.
type KeySource interface {
	// Key returns the RSA public key published under kid. It returns an error wrapping
	// ErrUnknownKey when there is none, and ErrKeysUnavailable when no keys are known yet.
	Key(ctx context.Context, kid string) (*rsa.PublicKey, error)
}

var (
	// ErrNoToken: the request carries no access token.
	ErrNoToken = errors.New("no access token")
	// ErrInvalidToken: the token is malformed, forged, expired or not for us.
	ErrInvalidToken = errors.New("invalid access token")
	// ErrUnknownKey: no published key has the token's kid.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrKeysUnavailable: the issuer's keys could not be loaded yet.
	ErrKeysUnavailable = errors.New("identity provider unavailable")
)

// Config configures a Verifier.
type Config struct {
	Issuer   string        // required: iss must equal it
	Audience string        // aud must contain it; "" skips the check (the IdP's own endpoints)
	Leeway   time.Duration // clock skew allowed on exp, nbf and iat
	Keys     KeySource
	Now      func() time.Time // defaults to time.Now
	// CacheSize bounds the verified-token cache; 0 turns it off. The cache is only used when
	// Keys is Generational, so that it can forget tokens whose key has left the set.
	CacheSize int
}

// Verifier checks access tokens.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	cache  *tokenCache
	gen    Generational
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) *Verifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v := &Verifier{cfg: cfg, parser: jwt.NewParser(opts...)}
	if g, ok := cfg.Keys.(Generational); ok {
		v.gen, v.cache = g, newTokenCache(cfg.CacheSize)
	}
	return v
}

// Verify checks raw and returns its claims. Errors wrap ErrInvalidToken, or ErrKeysUnavailable
// when the answer cannot be known yet.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" {
		return nil, ErrNoToken
	}
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	var gen uint64
	if v.cache != nil {
		gen = v.gen.Generation()
		if c, ok := v.cache.get(raw, gen, v.cfg.Now()); ok {
			return c, nil
		}
	}
	var claims Claims
	var keyErr error
	_, err := v.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
			return nil, errors.New("typ is not at+jwt")
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("crit header not supported")
		}
		kid, ok := t.Header["kid"].(string)
		if !ok || kid == "" {
			return nil, errors.New("no kid")
		}
		key, err := v.cfg.Keys.Key(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return key, nil
	})
	if errors.Is(keyErr, ErrKeysUnavailable) {
		return nil, ErrKeysUnavailable
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", ErrInvalidToken)
	}
	if v.cache != nil {
		// Never past exp (with the same leeway the parser allows), never past a key change.
		v.cache.put(raw, &claims, claims.ExpiresAt.Add(v.cfg.Leeway), gen, v.cfg.Now())
	}
	return &claims, nil
}

// LocalKeys is a KeySource over keys held in this process (the IdP's own), with a generation
// that changes whenever they do, so the verified-token cache can be used with them.
type LocalKeys struct {
	Lookup func(kid string) (*rsa.PublicKey, bool)
	Gen    func() uint64
}

// Key implements KeySource.
func (l LocalKeys) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	return StaticKeys(l.Lookup).Key(ctx, kid)
}

// Generation implements Generational.
func (l LocalKeys) Generation() uint64 { return l.Gen() }

// StaticKeys is a KeySource over a fixed or locally managed set, such as the IdP's own keys.
type StaticKeys func(kid string) (*rsa.PublicKey, bool)

// Key implements KeySource.
func (f StaticKeys) Key(_ context.Context, kid string) (*rsa.PublicKey, error) {
	if k, ok := f(kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}
