package token

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BackchannelLogoutEvent is the member of a logout token's events claim (OpenID Connect
// Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenTTL is how long a logout token is valid: its receiver checks it at once.
const LogoutTokenTTL = 2 * time.Minute

// Logout is what a logout token says: the session sid of sub ended, told to client.
type Logout struct {
	ClientID  string // aud
	Subject   string
	SessionID string // sid
	JTI       string // the same at every delivery attempt of one notice
}

// LogoutClaims is a logout token's claim set: never a nonce.
type LogoutClaims struct {
	jwt.RegisteredClaims
	SID    string                    `json:"sid,omitempty"`
	Events map[string]map[string]any `json:"events"`
}

// LogoutToken returns a signed logout token (typ logout+jwt, RS256 with the current key) saying
// l, issued now: iss, aud [client], iat, exp, jti, sub, sid and events.
func (i *Issuer) LogoutToken(l Logout) (string, error) {
	now := i.Now().Truncate(time.Second)
	c := LogoutClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.Issuer,
			Subject:   l.Subject,
			Audience:  jwt.ClaimStrings{l.ClientID},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(LogoutTokenTTL)),
			ID:        l.JTI,
		},
		SID:    l.SessionID,
		Events: map[string]map[string]any{BackchannelLogoutEvent: {}},
	}
	signed, err := i.sign("logout+jwt", c)
	if err != nil {
		return "", fmt.Errorf("sign logout token: %w", err)
	}
	return signed, nil
}
