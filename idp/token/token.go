// Package token issues the IdP's tokens: RS256 access tokens in the RFC 9068 profile, signed by
// the current key, and opaque refresh tokens that are stored only as a hash.
package token

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/idp/sign"
	"jwtidp/shared/jwtauth"
)

// Signer gives the current signing key's kid and its handle in the signing backend, which a
// rotation may close at any moment (sign.ErrClosed: ask again).
type Signer interface {
	SigningKey() (kid string, key sign.Key)
}

// Access is what an access token says: whom it is for, through which client, for what.
type Access struct {
	Subject  string // the user's opaque id, or the client's own id for a client's grant
	Username string // preferred_username; empty for a client
	ClientID string
	Scope    string
	Audience []string
	AMR      []string // how the user signed in (RFC 8176); none for a client
	// SessionID is the sid: the browser session or refresh family the token came from; "" for
	// none (a client's own token, an admin credential).
	SessionID string
	Groups    []string // the user's groups, on the first-party client's tokens; none otherwise
	// Act is the act claim of a token a token exchange made (RFC 8693 §4.1); nil for none.
	Act *jwtauth.Actor
	// NotAfter, when set, is the latest exp: a token exchange's never outlives its subject's.
	NotAfter time.Time
}

// accessClaims is jwtauth's claim set, but without preferred_username when there is no user: a
// client's own token (client credentials) names no user.
type accessClaims struct {
	jwtauth.Claims
	PreferredUsername string `json:"preferred_username,omitempty"`
}

// Issuer mints access tokens.
type Issuer struct {
	Issuer string
	TTL    time.Duration
	Keys   Signer
	Now    func() time.Time
	Random io.Reader
}

// Access returns a signed access token saying a, and its expiry.
func (i *Issuer) Access(a Access) (string, time.Time, error) {
	jti, err := RandomString(i.Random, 16)
	if err != nil {
		return "", time.Time{}, err
	}
	now := i.Now().Truncate(time.Second)
	exp := now.Add(i.TTL)
	if !a.NotAfter.IsZero() && a.NotAfter.Before(exp) {
		exp = a.NotAfter.Truncate(time.Second)
	}
	// One claim set for the issuer and every verifier (shared/jwtauth), so they cannot drift.
	claims := accessClaims{Claims: jwtauth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.Issuer,
			Subject:   a.Subject,
			Audience:  jwt.ClaimStrings(a.Audience),
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		ClientID: a.ClientID,
		Scope:    a.Scope,
		AMR:      a.AMR,
		Sid:      a.SessionID,
		Groups:   a.Groups,
		Act:      a.Act,
	}, PreferredUsername: a.Username}
	var buf [1024]byte
	signed, err := i.signJSON("at+jwt", claims.appendJSON(buf[:0]))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, exp, nil
}

// sign makes a compact RS256 JWS of claims (marshalled by encoding/json, as golang-jwt would)
// with header typ and the current key's kid.
func (i *Issuer) sign(typ string, claims jwt.Claims) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return i.signJSON(typ, payload)
}

// signJSON makes a compact RS256 JWS of the claims' JSON, with header typ and the current
// key's kid, signed through the key's backend, in one buffer. A key closed by a rotation
// between fetching it and signing is replaced by the new current one.
func (i *Issuer) signJSON(typ string, payload []byte) (string, error) {
	var header [128]byte
	for attempt := 0; ; attempt++ {
		kid, key := i.Keys.SigningKey()
		h := appendHeader(header[:0], kid, typ)
		enc := base64.RawURLEncoding
		// header.payload.signature, the signature's 256 bytes (RSA-2048) or however many.
		b := make([]byte, 0, enc.EncodedLen(len(h))+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
		b = enc.AppendEncode(b, h)
		b = append(b, '.')
		b = enc.AppendEncode(b, payload)
		sig, err := key.Sign(b)
		if errors.Is(err, sign.ErrClosed) && attempt < 3 {
			continue
		}
		if err != nil {
			return "", err
		}
		b = append(b, '.')
		return string(enc.AppendEncode(b, sig)), nil
	}
}

// RandomString returns n random bytes, base64url-encoded.
func RandomString(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// NewRefresh returns a new refresh token (256 random bits) and the hash it is stored under.
func NewRefresh(r io.Reader) (token, hash string, err error) {
	token, err = RandomString(r, 32)
	if err != nil {
		return "", "", err
	}
	return token, HashRefresh(token), nil
}

// HashRefresh is the form a refresh token is stored and looked up in. A plain SHA-256 suffices:
// the token has 256 random bits, so there is nothing to guess.
func HashRefresh(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
