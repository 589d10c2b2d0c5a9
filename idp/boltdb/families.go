package boltdb

import (
	"context"
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
		if err := indexToken(tx, f); err != nil {
			return err
		}
		return index(tx.Bucket(bucketUserFams), f.UserID, f.ID)
	})
}

// indexToken indexes f's live token: errTokenIssued when another family issued it.
func indexToken(tx *bolt.Tx, f identity.Family) error {
	if err := moveKey(tx.Bucket(bucketTokens), "", f.Current, f.ID, errTokenIssued); err != nil {
		return err
	}
	return index(tx.Bucket(bucketFamTokens), f.ID, f.Current)
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
		f, err := families.get(tx, string(id))
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
		if err := indexToken(tx, out); err != nil {
			return err
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
