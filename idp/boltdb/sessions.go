package boltdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoSession = apperr.Errorf(apperr.ENOTFOUND, "Session not found")

// CreateSession implements identity.SessionStore.
func (s *DB) CreateSession(ctx context.Context, sess identity.Session) error {
	if err := sess.Validate(); err != nil {
		return err
	}
	return s.Batch(func(tx *bolt.Tx) error {
		if err := checkEpoch(tx, sess.UserID, sess.Epoch); err != nil {
			return err
		}
		if tx.Bucket(bucketSessions).Get([]byte(sess.ID)) != nil || tx.Bucket(bucketSessToks).Get([]byte(sess.TokenHash)) != nil {
			return fmt.Errorf("create session: id or token already taken")
		}
		ub, err := tx.Bucket(bucketUserSess).CreateBucketIfNotExists([]byte(sess.UserID))
		if err != nil {
			return err
		}
		if err := ub.Put([]byte(sess.ID), nil); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSessToks).Put([]byte(sess.TokenHash), []byte(sess.ID)); err != nil {
			return err
		}
		return put(tx.Bucket(bucketSessions), sess.ID, sess)
	})
}

func getSession(tx *bolt.Tx, id string) (identity.Session, error) {
	var sess identity.Session
	ok, err := get(tx.Bucket(bucketSessions), id, &sess)
	if err != nil {
		return sess, fmt.Errorf("read session %s: %w", id, err)
	}
	if !ok {
		return sess, errNoSession
	}
	return sess, nil
}

// SessionByToken implements identity.SessionStore.
func (s *DB) SessionByToken(ctx context.Context, tokenHash string) (identity.Session, identity.User, error) {
	var sess identity.Session
	var u identity.User
	err := s.DB.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketSessToks).Get([]byte(tokenHash))
		if id == nil {
			return errNoSession
		}
		var err error
		if sess, err = getSession(tx, string(id)); err != nil {
			return err
		}
		return getUser(tx, sess.UserID, &u)
	})
	return sess, u, err
}

// TouchSession implements identity.SessionStore.
func (s *DB) TouchSession(ctx context.Context, id string, at time.Time) error {
	return s.Batch(func(tx *bolt.Tx) error {
		sess, err := getSession(tx, id)
		if apperr.Code(err) == apperr.ENOTFOUND || (err == nil && !at.After(sess.LastSeenAt)) {
			return nil
		}
		if err != nil {
			return err
		}
		sess.LastSeenAt = at
		return put(tx.Bucket(bucketSessions), id, sess)
	})
}

// EndSession implements identity.SessionStore.
func (s *DB) EndSession(ctx context.Context, id string) (identity.Session, error) {
	var sess identity.Session
	err := s.Update(func(tx *bolt.Tx) error {
		var err error
		if sess, err = getSession(tx, id); err != nil {
			return err
		}
		if err := revokeUserFamilies(tx, sess.UserID, sess.ID); err != nil {
			return err
		}
		return deleteSession(tx, sess)
	})
	return sess, err
}

func deleteSession(tx *bolt.Tx, sess identity.Session) error {
	if err := tx.Bucket(bucketSessToks).Delete([]byte(sess.TokenHash)); err != nil {
		return err
	}
	if ub := tx.Bucket(bucketUserSess).Bucket([]byte(sess.UserID)); ub != nil {
		if err := ub.Delete([]byte(sess.ID)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketSessions).Delete([]byte(sess.ID))
}

// endUserSessions deletes every session of the user.
func endUserSessions(tx *bolt.Tx, userID string) error {
	ub := tx.Bucket(bucketUserSess).Bucket([]byte(userID))
	if ub == nil {
		return nil
	}
	var all []identity.Session
	err := ub.ForEach(func(k, _ []byte) error {
		sess, err := getSession(tx, string(k))
		if apperr.Code(err) == apperr.ENOTFOUND {
			return nil
		}
		all = append(all, sess)
		return err
	})
	if err != nil {
		return err
	}
	for _, sess := range all {
		if err := deleteSession(tx, sess); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketUserSess).DeleteBucket([]byte(userID))
}

// DeleteDeadSessions implements identity.SessionStore.
func (s *DB) DeleteDeadSessions(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.Update(func(tx *bolt.Tx) error {
		var dead []identity.Session
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var sess identity.Session
			if err := json.Unmarshal(v, &sess); err != nil {
				return fmt.Errorf("read session %s: %w", k, err)
			}
			if sess.Dead(now) {
				dead = append(dead, sess)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, sess := range dead {
			if err := deleteSession(tx, sess); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	return n, err
}

// Secret implements identity.SecretStore.
func (s *DB) Secret(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	var out []byte
	// Read first: every start but the first finds it, and a read costs no write or fsync.
	s.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSecrets).Get([]byte(name)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if out != nil {
		return out, nil
	}
	err := s.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSecrets)
		if v := b.Get([]byte(name)); v != nil {
			out = append([]byte(nil), v...)
			return nil
		}
		if len(fresh) == 0 {
			return fmt.Errorf("secret %s: nothing to store", name)
		}
		out = append([]byte(nil), fresh...)
		return b.Put([]byte(name), out)
	})
	return out, err
}
