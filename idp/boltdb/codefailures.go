package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
)

// UpdateCodeFailures implements identity.CodeFailureStore, in one write transaction (bbolt has
// one writer at a time, so concurrent updates see each other's counts). A result equal to what
// is stored writes nothing.
func (s *DB) UpdateCodeFailures(ctx context.Context, userID string, fn func(identity.ThrottleCounter) identity.ThrottleCounter) (identity.ThrottleCounter, error) {
	var out identity.ThrottleCounter
	err := s.write(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCodeFails)
		var old identity.ThrottleCounter
		if _, err := get(b, userID, &old); err != nil {
			return err
		}
		out = fn(old)
		out.First, out.Until, out.Last, out.Touched = out.First.UTC(), out.Until.UTC(), out.Last.UTC(), out.Touched.UTC()
		switch {
		case out == old:
			return nil
		case out == (identity.ThrottleCounter{}):
			return b.Delete([]byte(userID))
		default:
			return put(b, userID, out)
		}
	})
	if err != nil {
		return identity.ThrottleCounter{}, err
	}
	return out, nil
}

// DeleteStaleCodeFailures implements identity.CodeFailureStore.
func (s *DB) DeleteStaleCodeFailures(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketCodeFails)
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var c identity.ThrottleCounter
			if _, err := get(b, string(k), &c); err != nil {
				return err
			}
			if c.Touched.Before(before) {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(stale)
		return nil
	})
	return n, err
}
