package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoCode = apperr.Errorf(apperr.ENOTFOUND, "Authorization code not found")

var codes = table[identity.AuthCode]{bucket: bucketCodes, name: "authorization code", missing: errNoCode, hideKeys: true,
	taken: apperr.Errorf(apperr.ECONFLICT, "Authorization code already issued"),
	utc: func(c *identity.AuthCode) {
		c.AuthTime, c.CreatedAt, c.ExpiresAt = c.AuthTime.UTC(), c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	}}

// CreateCode implements identity.CodeStore.
func (s *DB) CreateCode(ctx context.Context, c identity.AuthCode) error {
	if err := c.Validate(); err != nil {
		return err
	}
	// Batched, as refreshes are: concurrent sign-ins share one commit (and one fsync).
	return s.batch(ctx, func(tx *bolt.Tx) error { return codes.create(tx, c.Hash, c) })
}

// UpdateCode implements identity.CodeStore.
func (s *DB) UpdateCode(ctx context.Context, hash string, fn func(identity.AuthCode) (identity.AuthCode, error)) (identity.AuthCode, error) {
	var out identity.AuthCode
	var refused error
	// Batched: concurrent exchanges share one commit. The closure reads what it decides on inside
	// the transaction, so a re-run is safe; a refusal writes nothing and fails no batch — a
	// client's unknown code neither.
	err := s.batch(ctx, func(tx *bolt.Tx) (err error) {
		out, refused, err = applyIn(tx, codes, hash, fn)
		return err
	})
	if err != nil {
		return identity.AuthCode{}, err
	}
	return out, refused
}

// DeleteDeadCodes implements identity.CodeStore. Codes live a minute, so a walk of the bucket
// is short.
func (s *DB) DeleteDeadCodes(ctx context.Context, before time.Time) (int, error) {
	return result(ctx, s.collect, func(tx *bolt.Tx) (int, error) {
		return codes.deleteWhere(tx, func(c identity.AuthCode) bool { return c.ExpiresAt.Before(before) })
	})
}
