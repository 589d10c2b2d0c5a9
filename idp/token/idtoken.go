package token

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ID is what an ID token says (OpenID Connect Core §2): who signed in, to which client, when and
// how, in which session.
type ID struct {
	Subject     string
	ClientID    string // aud and azp
	Nonce       string // "" when the request had none
	AuthTime    time.Time
	AMR         []string
	IDP         string // the connector an upstream sign-in went through: the idp claim
	ACR         string // the class the sign-in achieved (OpenID Connect Core §2); "" for none
	SessionID   string // sid
	AccessToken string // issued with it: at_hash is computed from it; "" for none
	// With scope profile, email and groups.
	Username      string
	Email         string
	EmailVerified *bool
	Groups        []string
}

// IDClaims is an ID token's claim set.
type IDClaims struct {
	jwt.RegisteredClaims
	AuthTime          *jwt.NumericDate `json:"auth_time,omitempty"`
	Nonce             string           `json:"nonce,omitempty"`
	AtHash            string           `json:"at_hash,omitempty"`
	AMR               []string         `json:"amr,omitempty"`
	ACR               string           `json:"acr,omitempty"`
	IDP               string           `json:"idp,omitempty"`
	SID               string           `json:"sid,omitempty"`
	AZP               string           `json:"azp,omitempty"`
	PreferredUsername string           `json:"preferred_username,omitempty"`
	Email             string           `json:"email,omitempty"`
	EmailVerified     *bool            `json:"email_verified,omitempty"`
	Groups            []string         `json:"groups,omitempty"`
}

// IDToken returns a signed ID token saying id, valid for ttl. The header is
// {"alg":"RS256","typ":"JWT","kid"}; aud is [client], azp the client.
func (i *Issuer) IDToken(id ID, ttl time.Duration) (string, error) {
	now := i.Now().Truncate(time.Second)
	c := IDClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.Issuer,
			Subject:   id.Subject,
			Audience:  jwt.ClaimStrings{id.ClientID},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		Nonce: id.Nonce, AMR: id.AMR, ACR: id.ACR, IDP: id.IDP, SID: id.SessionID, AZP: id.ClientID,
		PreferredUsername: id.Username, Email: id.Email, EmailVerified: id.EmailVerified, Groups: id.Groups,
	}
	if !id.AuthTime.IsZero() {
		c.AuthTime = jwt.NewNumericDate(id.AuthTime)
	}
	if id.AccessToken != "" {
		c.AtHash = AtHash(id.AccessToken)
	}
	signed, err := i.sign("JWT", c)
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	return signed, nil
}

// AtHash is OpenID Connect Core §3.1.3.6's at_hash for an RS256 token: the left half of the
// SHA-256 of the access token's ASCII, base64url without padding.
func AtHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// PublicKeys finds a published key by kid: the key manager's lookup.
type PublicKeys func(kid string) (*rsa.PublicKey, bool)

// ErrBadHint is every id_token_hint that is not an ID token this IdP signed.
var ErrBadHint = errors.New("id_token_hint is not an ID token of this issuer")

// ParseIDTokenHint reads an id_token_hint (OpenID Connect RP-Initiated Logout 1.0 §2): an ID
// token this issuer signed with a key it still publishes. An expired one is accepted, as the
// specification allows; the signature, alg, typ and iss are not negotiable.
func (i *Issuer) ParseIDTokenHint(raw string, keys PublicKeys) (IDClaims, error) {
	var c IDClaims
	t, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "JWT" {
			return nil, ErrBadHint
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := keys(kid)
		if !ok {
			return nil, ErrBadHint
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	// WithoutClaimsValidation skips every claim check (exp among them, as wanted): iss by hand.
	if err != nil || !t.Valid || c.Issuer != i.Issuer || c.Subject == "" || len(c.Audience) != 1 {
		return IDClaims{}, ErrBadHint
	}
	return c, nil
}
