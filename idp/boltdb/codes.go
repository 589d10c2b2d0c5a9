package boltdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoCode = apperr.Errorf(apperr.ENOTFOUND, "Authorization code not found")

func decodeCode(data []byte) (identity.AuthCode, error) {
	var c identity.AuthCode
	err := json.Unmarshal(data, &c)
	c.AuthTime, c.CreatedAt, c.ExpiresAt = c.AuthTime.UTC(), c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	return c, err
}

// putCode stores c and returns it as every later read sees it.
func putCode(tx *bolt.Tx, c identity.AuthCode) (identity.AuthCode, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	if err := tx.Bucket(bucketCodes).Put([]byte(c.Hash), data); err != nil {
		return c, err
	}
	return decodeCode(data)
}

// CreateCode implements identity.CodeStore.
func (s *DB) CreateCode(ctx context.Context, c identity.AuthCode) error {
	if err := c.Validate(); err != nil {
		return err
	}
	// Batched, as refreshes are: concurrent sign-ins share one commit (and one fsync).
	return s.batch(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketCodes).Get([]byte(c.Hash)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "Authorization code already issued")
		}
		_, err := putCode(tx, c)
		return err
	})
}

// UpdateCode implements identity.CodeStore.
func (s *DB) UpdateCode(ctx context.Context, hash string, fn func(identity.AuthCode) (identity.AuthCode, error)) (identity.AuthCode, error) {
	var stored, out identity.AuthCode
	var fnErr error
	var missing bool
	// Batched: concurrent exchanges share one commit. The closure reads what it decides on inside
	// the transaction, so a re-run is safe; fn's refusal writes nothing and fails no batch.
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		fnErr, missing = nil, false
		data := tx.Bucket(bucketCodes).Get([]byte(hash))
		if data == nil {
			missing = true // a client's unknown code must not fail (and re-run) the others' batch
			return errNoChange
		}
		var err error
		if stored, err = decodeCode(data); err != nil {
			return fmt.Errorf("read authorization code: %w", err)
		}
		// fn is given a copy of its own: what it does to the lists must not reach stored.
		given, err := decodeCode(data)
		if err != nil {
			return err
		}
		if out, fnErr = fn(given); fnErr != nil {
			return errNoChange
		}
		if err := stored.CheckUpdate(out); err != nil {
			return err
		}
		out, err = putCode(tx, out)
		return err
	})
	switch {
	case err == nil && missing:
		return identity.AuthCode{}, errNoCode
	case fnErr != nil:
		return stored, fnErr // nothing changed: the code as stored, for a caller acting on a replay
	case err != nil:
		return identity.AuthCode{}, err
	}
	return out, nil
}

// DeleteDeadCodes implements identity.CodeStore. Codes live a minute, so a walk of the bucket
// is short.
func (s *DB) DeleteDeadCodes(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := s.Update(func(tx *bolt.Tx) error {
		var err error
		n, err = deleteCodes(tx, func(c identity.AuthCode) bool { return c.ExpiresAt.Before(before) })
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// deleteCodes removes every code for which dead is true (expired, a user's, a client's) and
// returns how many.
func deleteCodes(tx *bolt.Tx, dead func(identity.AuthCode) bool) (int, error) {
	codes := tx.Bucket(bucketCodes)
	var hashes [][]byte
	err := codes.ForEach(func(k, v []byte) error {
		c, err := decodeCode(v)
		if err != nil {
			return fmt.Errorf("read authorization code: %w", err)
		}
		if dead(c) {
			hashes = append(hashes, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Deleted after the walk: a bucket must not change under its ForEach.
	for _, h := range hashes {
		if err := codes.Delete(h); err != nil {
			return 0, err
		}
	}
	return len(hashes), nil
}
