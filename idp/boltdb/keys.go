package boltdb

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Keys implements identity.KeyStore.
func (s *DB) Keys(ctx context.Context) ([]identity.SigningKey, error) {
	var keys []identity.SigningKey
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		keys, err = readKeys(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// readKeys reads every key in bbolt's order, which is the ID's.
func readKeys(tx *bolt.Tx) ([]identity.SigningKey, error) {
	keys := []identity.SigningKey{}
	err := tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
		var key identity.SigningKey
		if err := json.Unmarshal(v, &key); err != nil {
			return fmt.Errorf("read key %s: %w", k, err)
		}
		key.CreatedAt, key.SignsFrom = key.CreatedAt.UTC(), key.SignsFrom.UTC()
		key.RetiredAt, key.DeleteAt = key.RetiredAt.UTC(), key.DeleteAt.UTC()
		keys = append(keys, key)
		return nil
	})
	return keys, err
}

// UpdateKeys implements identity.KeyStore: the stored set is replaced by update's result.
func (s *DB) UpdateKeys(ctx context.Context, update func([]identity.SigningKey) ([]identity.SigningKey, error)) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		keys, err := readKeys(tx)
		if err != nil {
			return err
		}
		next, err := update(keys)
		if err != nil {
			return err
		}
		keep := map[string]bool{}
		for _, k := range next {
			if k.ID == "" || keep[k.ID] {
				return apperr.Errorf(apperr.EINVALID, "Signing keys: every key needs an id of its own")
			}
			keep[k.ID] = true
		}
		b := tx.Bucket(bucketKeys)
		for _, k := range next {
			if err := put(b, k.ID, k); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if !keep[k.ID] {
				if err := b.Delete([]byte(k.ID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
