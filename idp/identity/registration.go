package identity

import (
	"context"
	"time"

	"jwtidp/shared/apperr"
)

// RegistrationToken is an initial access token for dynamic client registration (RFC 7591 §3),
// as the IdP keeps it: only the SHA-256 of the random token an admin was shown, its expiry and
// how many registrations it may still make. A use is decided and counted in one transaction
// (RegistrationTokenStore.SpendRegistrationToken), so two replicas cannot both spend its last.
type RegistrationToken struct {
	ID        string // random; what a registered client's RegisteredBy names
	Hash      string // SHA-256 of the token
	CreatedAt time.Time
	ExpiresAt time.Time
	UsesLeft  int
}

// RegisteredByOpen is the RegisteredBy of a client registered without an initial access token
// (--registration open); RegisteredByToken that of one registered with one.
const RegisteredByOpen = "registration:open"

// RegisteredByToken is the RegisteredBy of a client registered with the initial access token id.
func RegisteredByToken(id string) string { return "registration:" + id }

// ErrRegistrationToken is the one answer for an initial access token that is unknown, expired or
// used up: the caller learns nothing about which.
var ErrRegistrationToken = apperr.Errorf(apperr.EUNAUTHORIZED, "The initial access token is invalid")

// Validate checks a token's invariants before it is stored. EINVALID.
func (t RegistrationToken) Validate() error {
	if t.ID == "" || t.Hash == "" || t.CreatedAt.IsZero() || t.ExpiresAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "Registration token: id, hash, creation and expiry are required")
	}
	if !nameChars(t.ID) || len(t.ID) > 64 {
		return apperr.Errorf(apperr.EINVALID, "Registration token: the id is letters, digits, '.', '_' and '-'")
	}
	if t.UsesLeft < 1 {
		return apperr.Errorf(apperr.EINVALID, "Registration token: at least one use")
	}
	if !t.ExpiresAt.After(t.CreatedAt) {
		return apperr.Errorf(apperr.EINVALID, "Registration token: it must expire after it is made")
	}
	return nil
}

// Spend is t after one use at now, which every store decides inside its transaction from t as
// it read it: ErrRegistrationToken when t has expired or has no use left. Keep (false) says the
// spent token is to be deleted instead of stored (its last use).
func (t RegistrationToken) Spend(now time.Time) (next RegistrationToken, keep bool, err error) {
	if t.UsesLeft < 1 || !now.Before(t.ExpiresAt) {
		return t, false, ErrRegistrationToken
	}
	t.UsesLeft--
	return t, t.UsesLeft > 0, nil
}

// RegistrationTokenStore keeps initial access tokens.
type RegistrationTokenStore interface {
	// CreateRegistrationToken stores t. EINVALID when t breaks Validate; ECONFLICT when its
	// hash is taken.
	CreateRegistrationToken(ctx context.Context, t RegistrationToken) error
	// SpendRegistrationToken spends one use of the token with this hash at now, in one
	// transaction (RegistrationToken.Spend: the last use deletes it), and returns it after the
	// use. ErrRegistrationToken when there is none, it has expired or it has no use left.
	SpendRegistrationToken(ctx context.Context, hash string, now time.Time) (RegistrationToken, error)
	// DeleteDeadRegistrationTokens removes the tokens expired at now; it returns how many.
	DeleteDeadRegistrationTokens(ctx context.Context, now time.Time) (int, error)
}
