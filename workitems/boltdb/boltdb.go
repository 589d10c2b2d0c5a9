// Package boltdb keeps work items in a bbolt file: one nested bucket per owner, keyed by the
// big-endian id, so a user's items list in creation order and another user's are out of reach.
package boltdb

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/shared/apperr"
	"jwtidp/shared/boltfile"
	"jwtidp/workitems/workitem"
)

// FileName is the bbolt file inside the data folder.
const FileName = "workitems.db"

var bucketItems = []byte("items") // sequence for ids; owner → (id → Item)

// DB implements workitem.Store.
type DB struct{ boltfile.Store }

var _ workitem.Store = (*DB)(nil)

// Open opens (creating if needed) the store in dir (0700, file 0600). A second process on the
// same folder gets an error naming it after lockTimeout.
func Open(dir string, lockTimeout time.Duration) (*DB, error) {
	db, err := boltfile.Open(dir, FileName, lockTimeout, bucketItems)
	if err != nil {
		return nil, err
	}
	return &DB{Store: boltfile.NewStore(db)}, nil
}

func key(id uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return b[:]
}

// Items are stored in a small binary form, not JSON: listing decodes every item of a page, and
// generic JSON decoding was most of that work. Layout: version (1), done (1), created and
// updated as Unix nanoseconds (8 + 8, big-endian), then the title's bytes. The id is the key and
// the owner the bucket.
const encodingV1 = 1

func encodeItem(it workitem.Item) []byte {
	b := make([]byte, 18, 18+len(it.Title))
	b[0] = encodingV1
	if it.Done {
		b[1] = 1
	}
	binary.BigEndian.PutUint64(b[2:], uint64(it.CreatedAt.UnixNano()))
	binary.BigEndian.PutUint64(b[10:], uint64(it.UpdatedAt.UnixNano()))
	return append(b, it.Title...)
}

// decodeItem copies what it needs out of data (which bbolt owns).
func decodeItem(id uint64, owner string, data []byte) (workitem.Item, error) {
	if len(data) < 18 || data[0] != encodingV1 {
		return workitem.Item{}, fmt.Errorf("item %d: unknown encoding", id)
	}
	return workitem.Item{
		ID: id, Owner: owner, Done: data[1] == 1, Title: string(data[18:]),
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(data[2:]))).UTC(),
		UpdatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(data[10:]))).UTC(),
	}, nil
}

func notFound() error { return apperr.Errorf(apperr.ENOTFOUND, "Work item not found") }

// Create implements workitem.Store.
func (s *DB) Create(ctx context.Context, it workitem.Item) (workitem.Item, error) {
	if err := it.Validate(); err != nil {
		return workitem.Item{}, err
	}
	var out workitem.Item
	// Batched: concurrent creates share one commit; a re-run takes a fresh id, so it is safe.
	// The sequence is the root bucket's and only grows, so a deleted item's id never returns.
	err := s.Batch(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketItems)
		id, err := root.NextSequence()
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(it.Owner))
		if err != nil {
			return err
		}
		data := encodeItem(it)
		if err := b.Put(key(id), data); err != nil {
			return err
		}
		out, err = decodeItem(id, it.Owner, data) // as every later read sees it
		return err
	})
	if err != nil {
		return workitem.Item{}, fmt.Errorf("create item: %w", err)
	}
	return out, nil
}

func read(b *bolt.Bucket, owner string, id uint64) (workitem.Item, error) {
	if b == nil {
		return workitem.Item{}, notFound()
	}
	data := b.Get(key(id))
	if data == nil {
		return workitem.Item{}, notFound()
	}
	return decodeItem(id, owner, data)
}

// Get implements workitem.Store.
func (s *DB) Get(ctx context.Context, owner string, id uint64) (workitem.Item, error) {
	var it workitem.Item
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		it, err = read(tx.Bucket(bucketItems).Bucket([]byte(owner)), owner, id)
		return err
	})
	if err != nil {
		return workitem.Item{}, err
	}
	return it, nil
}

// List implements workitem.Store. Every owner's items are the first f.Limit after f.After of
// each owner's bucket, merged by id: a walk of every owner, fine for an admin's rare look.
func (s *DB) List(ctx context.Context, f workitem.Filter) ([]workitem.Item, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	items := []workitem.Item{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		if f.After == math.MaxUint64 {
			return nil
		}
		root := tx.Bucket(bucketItems)
		if !f.AllOwners {
			return listOwner(root.Bucket([]byte(f.Owner)), f.Owner, f, &items)
		}
		err := root.ForEachBucket(func(owner []byte) error {
			return listOwner(root.Bucket(owner), string(owner), f, &items)
		})
		slices.SortFunc(items, func(a, b workitem.Item) int { return cmp.Compare(a.ID, b.ID) })
		items = items[:min(len(items), f.Limit)]
		return err
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// listOwner appends to items the first f.Limit items of owner's bucket b (nil: none) after
// f.After.
func listOwner(b *bolt.Bucket, owner string, f workitem.Filter, items *[]workitem.Item) error {
	if b == nil {
		return nil
	}
	c, n := b.Cursor(), 0
	for k, v := c.Seek(key(f.After + 1)); k != nil && n < f.Limit; k, v = c.Next() {
		it, err := decodeItem(binary.BigEndian.Uint64(k), owner, v)
		if err != nil {
			return err
		}
		*items = append(*items, it)
		n++
	}
	return nil
}

// Update implements workitem.Store. (It hides the embedded boltfile.Store's Update, the write
// transaction, which this package calls as s.Store.Update.)
func (s *DB) Update(ctx context.Context, owner string, id uint64, fn func(workitem.Item) (workitem.Item, error)) (workitem.Item, error) {
	var out workitem.Item
	err := s.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems).Bucket([]byte(owner))
		old, err := read(b, owner, id)
		if err != nil {
			return err
		}
		it, err := fn(old)
		if err != nil {
			return err
		}
		if it.ID != id || it.Owner != owner {
			return apperr.Errorf(apperr.EINVALID, "An update may not change an item's id or owner")
		}
		if err := it.Validate(); err != nil {
			return err
		}
		data := encodeItem(it)
		if err := b.Put(key(id), data); err != nil {
			return err
		}
		out, err = decodeItem(id, owner, data) // as every later read sees it
		return err
	})
	if err != nil {
		return workitem.Item{}, err
	}
	return out, nil
}

// Delete implements workitem.Store.
func (s *DB) Delete(ctx context.Context, owner string, id uint64) error {
	return s.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems).Bucket([]byte(owner))
		if b == nil || b.Get(key(id)) == nil {
			return notFound()
		}
		return b.Delete(key(id))
	})
}
