package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
)

// codeFailures are kept by user id; a user without one reads as the zero counter.
var codeFailures = table[identity.ThrottleCounter]{bucket: bucketCodeFails, name: "code failures",
	utc: func(c *identity.ThrottleCounter) {
		c.First, c.Until, c.Last, c.Touched = c.First.UTC(), c.Until.UTC(), c.Last.UTC(), c.Touched.UTC()
	}}

// UpdateCodeFailures implements identity.CodeFailureStore, in one write transaction (bbolt has
// one writer at a time, so concurrent updates see each other's counts). A result equal to what
// is stored writes nothing (identity.WriteCounter).
func (s *DB) UpdateCodeFailures(ctx context.Context, userID string, fn func(identity.ThrottleCounter) identity.ThrottleCounter) (identity.ThrottleCounter, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.ThrottleCounter, error) {
		old, err := codeFailures.get(tx, userID)
		if err != nil {
			return old, err
		}
		out := fn(old)
		codeFailures.utc(&out)
		switch identity.WriteCounter(old, out) {
		case identity.CounterDelete:
			return out, codeFailures.delete(tx, userID)
		case identity.CounterStore:
			return out, codeFailures.put(tx, userID, out)
		}
		return out, nil
	})
}

// DeleteStaleCodeFailures implements identity.CodeFailureStore.
func (s *DB) DeleteStaleCodeFailures(ctx context.Context, before time.Time) (int, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (int, error) {
		return codeFailures.deleteWhere(tx, func(c identity.ThrottleCounter) bool { return c.Touched.Before(before) })
	})
}
