package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): a client registered with its public
// keys (jwks, or a jwks_uri the IdP fetches) authenticates with an assertion it signs.

// AssertionType is the client_assertion_type of a signed client assertion.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionAlgs are the signatures a client assertion may have: never none, never an HMAC
// (client_secret_jwt is not offered).
var AssertionAlgs = []string{"RS256", "ES256"}

const (
	// maxAssertionLife is how far ahead of now an assertion's exp may be.
	maxAssertionLife = 5 * time.Minute
	// assertionLeeway is the clock skew allowed on exp, nbf and iat.
	assertionLeeway = 30 * time.Second
)

// assertedClient authenticates a client by its assertion: a private_key_jwt client, whose
// keys signed it (RS256 or ES256), iss = sub = its id (and client_id, when one was sent), aud
// the issuer or the URL of the endpoint it was sent to, exp present and at most
// maxAssertionLife ahead, a jti it never used before — taken in the store, so a replay is
// refused by every replica. Every refusal is ErrInvalidClient, its reason logged (never the
// assertion); a store's failure is returned as it is.
func (s *core) assertedClient(ctx context.Context, a ClientAuth) (identity.Client, error) {
	refuse := func(clientID, reason string) (identity.Client, error) {
		s.Logger.InfoContext(ctx, "client authentication failed", "client_id", clientID, "method", identity.AuthPrivateKeyJWT, "reason", reason)
		return identity.Client{}, ErrInvalidClient
	}
	if s.Assertions == nil || s.ClientKeys == nil {
		return refuse(a.ID, "client assertions are not kept")
	}
	now := s.Now()
	parser := jwt.NewParser(jwt.WithValidMethods(AssertionAlgs), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(assertionLeeway), jwt.WithTimeFunc(func() time.Time { return now }))
	var unverified jwt.RegisteredClaims
	if _, _, err := parser.ParseUnverified(a.Assertion, &unverified); err != nil {
		return refuse(a.ID, "malformed assertion")
	}
	id := unverified.Issuer // which client's keys to check it with; checked again once verified
	switch {
	case id == "":
		return refuse(a.ID, "no iss")
	case a.ID != "" && a.ID != id:
		return refuse(a.ID, "client_id differs from the assertion's iss")
	}
	c, err := s.GetClient(ctx, id)
	switch apperr.Code(err) {
	case "":
	case apperr.ENOTFOUND, apperr.EINVALID:
		return refuse("", "unknown client")
	default:
		return identity.Client{}, err
	}
	if c.TokenEndpointAuth != identity.AuthPrivateKeyJWT {
		return refuse(c.ID, "an assertion from a client not registered for private_key_jwt")
	}

	var claims jwt.RegisteredClaims
	_, err = parser.ParseWithClaims(a.Assertion, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return s.clientKey(ctx, c, kid, t.Method.Alg())
	})
	if err != nil {
		if errors.Is(err, errKeysUnavailable) {
			return refuse(c.ID, "its jwks_uri could not be read")
		}
		return refuse(c.ID, "assertion: "+err.Error())
	}
	if claims.Issuer != c.ID || claims.Subject != c.ID {
		return refuse(c.ID, "iss and sub must both be the client_id")
	}
	base := strings.TrimSuffix(s.Issuer.Issuer, "/")
	if !slices.ContainsFunc(claims.Audience, func(aud string) bool {
		return aud == s.Issuer.Issuer || aud == base || (a.Endpoint != "" && aud == base+a.Endpoint)
	}) {
		return refuse(c.ID, "aud is neither the issuer nor this endpoint")
	}
	exp := claims.ExpiresAt.Time
	if exp.After(now.Add(maxAssertionLife + assertionLeeway)) {
		return refuse(c.ID, "exp is more than 5 minutes ahead")
	}
	if claims.ID == "" {
		return refuse(c.ID, "no jti")
	}
	// Remembered as long as some clock within the leeway could still take it.
	err = s.Assertions.UseAssertion(ctx, identity.UsedAssertion{ClientID: c.ID, JTI: claims.ID, ExpiresAt: exp.Add(assertionLeeway)}, now)
	switch {
	case errors.Is(err, identity.ErrAssertionReplayed):
		return refuse(c.ID, "jti already used")
	case apperr.Code(err) == apperr.EINVALID:
		return refuse(c.ID, "jti: "+apperr.Message(err))
	case err != nil:
		return identity.Client{}, err
	}
	return c, nil
}

var errKeysUnavailable = errors.New("the client's keys could not be fetched")

// clientKey is the verification key (or keys, when the assertion names no kid) of c for alg:
// from its registered jwks, or its jwks_uri through s.ClientKeys (fetched again for a kid it
// does not know, at most every ClientKeys.MinRefresh).
func (s *core) clientKey(ctx context.Context, c identity.Client, kid, alg string) (any, error) {
	var set jose.JSONWebKeySet
	if c.JWKSURI != "" {
		var err error
		if set, err = s.ClientKeys.Keys(ctx, c.JWKSURI, kid); err != nil {
			s.Logger.WarnContext(ctx, "client jwks_uri", "client_id", c.ID, "err", err)
			return nil, errKeysUnavailable
		}
	} else {
		var err error
		if set, err = s.ClientKeys.Registered(c.JWKS); err != nil {
			return nil, err
		}
	}
	var keys []jwt.VerificationKey
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid || k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		switch pub := k.Public().Key.(type) {
		case *rsa.PublicKey:
			if alg == "RS256" && pub.N.BitLen() >= 2048 { // a jwks_uri's keys too, not only a registered jwks
				keys = append(keys, pub)
			}
		case *ecdsa.PublicKey:
			if alg == "ES256" && pub.Curve == elliptic.P256() {
				keys = append(keys, pub)
			}
		}
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("no key of the client's for kid %q and %s", kid, alg)
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// ClientKeys fetches and caches the JWKS of the clients registered with a jwks_uri: a set is
// kept TTL, and fetched again sooner for a kid it lacks (the client rotated), at most every
// MinRefresh; a fetch has Timeout and reads at most MaxBytes. Safe for concurrent use.
type ClientKeys struct {
	HTTP       *http.Client
	Now        func() time.Time
	TTL        time.Duration
	MinRefresh time.Duration
	Timeout    time.Duration
	MaxBytes   int64

	mu   sync.Mutex
	sets map[string]*cachedKeys
	// registered are clients' registered jwks documents as parsed, by the SHA-256 of their
	// text: read once, not at every assertion (a changed registration is another text).
	registered map[[32]byte]jose.JSONWebKeySet
}

// maxRegisteredSets bounds the parsed registered documents kept; past it the cache starts over.
const maxRegisteredSets = 1024

// Registered returns the key set of a registered jwks document, parsed once.
func (k *ClientKeys) Registered(doc string) (jose.JSONWebKeySet, error) {
	h := sha256.Sum256([]byte(doc))
	k.mu.Lock()
	set, ok := k.registered[h]
	k.mu.Unlock()
	if ok {
		return set, nil
	}
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("the registered jwks cannot be read")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.registered == nil || len(k.registered) >= maxRegisteredSets {
		k.registered = map[[32]byte]jose.JSONWebKeySet{}
	}
	k.registered[h] = set
	return set, nil
}

type cachedKeys struct {
	mu      sync.Mutex // held through a fetch: one fetch per URI at a time
	keys    jose.JSONWebKeySet
	fetched time.Time // of the keys; zero: none yet
	tried   time.Time // the last fetch, failed or not
}

// NewClientKeys is a cache with the defaults: 5 minutes, a fetch at most every 5 seconds,
// 5 seconds per fetch, 64 KiB.
func NewClientKeys(now func() time.Time) *ClientKeys {
	// Redirects are not followed: a jwks_uri is fetched where it was registered, never where
	// its server sends the IdP (inside its own network, say).
	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &ClientKeys{HTTP: &http.Client{CheckRedirect: noRedirects}, Now: now, TTL: 5 * time.Minute, MinRefresh: 5 * time.Second,
		Timeout: 5 * time.Second, MaxBytes: 64 << 10}
}

// Keys returns the set at uri: the cached one while it is fresh and has kid ("" any), else a
// fetched one. While a new fetch is not yet allowed (MinRefresh), the cached set is returned,
// however old; a fetch that fails returns the cached set only while it is fresh.
func (k *ClientKeys) Keys(ctx context.Context, uri, kid string) (jose.JSONWebKeySet, error) {
	k.mu.Lock()
	if k.sets == nil {
		k.sets = map[string]*cachedKeys{}
	}
	e := k.sets[uri]
	if e == nil {
		e = &cachedKeys{}
		k.sets[uri] = e
	}
	k.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := k.Now()
	fresh := !e.fetched.IsZero() && now.Sub(e.fetched) < k.TTL
	if fresh && (kid == "" || len(e.keys.Key(kid)) > 0) {
		return e.keys, nil
	}
	if !e.tried.IsZero() && now.Sub(e.tried) < k.MinRefresh {
		if e.fetched.IsZero() {
			return jose.JSONWebKeySet{}, errors.New("the last fetch failed; not asking again yet")
		}
		return e.keys, nil
	}
	e.tried = now
	set, err := k.fetch(ctx, uri)
	if err != nil {
		if fresh {
			return e.keys, nil
		}
		return jose.JSONWebKeySet{}, err
	}
	e.keys, e.fetched = set, now
	return set, nil
}

func (k *ClientKeys) fetch(ctx context.Context, uri string) (jose.JSONWebKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, k.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	req.Header.Set("Accept", "application/json")
	client := k.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jose.JSONWebKeySet{}, fmt.Errorf("GET %s: %s", uri, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, k.MaxBytes+1))
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	if int64(len(body)) > k.MaxBytes {
		return jose.JSONWebKeySet{}, fmt.Errorf("GET %s: over %d bytes", uri, k.MaxBytes)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("GET %s: not a JWKS: %w", uri, err)
	}
	return set, nil
}

// CheckClientJWKS checks a private_key_jwt client's registered jwks: a JWKS document of public
// keys only, at least one of them one an assertion can be checked with (RSA of 2048 bits or
// more, or EC P-256). EINVALID.
func CheckClientJWKS(doc string) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return apperr.Errorf(apperr.EINVALID, "jwks is not a JWKS document of keys it can read (RSA or EC P-256)")
	}
	usable := false
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return apperr.Errorf(apperr.EINVALID, "jwks must hold public keys only: keep the private key %q to the client", k.KeyID)
		}
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			usable = usable || pub.N.BitLen() >= 2048
		case *ecdsa.PublicKey:
			usable = usable || pub.Curve == elliptic.P256()
		}
	}
	if !usable {
		return apperr.Errorf(apperr.EINVALID, "jwks needs an RSA key of 2048 bits or more, or an EC P-256 key")
	}
	return nil
}
