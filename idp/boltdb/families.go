package boltdb

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoFamily = apperr.Errorf(apperr.ENOTFOUND, "Refresh token not found")

func decodeFamily(data []byte) (identity.Family, error) {
	var f identity.Family
	err := json.Unmarshal(data, &f)
	f.CreatedAt, f.ExpiresAt = f.CreatedAt.UTC(), f.ExpiresAt.UTC()
	return f, err
}

func getFamily(tx *bolt.Tx, id string) (identity.Family, error) {
	data := tx.Bucket(bucketFamilies).Get([]byte(id))
	if data == nil {
		return identity.Family{}, errNoFamily
	}
	f, err := decodeFamily(data)
	if err != nil {
		return f, fmt.Errorf("read family %s: %w", id, err)
	}
	return f, nil
}

// CreateFamily implements identity.FamilyStore.
func (s *DB) CreateFamily(ctx context.Context, f identity.Family) error {
	if err := f.Validate(); err != nil {
		return err
	}
	return s.batch(ctx, func(tx *bolt.Tx) error {
		if err := checkEpoch(tx, f.UserID, f.Epoch); err != nil {
			return err
		}
		if tx.Bucket(bucketFamilies).Get([]byte(f.ID)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "Refresh family id already taken")
		}
		if tx.Bucket(bucketTokens).Get([]byte(f.Current)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "Refresh token already issued")
		}
		if err := index(tx.Bucket(bucketUserFams), f.UserID, f.ID); err != nil {
			return err
		}
		_, err := putFamily(tx, f)
		return err
	})
}

// putFamily stores f and indexes its live token; it returns f as every later read sees it.
func putFamily(tx *bolt.Tx, f identity.Family) (identity.Family, error) {
	data, err := json.Marshal(f)
	if err != nil {
		return f, err
	}
	if err := tx.Bucket(bucketFamilies).Put([]byte(f.ID), data); err != nil {
		return f, err
	}
	if err := index(tx.Bucket(bucketFamTokens), f.ID, f.Current); err != nil {
		return f, err
	}
	if err := tx.Bucket(bucketTokens).Put([]byte(f.Current), []byte(f.ID)); err != nil {
		return f, err
	}
	return decodeFamily(data)
}

// UpdateFamilyByToken implements identity.FamilyStore.
func (s *DB) UpdateFamilyByToken(ctx context.Context, tokenHash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, error) {
	var out identity.Family
	var stepErr error
	// Batched: concurrent refreshes share one commit (and one fsync) instead of one each. The
	// closure reads everything it decides on inside the transaction, so a re-run is safe.
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokens).Get([]byte(tokenHash))
		if id == nil {
			return errNoFamily
		}
		f, err := getFamily(tx, string(id))
		if err != nil {
			return err
		}
		u, err := getUser(tx, f.UserID)
		if err != nil && apperr.Code(err) != apperr.ENOTFOUND {
			return err
		}
		out, stepErr = step(f, u)
		if stepErr != nil && out.ID == "" {
			return errNoChange // nothing to keep, nothing to record
		}
		if err := f.CheckUpdate(out); err != nil {
			return err
		}
		if owner := tx.Bucket(bucketTokens).Get([]byte(out.Current)); owner != nil && string(owner) != f.ID {
			return apperr.Errorf(apperr.ECONFLICT, "Refresh token already issued")
		}
		out, err = putFamily(tx, out)
		return err
	})
	if err != nil {
		return identity.Family{}, err
	}
	return out, stepErr
}

// ListFamilies implements identity.FamilyStore.
func (s *DB) ListFamilies(ctx context.Context, userID string) ([]identity.Family, error) {
	var out []identity.Family
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		out, err = userFamilies(tx, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// userFamilies reads the user's families, oldest first (then by id).
func userFamilies(tx *bolt.Tx, userID string) ([]identity.Family, error) {
	out := []identity.Family{}
	ids, err := members(tx.Bucket(bucketUserFams), userID)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		f, err := getFamily(tx, id)
		if apperr.Code(err) == apperr.ENOTFOUND {
			continue // a stale index entry
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b identity.Family) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
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
		if err := put(tx.Bucket(bucketFamilies), f.ID, f); err != nil {
			return err
		}
	}
	return nil
}

// deleteFamily removes a family of the user, its token hashes and its entry in the user's set.
func deleteFamily(tx *bolt.Tx, id, userID string) error {
	hashes, err := members(tx.Bucket(bucketFamTokens), id)
	if err != nil {
		return err
	}
	for _, h := range hashes {
		if err := tx.Bucket(bucketTokens).Delete([]byte(h)); err != nil {
			return err
		}
	}
	if hashes != nil {
		if err := tx.Bucket(bucketFamTokens).DeleteBucket([]byte(id)); err != nil {
			return err
		}
	}
	if ub := tx.Bucket(bucketUserFams).Bucket([]byte(userID)); ub != nil {
		if err := ub.Delete([]byte(id)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketFamilies).Delete([]byte(id))
}

// DeleteDeadFamilies implements identity.FamilyStore.
func (s *DB) DeleteDeadFamilies(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.Update(func(tx *bolt.Tx) error {
		var dead []identity.Family
		err := tx.Bucket(bucketFamilies).ForEach(func(k, v []byte) error {
			f, err := decodeFamily(v)
			if err != nil {
				return fmt.Errorf("read family %s: %w", k, err)
			}
			if f.Dead(now) {
				dead = append(dead, f)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, f := range dead {
			if err := deleteFamily(tx, f.ID, f.UserID); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	return n, err
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
