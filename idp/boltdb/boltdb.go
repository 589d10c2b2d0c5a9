// Package boltdb keeps the IdP's users, signing keys and refresh-token families in one bbolt
// file. Every read-modify-write is one transaction; slow work (hashing, key generation) is done
// by callers before they get here.
package boltdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/boltfile"
)

// FileName is the bbolt file inside the data folder.
const FileName = "idp.db"

var (
	bucketUsers     = []byte("users")     // id → User
	bucketUsernames = []byte("usernames") // normalized username → id
	bucketKeys      = []byte("keys")      // kid → SigningKey
	bucketFamilies  = []byte("families")  // family id → Family
	bucketTokens    = []byte("tokens")    // refresh-token hash → family id
	bucketFamTokens = []byte("famtokens") // family id → (token hash → nil), for deletion
	bucketUserFams  = []byte("userfams")  // user id → (family id → nil), for revocation
	bucketSessions  = []byte("sessions")  // session id → Session
	bucketSessToks  = []byte("sesstoks")  // session token hash → session id
	bucketUserSess  = []byte("usersess")  // user id → (session id → nil), for ending them all
	bucketSecrets   = []byte("secrets")   // name → the IdP's own secret bytes
)

// DB is the bbolt-backed store. It implements identity.UserStore, identity.KeyStore,
// identity.FamilyStore, identity.SessionStore and identity.SecretStore.
type DB struct {
	boltfile.Store
	path string
}

// Open opens (creating if needed) the store in dir. The folder is made 0700 and the file 0600.
// A second process on the same folder gets an error naming the folder after lockTimeout
// instead of waiting forever.
func Open(dir string, lockTimeout time.Duration) (*DB, error) {
	db, err := boltfile.Open(dir, FileName, lockTimeout, bucketUsers, bucketUsernames, bucketKeys, bucketFamilies, bucketTokens, bucketFamTokens, bucketUserFams,
		bucketSessions, bucketSessToks, bucketUserSess, bucketSecrets)
	if err != nil {
		return nil, err
	}
	return &DB{Store: boltfile.NewStore(db), path: db.Path()}, nil
}

// Path is the bbolt file's path.
func (s *DB) Path() string { return s.path }

func put(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// get decodes the value at key into v; json.Unmarshal copies, so v outlives the transaction.
func get(b *bolt.Bucket, key string, v any) (bool, error) {
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	return true, json.Unmarshal(data, v)
}

// CreateUser implements identity.UserStore.
func (s *DB) CreateUser(ctx context.Context, u identity.User) error {
	return s.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketUsernames)
		name := identity.NormalizeUsername(u.Username)
		if names.Get([]byte(name)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "User already exists")
		}
		users := tx.Bucket(bucketUsers)
		if users.Get([]byte(u.ID)) != nil {
			return fmt.Errorf("create user: id %s already taken", u.ID)
		}
		if err := names.Put([]byte(name), []byte(u.ID)); err != nil {
			return err
		}
		return put(users, u.ID, u)
	})
}

// UserByName implements identity.UserStore.
func (s *DB) UserByName(ctx context.Context, username string) (identity.User, error) {
	var u identity.User
	err := s.DB.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketUsernames).Get([]byte(identity.NormalizeUsername(username)))
		if id == nil {
			return apperr.Errorf(apperr.ENOTFOUND, "User not found")
		}
		return getUser(tx, string(id), &u)
	})
	return u, err
}

// UserByID implements identity.UserStore.
func (s *DB) UserByID(ctx context.Context, id string) (identity.User, error) {
	var u identity.User
	err := s.DB.View(func(tx *bolt.Tx) error { return getUser(tx, id, &u) })
	return u, err
}

func getUser(tx *bolt.Tx, id string, u *identity.User) error {
	ok, err := get(tx.Bucket(bucketUsers), id, u)
	if err != nil {
		return fmt.Errorf("read user %s: %w", id, err)
	}
	if !ok {
		return apperr.Errorf(apperr.ENOTFOUND, "User not found")
	}
	return nil
}

// SetPasswordHash implements identity.UserStore.
func (s *DB) SetPasswordHash(ctx context.Context, id, old, new string) error {
	return s.Update(func(tx *bolt.Tx) error {
		_, err := replaceHash(tx, id, old, new)
		return err
	})
}

// ChangePassword implements identity.UserStore.
func (s *DB) ChangePassword(ctx context.Context, id, old, new string) error {
	return s.Update(func(tx *bolt.Tx) error {
		u, err := replaceHash(tx, id, old, new)
		if err != nil {
			return err
		}
		u.Epoch++
		if err := put(tx.Bucket(bucketUsers), id, u); err != nil {
			return err
		}
		if err := revokeUserFamilies(tx, id); err != nil {
			return err
		}
		return endUserSessions(tx, id)
	})
}

func replaceHash(tx *bolt.Tx, id, old, new string) (identity.User, error) {
	var u identity.User
	if err := getUser(tx, id, &u); err != nil {
		return u, err
	}
	if u.PasswordHash != old {
		return u, apperr.Errorf(apperr.ECONFLICT, "Password was changed concurrently")
	}
	u.PasswordHash = new
	return u, put(tx.Bucket(bucketUsers), id, u)
}

// checkEpoch refuses to make a session or family for credentials older than the user's.
func checkEpoch(tx *bolt.Tx, userID string, epoch int64) error {
	var u identity.User
	err := getUser(tx, userID, &u)
	if apperr.Code(err) == apperr.ENOTFOUND || (err == nil && u.Epoch != epoch) {
		return identity.ErrStaleCredentials
	}
	return err
}

// Keys implements identity.KeyStore.
func (s *DB) Keys(ctx context.Context) ([]identity.SigningKey, error) {
	var keys []identity.SigningKey
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		keys, err = readKeys(tx)
		return err
	})
	return keys, err
}

func readKeys(tx *bolt.Tx) ([]identity.SigningKey, error) {
	var keys []identity.SigningKey
	err := tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
		var key identity.SigningKey
		if err := json.Unmarshal(v, &key); err != nil {
			return fmt.Errorf("read key %s: %w", k, err)
		}
		keys = append(keys, key)
		return nil
	})
	return keys, err
}

// UpdateKeys implements identity.KeyStore: the stored set is replaced by update's result.
func (s *DB) UpdateKeys(ctx context.Context, update func([]identity.SigningKey) ([]identity.SigningKey, error)) error {
	return s.Update(func(tx *bolt.Tx) error {
		keys, err := readKeys(tx)
		if err != nil {
			return err
		}
		next, err := update(keys)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketKeys)
		keep := map[string]bool{}
		for _, k := range next {
			keep[k.ID] = true
			if err := put(b, k.ID, k); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if !keep[k.ID] {
				if err := b.Delete([]byte(k.ID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// CreateFamily implements identity.FamilyStore.
func (s *DB) CreateFamily(ctx context.Context, f identity.Family) error {
	if err := f.Validate(); err != nil {
		return err
	}
	return s.Batch(func(tx *bolt.Tx) error {
		if err := checkEpoch(tx, f.UserID, f.Epoch); err != nil {
			return err
		}
		if tx.Bucket(bucketFamilies).Get([]byte(f.ID)) != nil {
			return fmt.Errorf("create family: id %s already taken", f.ID)
		}
		ub, err := tx.Bucket(bucketUserFams).CreateBucketIfNotExists([]byte(f.UserID))
		if err != nil {
			return err
		}
		if err := ub.Put([]byte(f.ID), nil); err != nil {
			return err
		}
		return putFamily(tx, f)
	})
}

// putFamily stores f and indexes its live token.
func putFamily(tx *bolt.Tx, f identity.Family) error {
	if err := put(tx.Bucket(bucketFamilies), f.ID, f); err != nil {
		return err
	}
	tb, err := tx.Bucket(bucketFamTokens).CreateBucketIfNotExists([]byte(f.ID))
	if err != nil {
		return err
	}
	if err := tb.Put([]byte(f.Current), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketTokens).Put([]byte(f.Current), []byte(f.ID))
}

func getFamily(tx *bolt.Tx, id string) (identity.Family, error) {
	var f identity.Family
	ok, err := get(tx.Bucket(bucketFamilies), id, &f)
	if err != nil {
		return f, fmt.Errorf("read family %s: %w", id, err)
	}
	if !ok {
		return f, apperr.Errorf(apperr.ENOTFOUND, "Refresh token not found")
	}
	return f, nil
}

// UpdateFamilyByToken implements identity.FamilyStore.
func (s *DB) UpdateFamilyByToken(ctx context.Context, tokenHash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, error) {
	var out identity.Family
	var stepErr error
	// Batched: concurrent refreshes share one commit (and one fsync) instead of one each. The
	// closure reads everything it decides on inside the transaction, so a re-run is safe.
	err := s.Batch(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokens).Get([]byte(tokenHash))
		if id == nil {
			return apperr.Errorf(apperr.ENOTFOUND, "Refresh token not found")
		}
		f, err := getFamily(tx, string(id))
		if err != nil {
			return err
		}
		var u identity.User
		if err := getUser(tx, f.UserID, &u); err != nil && apperr.Code(err) != apperr.ENOTFOUND {
			return err
		}
		out, stepErr = step(f, u)
		if out.ID != f.ID || out.UserID != f.UserID {
			return fmt.Errorf("update family %s: step changed its identity", f.ID)
		}
		return putFamily(tx, out)
	})
	if err != nil {
		return identity.Family{}, err
	}
	return out, stepErr
}

// RevokeUserFamilies implements identity.FamilyStore.
func (s *DB) RevokeUserFamilies(ctx context.Context, userID string) error {
	return s.Update(func(tx *bolt.Tx) error { return revokeUserFamilies(tx, userID) })
}

// revokeUserFamilies revokes the user's families, or only those bound to one session when
// sessionID is given.
func revokeUserFamilies(tx *bolt.Tx, userID string, sessionID ...string) error {
	ub := tx.Bucket(bucketUserFams).Bucket([]byte(userID))
	if ub == nil {
		return nil
	}
	return ub.ForEach(func(k, _ []byte) error {
		f, err := getFamily(tx, string(k))
		if apperr.Code(err) == apperr.ENOTFOUND {
			return nil
		}
		if err != nil || f.Revoked || (len(sessionID) > 0 && f.SessionID != sessionID[0]) {
			return err
		}
		f.Revoked = true
		return put(tx.Bucket(bucketFamilies), f.ID, f)
	})
}

// DeleteDeadFamilies implements identity.FamilyStore.
func (s *DB) DeleteDeadFamilies(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.Update(func(tx *bolt.Tx) error {
		var dead []identity.Family
		err := tx.Bucket(bucketFamilies).ForEach(func(k, v []byte) error {
			var f identity.Family
			if err := json.Unmarshal(v, &f); err != nil {
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
			if tb := tx.Bucket(bucketFamTokens).Bucket([]byte(f.ID)); tb != nil {
				if err := tb.ForEach(func(h, _ []byte) error { return tx.Bucket(bucketTokens).Delete(h) }); err != nil {
					return err
				}
				if err := tx.Bucket(bucketFamTokens).DeleteBucket([]byte(f.ID)); err != nil {
					return err
				}
			}
			if ub := tx.Bucket(bucketUserFams).Bucket([]byte(f.UserID)); ub != nil {
				if err := ub.Delete([]byte(f.ID)); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketFamilies).Delete([]byte(f.ID)); err != nil {
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
