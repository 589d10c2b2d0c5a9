package boltdb

import (
	"bytes"
	"context"
	"encoding/json"
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

var (
	users    = table[identity.User]{bucket: bucketUsers, name: "user", missing: errNoUser, taken: identity.ErrUserIDTaken, encode: encodeUser, decode: decodeUser}
	reserved = table[identity.ReservedName]{bucket: bucketReserved, name: "reserved name", missing: errNoReservation}
)

// CreateUser implements identity.UserStore.
func (s *DB) CreateUser(ctx context.Context, u identity.User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error { return createUser(tx, u) })
}

// createUser stores u, a valid user, under an id no user ever had, with names no one holds or
// reserves: CreateUser's transaction, and CreateFederatedUser's first half.
func createUser(tx *bolt.Tx, u identity.User) error {
	if tx.Bucket(bucketDeleted).Get([]byte(u.ID)) != nil {
		return identity.ErrUserIDTaken
	}
	if err := rename(tx, u.ID, identity.User{}, u); err != nil {
		return err
	}
	return users.create(tx, u.ID, u)
}

// GetUser implements identity.UserStore.
func (s *DB) GetUser(ctx context.Context, id string) (identity.User, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.User, error) { return users.get(tx, id) })
}

// GetUserByName implements identity.UserStore.
func (s *DB) GetUserByName(ctx context.Context, username string) (identity.User, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.User, error) {
		id := tx.Bucket(bucketUsernames).Get([]byte(identity.NormalizeUsername(username)))
		if id == nil {
			return identity.User{}, errNoUser
		}
		return users.get(tx, string(id))
	})
}

// GetUserByEmail implements identity.UserStore through the email index, which also keeps a
// deleted user's address (reserved): such an id reads as no user.
func (s *DB) GetUserByEmail(ctx context.Context, email string) (identity.User, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.User, error) {
		if email == "" {
			return identity.User{}, errNoUser
		}
		id := tx.Bucket(bucketEmails).Get([]byte(identity.NormalizeEmail(email)))
		if id == nil {
			return identity.User{}, errNoUser
		}
		u, err := users.get(tx, string(id))
		if apperr.Code(err) == apperr.ENOTFOUND {
			return identity.User{}, errNoUser
		}
		return u, err
	})
}

// ListUsers implements identity.UserStore: a walk of the username index, which bbolt keeps in
// byte order.
func (s *DB) ListUsers(ctx context.Context, opt identity.ListOptions) ([]identity.User, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	return result(ctx, s.view, func(tx *bolt.Tx) ([]identity.User, error) {
		out := []identity.User{}
		err := page(tx.Bucket(bucketUsernames), opt, func(_, id []byte) error {
			u, err := users.get(tx, string(id))
			out = append(out, u)
			return err
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	})
}

// page calls fn with the keys and values of b that opt selects (a validated ListOptions, its
// Prefix and After normalized as usernames are), in key order.
func page(b *bolt.Bucket, opt identity.ListOptions, fn func(k, v []byte) error) error {
	prefix := []byte(identity.NormalizeUsername(opt.Prefix))
	after := []byte(identity.NormalizeUsername(opt.After))
	start := prefix
	if bytes.Compare(after, start) > 0 {
		start = after
	}
	c, n := b.Cursor(), 0
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix) && n < opt.Limit; k, v = c.Next() {
		if len(after) > 0 && bytes.Compare(k, after) <= 0 {
			continue
		}
		if err := fn(k, v); err != nil {
			return err
		}
		n++
	}
	return nil
}

// UpdateUser implements identity.UserStore.
func (s *DB) UpdateUser(ctx context.Context, id string, fn func(identity.User) (identity.User, error)) (identity.User, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.User, error) { return updateUser(tx, id, fn, identity.Apply) })
}

// ChangeCredentials implements identity.UserStore.
func (s *DB) ChangeCredentials(ctx context.Context, id string, fn func(identity.User) (identity.User, error), keep ...string) (identity.User, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.User, error) {
		u, err := updateUser(tx, id, fn, identity.ApplyCredentials)
		if err != nil {
			return u, err
		}
		if len(keep) > 0 {
			return u, carryOver(tx, u, keep)
		}
		if err := revokeFamilies(tx, id, ""); err != nil {
			return u, err
		}
		return u, endUserSessions(tx, id)
	})
}

// updateUser stores what apply (identity.Apply or identity.ApplyCredentials) makes of fn's
// result, and moves the user's names in the indexes.
func updateUser(tx *bolt.Tx, id string, fn func(identity.User) (identity.User, error),
	apply func(identity.User, func(identity.User) (identity.User, error)) (identity.User, error)) (identity.User, error) {
	return users.update(tx, id, func(old identity.User) (identity.User, error) {
		u, err := apply(old, fn)
		if err != nil {
			return u, err
		}
		return u, rename(tx, id, old, u)
	})
}

// rename moves the user's entries in the username and email indexes from the names before had
// to those after has (identity.Claims). ErrUsernameTaken when after's username is another
// user's or reserved; ErrEmailTaken when its email is another user's, a deleted one's included
// (the index keeps a reserved email under the deleted user's id).
func rename(tx *bolt.Tx, id string, before, after identity.User) error {
	claimed, freed := identity.Claims(before, after)
	if claimed.Username != "" && tx.Bucket(bucketReserved).Get([]byte(claimed.Username)) != nil {
		return identity.ErrUsernameTaken
	}
	if err := moveKey(tx.Bucket(bucketUsernames), freed.Username, claimed.Username, id, identity.ErrUsernameTaken); err != nil {
		return err
	}
	return moveKey(tx.Bucket(bucketEmails), freed.Email, claimed.Email, id, identity.ErrEmailTaken)
}

// DeleteUser implements identity.UserStore. The id stays in bucketDeleted, which CreateUser
// checks, so it is never a user's again; the username moves to bucketReserved and the email
// stays in bucketEmails under the deleted id, so both are taken until ReleaseUsername.
func (s *DB) DeleteUser(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		u, err := users.get(tx, id)
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
		if err := deleteMemberships(tx, id); err != nil {
			return err
		}
		if err := deleteFederations(tx, id); err != nil {
			return err
		}
		if _, err := codes.deleteWhere(tx, func(c identity.AuthCode) bool { return c.UserID == id }); err != nil {
			return err
		}
		name := identity.NormalizeUsername(u.Username)
		if err := tx.Bucket(bucketUsernames).Delete([]byte(name)); err != nil {
			return err
		}
		if err := reserved.put(tx, name, identity.ReservedName{Username: u.Username, UserID: id, Email: u.Email}); err != nil {
			return err
		}
		// The id is never reused. Not a nil value: bbolt's Get finds none in the transaction
		// that put it.
		if err := tx.Bucket(bucketDeleted).Put([]byte(id), []byte{1}); err != nil {
			return err
		}
		return users.delete(tx, id)
	})
}

// ReleaseUsername implements identity.UserStore.
func (s *DB) ReleaseUsername(ctx context.Context, username string) (identity.ReservedName, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.ReservedName, error) {
		name := identity.NormalizeUsername(username)
		r, err := reserved.get(tx, name)
		if err != nil {
			return r, err
		}
		if key := identity.NormalizeEmail(r.Email); key != "" && string(tx.Bucket(bucketEmails).Get([]byte(key))) == r.UserID {
			if err := tx.Bucket(bucketEmails).Delete([]byte(key)); err != nil {
				return r, err
			}
		}
		return r, reserved.delete(tx, name)
	})
}

// ReservedNames returns every reservation, by normalized username: what `idp store copy`
// needs so that the target keeps them too.
func (s *DB) ReservedNames(ctx context.Context) ([]identity.ReservedName, error) {
	return result(ctx, s.view, reserved.list)
}

// createAtEpoch runs create, which makes a session or a family of the user userID for
// credentials of epoch, in a batched write, but only if the entity is valid (valid is nil)
// and the user still has those credentials (identity.CheckEpoch), read in the same transaction.
func (s *DB) createAtEpoch(ctx context.Context, valid error, userID string, epoch int64, create func(*bolt.Tx) error) error {
	if valid != nil {
		return valid
	}
	return s.batch(ctx, func(tx *bolt.Tx) error {
		u, err := users.get(tx, userID)
		if err != nil && apperr.Code(err) != apperr.ENOTFOUND {
			return err
		}
		if err := identity.CheckEpoch(u, userID, epoch); err != nil {
			return err
		}
		return create(tx)
	})
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
		if err := families.put(tx, f.ID, f); err != nil {
			return err
		}
	}
	all, err := userSessions(tx, u.ID)
	if err != nil {
		return err
	}
	for _, sess := range all {
		if !kept(sess.ID) {
			if err := endSession(tx, sess); err != nil {
				return err
			}
			continue
		}
		sess.Epoch = u.Epoch
		if err := sessions.put(tx, sess.ID, sess); err != nil {
			return err
		}
	}
	return nil
}
