package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// regTokens are the initial access tokens, kept by their hash (never shown in errors).
var regTokens = table[identity.RegistrationToken]{bucket: bucketRegTokens, name: "registration token",
	missing: identity.ErrRegistrationToken, taken: apperr.Errorf(apperr.ECONFLICT, "Registration token taken"), hideKeys: true,
	utc: func(t *identity.RegistrationToken) { t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC() }}

// CreateRegistrationToken implements identity.RegistrationTokenStore.
func (s *DB) CreateRegistrationToken(ctx context.Context, t identity.RegistrationToken) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error { return regTokens.create(tx, t.Hash, t) })
}

// SpendRegistrationToken implements identity.RegistrationTokenStore: read, decided by
// RegistrationToken.Spend and written back (or deleted) in one write transaction.
func (s *DB) SpendRegistrationToken(ctx context.Context, hash string, now time.Time) (identity.RegistrationToken, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.RegistrationToken, error) {
		old, err := regTokens.get(tx, hash)
		if err != nil {
			return old, err
		}
		next, keep, err := old.Spend(now)
		if err != nil {
			return identity.RegistrationToken{}, err
		}
		if !keep {
			return next, regTokens.delete(tx, hash)
		}
		return regTokens.store(tx, hash, next)
	})
}

// DeleteDeadRegistrationTokens implements identity.RegistrationTokenStore.
func (s *DB) DeleteDeadRegistrationTokens(_ context.Context, now time.Time) (int, error) {
	return deleteAll(s, regTokens, func(t identity.RegistrationToken) bool { return !now.Before(t.ExpiresAt) },
		func(tx *bolt.Tx, t identity.RegistrationToken) error { return regTokens.delete(tx, t.Hash) })
}
