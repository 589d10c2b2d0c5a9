package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var authRequests = table[identity.AuthRequest]{bucket: bucketAuthReqs, name: "authorization request",
	missing: apperr.Errorf(apperr.ENOTFOUND, "Authorization request not found"),
	taken:   apperr.Errorf(apperr.ECONFLICT, "Authorization request id already taken"),
	utc: func(r *identity.AuthRequest) {
		r.SignInAfter, r.CreatedAt, r.ExpiresAt = r.SignInAfter.UTC(), r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	}}

// CreateAuthRequest implements identity.AuthRequestStore. Batched, as codes are: every sign-in
// through an application stores one.
func (s *DB) CreateAuthRequest(ctx context.Context, r identity.AuthRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return s.batch(ctx, func(tx *bolt.Tx) error { return authRequests.create(tx, r.ID, r) })
}

// GetAuthRequest implements identity.AuthRequestStore.
func (s *DB) GetAuthRequest(ctx context.Context, id string) (identity.AuthRequest, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.AuthRequest, error) { return authRequests.get(tx, id) })
}

// UpdateAuthRequest implements identity.AuthRequestStore. Batched: fn decides from what the
// transaction read, so a re-run is safe; a refusal writes nothing and fails no batch.
func (s *DB) UpdateAuthRequest(ctx context.Context, id string, fn func(identity.AuthRequest) (identity.AuthRequest, error)) (identity.AuthRequest, error) {
	var refused error
	out, err := result(ctx, s.batch, func(tx *bolt.Tx) (identity.AuthRequest, error) {
		refused = nil
		r, err := authRequests.update(tx, id, func(old identity.AuthRequest) (identity.AuthRequest, error) { return old.ApplyUpdate(fn) })
		if err != nil {
			refused = err
			return identity.AuthRequest{}, errNoChange
		}
		return r, nil
	})
	if err != nil {
		return identity.AuthRequest{}, err
	}
	if refused != nil {
		return identity.AuthRequest{}, refused
	}
	return out, nil
}

// DeleteDeadAuthRequests implements identity.AuthRequestStore: a walk of the bucket, which holds
// only the last half hour's requests.
func (s *DB) DeleteDeadAuthRequests(ctx context.Context, before time.Time) (int, error) {
	return result(ctx, s.collect, func(tx *bolt.Tx) (int, error) {
		return authRequests.deleteWhere(tx, func(r identity.AuthRequest) bool { return r.ExpiresAt.Before(before) })
	})
}
