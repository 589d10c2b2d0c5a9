package boltdb

import (
	"cmp"
	"context"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var links = table[identity.Link]{bucket: bucketLinks, name: "link",
	missing: apperr.Errorf(apperr.ENOTFOUND, "Link not found"),
	taken:   apperr.Errorf(apperr.ECONFLICT, "Link id already taken"),
	utc: func(l *identity.Link) {
		l.CreatedAt, l.ExpiresAt, l.UsedAt = l.CreatedAt.UTC(), l.ExpiresAt.UTC(), l.UsedAt.UTC()
	}}

var errLinkHashTaken = apperr.Errorf(apperr.ECONFLICT, "Link hash already taken")

// CreateLink implements identity.LinkStore: the link under its id, and its hash indexed.
func (s *DB) CreateLink(ctx context.Context, l identity.Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		hashes := tx.Bucket(bucketLinkHashes)
		if hashes.Get([]byte(l.Hash)) != nil {
			return errLinkHashTaken
		}
		if err := links.create(tx, l.ID, l); err != nil {
			return err
		}
		return hashes.Put([]byte(l.Hash), []byte(l.ID))
	})
}

// UseLink implements identity.LinkStore. fn decides from what the transaction read.
func (s *DB) UseLink(ctx context.Context, hash string, fn func(identity.Link) (identity.Link, error)) (identity.Link, error) {
	var refused error
	out, err := result(ctx, s.write, func(tx *bolt.Tx) (identity.Link, error) {
		refused = nil
		id := tx.Bucket(bucketLinkHashes).Get([]byte(hash))
		if id == nil {
			return identity.Link{}, links.missing
		}
		l, err := links.update(tx, string(id), func(old identity.Link) (identity.Link, error) { return old.ApplyUpdate(fn) })
		if err != nil {
			refused = err
			return identity.Link{}, errNoChange
		}
		return l, nil
	})
	if err != nil {
		return identity.Link{}, err
	}
	if refused != nil {
		return identity.Link{}, refused
	}
	return out, nil
}

// ListLinks implements identity.LinkStore: a walk of the bucket, which holds only live links
// and those the collector has not removed yet.
func (s *DB) ListLinks(ctx context.Context, kind identity.LinkKind) ([]identity.Link, error) {
	out, err := result(ctx, s.view, func(tx *bolt.Tx) ([]identity.Link, error) {
		return links.where(tx.Bucket(bucketLinks), func(l identity.Link) bool { return l.Kind == kind })
	})
	slices.SortFunc(out, func(a, b identity.Link) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, err
}

// DeleteLink implements identity.LinkStore.
func (s *DB) DeleteLink(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		l, err := links.get(tx, id)
		if err != nil {
			return err
		}
		return deleteLink(tx, l)
	})
}

// DeleteDeadLinks implements identity.LinkStore.
func (s *DB) DeleteDeadLinks(_ context.Context, before time.Time) (int, error) {
	return deleteAll(s, links, func(l identity.Link) bool { return l.ExpiresAt.Before(before) }, deleteLink)
}

// deleteLink removes l and its hash's index entry.
func deleteLink(tx *bolt.Tx, l identity.Link) error {
	if err := tx.Bucket(bucketLinkHashes).Delete([]byte(l.Hash)); err != nil {
		return err
	}
	return links.delete(tx, l.ID)
}
