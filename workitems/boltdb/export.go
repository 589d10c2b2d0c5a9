package boltdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/workitems/workitem"
)

// Export calls fn with every item of every owner (by owner, then id), and returns the id
// sequence: the largest id ever handed out, deleted items' included, so that a copy of the
// store never hands one out again. It reads one consistent snapshot.
func (s *DB) Export(ctx context.Context, fn func(workitem.Item) error) (sequence uint64, err error) {
	err = s.DB.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketItems)
		sequence = root.Sequence()
		return root.ForEachBucket(func(owner []byte) error {
			return root.Bucket(owner).ForEach(func(k, v []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				it, err := decodeItem(binary.BigEndian.Uint64(k), string(owner), v)
				if err != nil {
					return err
				}
				return fn(it)
			})
		})
	})
	return sequence, err
}

// OpenExisting opens the store in dir like Open, but refuses a folder that holds no store
// rather than creating one: a copy from a mistyped path must fail, not copy nothing.
func OpenExisting(dir string, lockTimeout time.Duration) (*DB, error) {
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		return nil, fmt.Errorf("%s holds no work-item store (%s): %w", dir, FileName, err)
	}
	return Open(dir, lockTimeout)
}
