package boltdb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var (
	errNoUser        = apperr.Errorf(apperr.ENOTFOUND, "User not found")
	errNoReservation = apperr.Errorf(apperr.ENOTFOUND, "No deleted user's username is reserved under that name")
)

// userRecord is a user as stored: the User's own JSON, but for its second factors.
type userRecord struct {
	identity.User
	Factors factorsRecord
}

// factorsRecord is identity.SecondFactors as stored. The domain's JSON drops an empty list of
// recovery codes (omitempty), which would read back as nil; this field, which hides the
// embedded one, keeps nil and empty apart as every other list in the store is kept. Fields
// added to SecondFactors later are stored through the embedding.
type factorsRecord struct {
	identity.SecondFactors
	RecoveryCodes []string
}

func encodeUser(u identity.User) ([]byte, error) {
	return json.Marshal(userRecord{User: u, Factors: factorsRecord{SecondFactors: u.Factors, RecoveryCodes: u.Factors.RecoveryCodes}})
}

func decodeUser(data []byte) (identity.User, error) {
	var r userRecord
	err := json.Unmarshal(data, &r)
	u := r.User
	u.Factors = r.Factors.SecondFactors
	u.Factors.RecoveryCodes = r.Factors.RecoveryCodes
	u.CreatedAt, u.LastLoginAt = u.CreatedAt.UTC(), u.LastLoginAt.UTC()
	if u.Factors.TOTP != nil {
		u.Factors.TOTP.EnrolledAt = u.Factors.TOTP.EnrolledAt.UTC()
	}
	return u, err
}

func getUser(tx *bolt.Tx, id string) (identity.User, error) {
	data := tx.Bucket(bucketUsers).Get([]byte(id))
	if data == nil {
		return identity.User{}, errNoUser
	}
	u, err := decodeUser(data)
	if err != nil {
		return u, fmt.Errorf("read user %s: %w", id, err)
	}
	return u, nil
}

// CreateUser implements identity.UserStore.
func (s *DB) CreateUser(ctx context.Context, u identity.User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketUsernames)
		name := identity.NormalizeUsername(u.Username)
		if names.Get([]byte(name)) != nil || tx.Bucket(bucketReserved).Get([]byte(name)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "User already exists")
		}
		users := tx.Bucket(bucketUsers)
		if users.Get([]byte(u.ID)) != nil || tx.Bucket(bucketDeleted).Get([]byte(u.ID)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "User id already taken")
		}
		if err := moveEmail(tx, u.ID, "", u.Email); err != nil {
			return err
		}
		if err := names.Put([]byte(name), []byte(u.ID)); err != nil {
			return err
		}
		data, err := encodeUser(u)
		if err != nil {
			return err
		}
		return users.Put([]byte(u.ID), data)
	})
}

// GetUser implements identity.UserStore.
func (s *DB) GetUser(ctx context.Context, id string) (identity.User, error) {
	var u identity.User
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		u, err = getUser(tx, id)
		return err
	})
	return u, err
}

// GetUserByName implements identity.UserStore.
func (s *DB) GetUserByName(ctx context.Context, username string) (identity.User, error) {
	var u identity.User
	err := s.DB.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketUsernames).Get([]byte(identity.NormalizeUsername(username)))
		if id == nil {
			return errNoUser
		}
		var err error
		u, err = getUser(tx, string(id))
		return err
	})
	return u, err
}

// ListUsers implements identity.UserStore: a walk of the username index, which bbolt keeps in
// byte order.
func (s *DB) ListUsers(ctx context.Context, opt identity.ListOptions) ([]identity.User, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	prefix := []byte(identity.NormalizeUsername(opt.Prefix))
	after := []byte(identity.NormalizeUsername(opt.After))
	start := prefix
	if bytes.Compare(after, start) > 0 {
		start = after
	}
	out := []identity.User{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsernames).Cursor()
		for k, id := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix) && len(out) < opt.Limit; k, id = c.Next() {
			if len(after) > 0 && bytes.Compare(k, after) <= 0 {
				continue
			}
			u, err := getUser(tx, string(id))
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateUser implements identity.UserStore.
func (s *DB) UpdateUser(ctx context.Context, id string, fn func(identity.User) (identity.User, error)) (identity.User, error) {
	var out identity.User
	err := s.write(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = updateUser(tx, id, fn, false)
		return err
	})
	if err != nil {
		return identity.User{}, err
	}
	return out, nil
}

// ChangeCredentials implements identity.UserStore.
func (s *DB) ChangeCredentials(ctx context.Context, id string, fn func(identity.User) (identity.User, error), keep ...string) (identity.User, error) {
	var out identity.User
	err := s.write(ctx, func(tx *bolt.Tx) error {
		var err error
		if out, err = updateUser(tx, id, fn, true); err != nil {
			return err
		}
		if len(keep) > 0 {
			return carryOver(tx, out, keep)
		}
		if err := revokeFamilies(tx, id, ""); err != nil {
			return err
		}
		return endUserSessions(tx, id)
	})
	if err != nil {
		return identity.User{}, err
	}
	return out, nil
}

// updateUser runs fn on the stored user, checks what it returns and stores it, moving the
// credential epoch on when nextEpoch is set.
func updateUser(tx *bolt.Tx, id string, fn func(identity.User) (identity.User, error), nextEpoch bool) (identity.User, error) {
	old, err := getUser(tx, id)
	if err != nil {
		return old, err
	}
	u, err := fn(old)
	if err != nil {
		return u, err
	}
	if err := old.CheckUpdate(u); err != nil {
		return u, err
	}
	if nextEpoch {
		u.Epoch++
	}
	oldName, newName := identity.NormalizeUsername(old.Username), identity.NormalizeUsername(u.Username)
	if oldName != newName {
		names := tx.Bucket(bucketUsernames)
		if names.Get([]byte(newName)) != nil || tx.Bucket(bucketReserved).Get([]byte(newName)) != nil {
			return u, apperr.Errorf(apperr.ECONFLICT, "User already exists")
		}
		if err := names.Delete([]byte(oldName)); err != nil {
			return u, err
		}
		if err := names.Put([]byte(newName), []byte(id)); err != nil {
			return u, err
		}
	}
	if err := moveEmail(tx, id, old.Email, u.Email); err != nil {
		return u, err
	}
	data, err := encodeUser(u)
	if err != nil {
		return u, err
	}
	if err := tx.Bucket(bucketUsers).Put([]byte(id), data); err != nil {
		return u, err
	}
	return decodeUser(data) // as every later read sees it
}

// DeleteUser implements identity.UserStore. The id stays in bucketDeleted, which CreateUser
// checks, so it is never a user's again; the username moves to bucketReserved and the email
// stays in bucketEmails under the deleted id, so both are taken until ReleaseUsername.
func (s *DB) DeleteUser(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		u, err := getUser(tx, id)
		if err != nil {
			return err
		}
		fams, err := members(tx.Bucket(bucketUserFams), id)
		if err != nil {
			return err
		}
		for _, fid := range fams {
			if err := deleteFamily(tx, fid, id); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketUserFams).Bucket([]byte(id)) != nil {
			if err := tx.Bucket(bucketUserFams).DeleteBucket([]byte(id)); err != nil {
				return err
			}
		}
		if err := endUserSessions(tx, id); err != nil {
			return err
		}
		if err := deleteConsents(tx, id); err != nil {
			return err
		}
		if _, err := deleteCodes(tx, func(c identity.AuthCode) bool { return c.UserID == id }); err != nil {
			return err
		}
		name := identity.NormalizeUsername(u.Username)
		if err := tx.Bucket(bucketUsernames).Delete([]byte(name)); err != nil {
			return err
		}
		if err := put(tx.Bucket(bucketReserved), name, identity.ReservedName{Username: u.Username, UserID: id, Email: u.Email}); err != nil {
			return err
		}
		// The id is never reused. Not a nil value: bbolt's Get finds none in the transaction
		// that put it.
		if err := tx.Bucket(bucketDeleted).Put([]byte(id), []byte{1}); err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).Delete([]byte(id))
	})
}

// ReleaseUsername implements identity.UserStore.
func (s *DB) ReleaseUsername(ctx context.Context, username string) (identity.ReservedName, error) {
	var r identity.ReservedName
	err := s.write(ctx, func(tx *bolt.Tx) error {
		reserved := tx.Bucket(bucketReserved)
		name := identity.NormalizeUsername(username)
		ok, err := get(reserved, name, &r)
		if err != nil {
			return fmt.Errorf("read reserved name %q: %w", name, err)
		}
		if !ok {
			return errNoReservation
		}
		if key := identity.NormalizeEmail(r.Email); key != "" && string(tx.Bucket(bucketEmails).Get([]byte(key))) == r.UserID {
			if err := tx.Bucket(bucketEmails).Delete([]byte(key)); err != nil {
				return err
			}
		}
		return reserved.Delete([]byte(name))
	})
	if err != nil {
		return identity.ReservedName{}, err
	}
	return r, nil
}

// ReservedNames returns every reservation, by normalized username: what `idp store copy`
// needs so that the target keeps them too.
func (s *DB) ReservedNames(ctx context.Context) ([]identity.ReservedName, error) {
	out := []identity.ReservedName{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReserved).ForEach(func(k, v []byte) error {
			var r identity.ReservedName
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("read reserved name %q: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// moveEmail moves the user's entry in the email index from old to new (either may be "", for
// none). ErrEmailTaken when another user has new in any letter case; the same address in
// another case is no move.
func moveEmail(tx *bolt.Tx, userID, old, new string) error {
	oldKey, newKey := identity.NormalizeEmail(old), identity.NormalizeEmail(new)
	if oldKey == newKey {
		return nil
	}
	emails := tx.Bucket(bucketEmails)
	if newKey != "" {
		if owner := emails.Get([]byte(newKey)); owner != nil && string(owner) != userID {
			return identity.ErrEmailTaken
		}
	}
	if oldKey != "" {
		if err := emails.Delete([]byte(oldKey)); err != nil {
			return err
		}
	}
	if newKey == "" {
		return nil
	}
	return emails.Put([]byte(newKey), []byte(userID))
}

// checkEpoch refuses to make a session or family for credentials older than the user's.
func checkEpoch(tx *bolt.Tx, userID string, epoch int64) error {
	u, err := getUser(tx, userID)
	if apperr.Code(err) == apperr.ENOTFOUND || (err == nil && u.Epoch != epoch) {
		return identity.ErrStaleCredentials
	}
	return err
}

// carryOver ends the sessions and families of u that keep does not name, as a change of
// credentials does, and moves those it names (and the families bound to a kept session) to u's
// new epoch.
func carryOver(tx *bolt.Tx, u identity.User, keep []string) error {
	kept := func(id string) bool { return id != "" && slices.Contains(keep, id) }
	fams, err := userFamilies(tx, u.ID)
	if err != nil {
		return err
	}
	for _, f := range fams {
		if f.Revoked {
			continue
		}
		if kept(f.ID) || kept(f.SessionID) {
			f.Epoch = u.Epoch
		} else {
			f.Revoked = true
		}
		if err := put(tx.Bucket(bucketFamilies), f.ID, f); err != nil {
			return err
		}
	}
	sessions, err := userSessions(tx, u.ID)
	if err != nil {
		return err
	}
	for _, sess := range sessions {
		if !kept(sess.ID) {
			if err := deleteSession(tx, sess); err != nil {
				return err
			}
			continue
		}
		sess.Epoch = u.Epoch
		if err := put(tx.Bucket(bucketSessions), sess.ID, sess); err != nil {
			return err
		}
	}
	return nil
}
