package boltdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FamilyTokenHashes returns the hashes of every refresh token the family issued, its live one
// among them, sorted: what `idp store copy` needs so that an old token presented after a move
// is still recognised as reuse.
func (s *DB) FamilyTokenHashes(ctx context.Context, familyID string) ([]string, error) {
	var out []string
	err := s.DB.View(func(tx *bolt.Tx) (err error) {
		out, err = familyHashes(tx, familyID)
		return err
	})
	if out == nil {
		out = []string{}
	}
	return out, err
}

// Secrets returns every secret the IdP keeps (the browser key and the like), by name.
func (s *DB) Secrets(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSecrets).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// OpenExisting opens the store in dir like Open, but refuses a folder that holds no IdP store
// rather than creating one: a copy from a mistyped path must fail, not copy nothing.
func OpenExisting(dir string, lockTimeout time.Duration) (*DB, error) {
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		return nil, fmt.Errorf("%s holds no IdP store (%s): %w", dir, FileName, err)
	}
	return Open(dir, lockTimeout)
}
