package boltdb

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
)

// signingKeys are kept by ID, so bbolt's order is the IDs'.
var signingKeys = table[identity.SigningKey]{bucket: bucketKeys, name: "key",
	utc: func(k *identity.SigningKey) {
		k.CreatedAt, k.SignsFrom = k.CreatedAt.UTC(), k.SignsFrom.UTC()
		k.RetiredAt, k.DeleteAt = k.RetiredAt.UTC(), k.DeleteAt.UTC()
	}}

// Keys implements identity.KeyStore.
func (s *DB) Keys(ctx context.Context) ([]identity.SigningKey, error) {
	return result(ctx, s.view, signingKeys.list)
}

// UpdateKeys implements identity.KeyStore: the stored set is replaced by update's result.
func (s *DB) UpdateKeys(ctx context.Context, update func([]identity.SigningKey) ([]identity.SigningKey, error)) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		old, err := signingKeys.list(tx)
		if err != nil {
			return err
		}
		next, gone, err := identity.ApplyKeys(old, update)
		if err != nil {
			return err
		}
		for _, k := range next {
			if err := signingKeys.put(tx, k.ID, k); err != nil {
				return err
			}
		}
		for _, id := range gone {
			if err := signingKeys.delete(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
}
