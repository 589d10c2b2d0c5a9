package boltdb

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoAssertion = apperr.Errorf(apperr.ENOTFOUND, "Assertion not found")

// assertions are kept by client id + "\x00" + jti.
var assertions = table[identity.UsedAssertion]{bucket: bucketAssertions, name: "used assertion", missing: errNoAssertion,
	utc: func(a *identity.UsedAssertion) { a.ExpiresAt = a.ExpiresAt.UTC() }}

func assertionKey(clientID, jti string) string { return clientID + "\x00" + jti }

// UseAssertion implements identity.AssertionStore in one write transaction (bbolt has one
// writer at a time, so two uses of one jti see each other).
func (s *DB) UseAssertion(ctx context.Context, a identity.UsedAssertion, now time.Time) error {
	if err := a.Validate(); err != nil {
		return err
	}
	a.ExpiresAt = a.ExpiresAt.UTC()
	key := assertionKey(a.ClientID, a.JTI)
	return s.write(ctx, func(tx *bolt.Tx) error {
		old, err := assertions.get(tx, key)
		switch {
		case err == nil && old.Live(now):
			return identity.ErrAssertionReplayed
		case err != nil && !errors.Is(err, errNoAssertion):
			return err
		}
		return assertions.put(tx, key, a)
	})
}

// DeleteExpiredAssertions implements identity.AssertionStore.
func (s *DB) DeleteExpiredAssertions(_ context.Context, now time.Time) (int, error) {
	return deleteAll(s, assertions, func(a identity.UsedAssertion) bool { return !a.Live(now) },
		func(tx *bolt.Tx, a identity.UsedAssertion) error {
			return assertions.delete(tx, assertionKey(a.ClientID, a.JTI))
		})
}
