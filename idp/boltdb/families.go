package boltdb

import (
	"bytes"
	"context"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoFamily = apperr.Errorf(apperr.ENOTFOUND, "Refresh token not found")

var families = table[identity.Family]{bucket: bucketFamilies, name: "family", missing: errNoFamily,
	taken: apperr.Errorf(apperr.ECONFLICT, "Refresh family id already taken"),
	utc: func(f *identity.Family) {
		f.CreatedAt, f.ExpiresAt, f.AuthTime = f.CreatedAt.UTC(), f.ExpiresAt.UTC(), f.AuthTime.UTC()
	}}

var errTokenIssued = apperr.Errorf(apperr.ECONFLICT, "Refresh token already issued")

// CreateFamily implements identity.FamilyStore.
func (s *DB) CreateFamily(ctx context.Context, f identity.Family) error {
	return s.createAtEpoch(ctx, f.Validate(), f.UserID, f.Epoch, func(tx *bolt.Tx) error {
		if err := families.create(tx, f.ID, f); err != nil {
			return err
		}
		if err := indexToken(tx, f, ""); err != nil {
			return err
		}
		return index(tx.Bucket(bucketUserFams), f.UserID, f.ID)
	})
}

// The token index (bucketTokens) maps the hash of every refresh token a family issued to the
// family. The entry of a token issued by a refresh also names the token it replaced — the
// family's id, a NUL, the previous hash — so a family's hashes form a chain from its live token
// back to its first, which deletion walks: a refresh writes one entry and nothing else (a set
// of hashes per family, as stores before the chain kept in bucketFamTokens, cost a page write
// of its own on every refresh). Deletion reads both, so stores written before read as ever.

// tokenEntry is the index entry of a token of the family id issued in place of prev ("" for a
// family's first token).
func tokenEntry(id, prev string) []byte {
	if prev == "" {
		return []byte(id)
	}
	return []byte(id + "\x00" + prev)
}

// parseTokenEntry is the family and the previous token ("" for none) of an index entry.
func parseTokenEntry(v []byte) (id, prev string) {
	if i := bytes.IndexByte(v, 0); i >= 0 {
		return string(v[:i]), string(v[i+1:])
	}
	return string(v), ""
}

// indexToken indexes f's live token, issued in place of prev ("" for a new family's first):
// errTokenIssued when another family issued it. A token f issued before, made live again, is
// not indexed anew; the tokens issued after it would then be out of the chain from f's live
// token, so the chain from prev goes into f's set of hashes (bucketFamTokens) first.
func indexToken(tx *bolt.Tx, f identity.Family, prev string) error {
	b := tx.Bucket(bucketTokens)
	v := b.Get([]byte(f.Current))
	if v == nil {
		return b.Put([]byte(f.Current), tokenEntry(f.ID, prev))
	}
	if owner, _ := parseTokenEntry(v); owner != f.ID {
		return errTokenIssued
	}
	for _, h := range chain(b, f.ID, prev) {
		if err := index(tx.Bucket(bucketFamTokens), f.ID, h); err != nil {
			return err
		}
	}
	return nil
}

// chain is the hashes of the family id's chain in the index b from the token from back to the
// family's first (or to an entry of a store before the chain). It ends at an entry that is
// missing or another family's, and at a hash seen before, so a damaged file cannot hold it.
func chain(b *bolt.Bucket, id, from string) []string {
	var out []string
	seen := map[string]bool{}
	for h := from; h != "" && !seen[h]; {
		v := b.Get([]byte(h))
		if v == nil {
			break
		}
		owner, prev := parseTokenEntry(v)
		if owner != id {
			break
		}
		seen[h] = true
		out = append(out, h)
		h = prev
	}
	return out
}

// familyHashes is every hash the family id issued, sorted: its chain from its live token, and
// its set in bucketFamTokens (a store's before the chain, or a chain cut by a token made live
// again). Only its set when the family's record is gone.
func familyHashes(tx *bolt.Tx, id string) ([]string, error) {
	hashes, err := members(tx.Bucket(bucketFamTokens), id)
	if err != nil {
		return nil, err
	}
	f, err := families.get(tx, id)
	switch {
	case err == nil:
		hashes = append(hashes, chain(tx.Bucket(bucketTokens), id, f.Current)...)
	case apperr.Code(err) != apperr.ENOTFOUND:
		return nil, err
	}
	slices.Sort(hashes)
	return slices.Compact(hashes), nil
}

// UpdateFamilyByToken implements identity.FamilyStore.
func (s *DB) UpdateFamilyByToken(ctx context.Context, tokenHash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, error) {
	var out identity.Family
	var stepErr error
	// Batched: concurrent refreshes share one commit (and one fsync) instead of one each. The
	// closure reads everything it decides on inside the transaction, so a re-run is safe.
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		entry := tx.Bucket(bucketTokens).Get([]byte(tokenHash))
		if entry == nil {
			return errNoFamily
		}
		id, _ := parseTokenEntry(entry)
		f, err := families.get(tx, id)
		if err != nil {
			return err
		}
		u, err := users.get(tx, f.UserID)
		if err != nil && apperr.Code(err) != apperr.ENOTFOUND {
			return err
		}
		var keep bool
		if out, keep, stepErr = f.ApplyStep(u, step); !keep {
			return errNoChange // nothing to keep, nothing to record
		}
		if out.Current != f.Current {
			if err := indexToken(tx, out, f.Current); err != nil {
				return err
			}
		}
		out, err = families.store(tx, f.ID, out)
		return err
	})
	if err != nil {
		return identity.Family{}, err
	}
	return out, stepErr
}

// ListFamilies implements identity.FamilyStore.
func (s *DB) ListFamilies(ctx context.Context, userID string) ([]identity.Family, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) ([]identity.Family, error) { return userFamilies(tx, userID) })
}

// userFamilies reads the user's families, oldest first (then by id).
func userFamilies(tx *bolt.Tx, userID string) ([]identity.Family, error) {
	return families.owned(tx, bucketUserFams, userID, func(f identity.Family) time.Time { return f.CreatedAt })
}

// RevokeUserFamilies implements identity.FamilyStore.
func (s *DB) RevokeUserFamilies(ctx context.Context, userID string) error {
	return s.write(ctx, func(tx *bolt.Tx) error { return revokeFamilies(tx, userID, "") })
}

// revokeFamilies revokes the user's families, or only those bound to the session sessionID
// when it is not empty.
func revokeFamilies(tx *bolt.Tx, userID, sessionID string) error {
	all, err := userFamilies(tx, userID)
	if err != nil {
		return err
	}
	for _, f := range all {
		if f.Revoked || (sessionID != "" && f.SessionID != sessionID) {
			continue
		}
		f.Revoked = true
		if err := families.put(tx, f.ID, f); err != nil {
			return err
		}
	}
	return nil
}

// deleteFamily removes a family of the user, its token hashes and its entry in the user's set.
func deleteFamily(tx *bolt.Tx, id, userID string) error {
	hashes, err := familyHashes(tx, id)
	if err != nil {
		return err
	}
	for _, h := range hashes {
		if err := tx.Bucket(bucketTokens).Delete([]byte(h)); err != nil {
			return err
		}
	}
	if tx.Bucket(bucketFamTokens).Bucket([]byte(id)) != nil {
		if err := tx.Bucket(bucketFamTokens).DeleteBucket([]byte(id)); err != nil {
			return err
		}
	}
	if ub := tx.Bucket(bucketUserFams).Bucket([]byte(userID)); ub != nil {
		if err := ub.Delete([]byte(id)); err != nil {
			return err
		}
	}
	return families.delete(tx, id)
}

// DeleteDeadFamilies implements identity.FamilyStore.
func (s *DB) DeleteDeadFamilies(ctx context.Context, now time.Time) (int, error) {
	return deleteAll(s, families, func(f identity.Family) bool { return f.Dead(now) },
		func(tx *bolt.Tx, f identity.Family) error { return deleteFamily(tx, f.ID, f.UserID) })
}

// Counts reports how many families and token hashes are stored, for tests of garbage collection.
func (s *DB) Counts() (families, tokens int) {
	s.DB.View(func(tx *bolt.Tx) error {
		families = tx.Bucket(bucketFamilies).Stats().KeyN
		tokens = tx.Bucket(bucketTokens).Stats().KeyN
		return nil
	})
	return families, tokens
}
