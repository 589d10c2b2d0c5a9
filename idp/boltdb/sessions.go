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

var errNoSession = apperr.Errorf(apperr.ENOTFOUND, "Session not found")

func decodeSession(data []byte) (identity.Session, error) {
	var s identity.Session
	err := json.Unmarshal(data, &s)
	s.AuthTime, s.CreatedAt = s.AuthTime.UTC(), s.CreatedAt.UTC()
	s.LastSeenAt, s.ExpiresAt = s.LastSeenAt.UTC(), s.ExpiresAt.UTC()
	return s, err
}

func getSession(tx *bolt.Tx, id string) (identity.Session, error) {
	data := tx.Bucket(bucketSessions).Get([]byte(id))
	if data == nil {
		return identity.Session{}, errNoSession
	}
	sess, err := decodeSession(data)
	if err != nil {
		return sess, fmt.Errorf("read session %s: %w", id, err)
	}
	return sess, nil
}

// CreateSession implements identity.SessionStore.
func (s *DB) CreateSession(ctx context.Context, sess identity.Session) error {
	if err := sess.Validate(); err != nil {
		return err
	}
	return s.batch(ctx, func(tx *bolt.Tx) error {
		if err := checkEpoch(tx, sess.UserID, sess.Epoch); err != nil {
			return err
		}
		if tx.Bucket(bucketSessions).Get([]byte(sess.ID)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "Session id already taken")
		}
		if tx.Bucket(bucketSessToks).Get([]byte(sess.TokenHash)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "Session token already taken")
		}
		if err := makeRoom(tx, sess.UserID, sess.Pending); err != nil {
			return err
		}
		if err := index(tx.Bucket(bucketUserSess), sess.UserID, sess.ID); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSessToks).Put([]byte(sess.TokenHash), []byte(sess.ID)); err != nil {
			return err
		}
		return put(tx.Bucket(bucketSessions), sess.ID, sess)
	})
}

// GetSession implements identity.SessionStore.
func (s *DB) GetSession(ctx context.Context, id string) (identity.Session, error) {
	var sess identity.Session
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		sess, err = getSession(tx, id)
		return err
	})
	return sess, err
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
		u, err = getUser(tx, sess.UserID)
		return err
	})
	if err != nil {
		return identity.Session{}, identity.User{}, err
	}
	return sess, u, nil
}

// ListSessions implements identity.SessionStore.
func (s *DB) ListSessions(ctx context.Context, userID string) ([]identity.Session, error) {
	var out []identity.Session
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		out, err = userSessions(tx, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// userSessions reads the user's sessions, oldest first (then by id).
func userSessions(tx *bolt.Tx, userID string) ([]identity.Session, error) {
	out := []identity.Session{}
	ids, err := members(tx.Bucket(bucketUserSess), userID)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		sess, err := getSession(tx, id)
		if apperr.Code(err) == apperr.ENOTFOUND {
			continue // a stale index entry
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	slices.SortFunc(out, func(a, b identity.Session) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// UpdateSession implements identity.SessionStore.
func (s *DB) UpdateSession(ctx context.Context, id string, fn func(identity.Session) (identity.Session, error)) (identity.Session, error) {
	var out identity.Session
	// Batched: every request of a user renews LastSeenAt through here.
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		old, err := getSession(tx, id)
		if err != nil {
			return err
		}
		if out, err = fn(old); err != nil {
			return err
		}
		if err := old.CheckUpdate(out); err != nil {
			return err
		}
		if out.TokenHash != old.TokenHash {
			toks := tx.Bucket(bucketSessToks)
			if toks.Get([]byte(out.TokenHash)) != nil {
				return apperr.Errorf(apperr.ECONFLICT, "Session token already taken")
			}
			if err := toks.Delete([]byte(old.TokenHash)); err != nil {
				return err
			}
			if err := toks.Put([]byte(out.TokenHash), []byte(id)); err != nil {
				return err
			}
		}
		data, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketSessions).Put([]byte(id), data); err != nil {
			return err
		}
		out, err = decodeSession(data) // as every later read sees it
		return err
	})
	if err != nil {
		return identity.Session{}, err
	}
	return out, nil
}

// EndSession implements identity.SessionStore.
func (s *DB) EndSession(ctx context.Context, id string) (identity.Session, error) {
	var sess identity.Session
	err := s.write(ctx, func(tx *bolt.Tx) error {
		var err error
		if sess, err = getSession(tx, id); err != nil {
			return err
		}
		if err := revokeFamilies(tx, sess.UserID, sess.ID); err != nil {
			return err
		}
		return deleteSession(tx, sess)
	})
	if err != nil {
		return identity.Session{}, err
	}
	return sess, nil
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

// makeRoom ends the user's oldest sessions (and their families) of the new one's kind until it
// fits under identity.MaxSessionsPerUser (identity.MaxPendingPerUser for a pre-session), so
// logging in again and again cannot grow the store without bound, and half-finished sign-ins
// cannot push real sessions out.
func makeRoom(tx *bolt.Tx, userID string, pending bool) error {
	all, err := userSessions(tx, userID)
	if err != nil {
		return err
	}
	all = slices.DeleteFunc(all, func(s identity.Session) bool { return s.Pending != pending })
	limit := identity.MaxSessionsPerUser
	if pending {
		limit = identity.MaxPendingPerUser
	}
	if len(all) < limit {
		return nil
	}
	for _, sess := range all[:len(all)-limit+1] {
		if err := revokeFamilies(tx, sess.UserID, sess.ID); err != nil {
			return err
		}
		if err := deleteSession(tx, sess); err != nil {
			return err
		}
	}
	return nil
}

// endUserSessions deletes every session of the user.
func endUserSessions(tx *bolt.Tx, userID string) error {
	all, err := userSessions(tx, userID)
	if err != nil || tx.Bucket(bucketUserSess).Bucket([]byte(userID)) == nil {
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
			sess, err := decodeSession(v)
			if err != nil {
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
	err := s.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSecrets).Get([]byte(name)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil || out != nil {
		return out, err
	}
	err = s.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSecrets)
		if v := b.Get([]byte(name)); v != nil {
			out = append([]byte(nil), v...)
			return nil
		}
		if len(fresh) == 0 {
			return apperr.Errorf(apperr.EINVALID, "Secret %s: nothing to store", name)
		}
		if err := b.Put([]byte(name), append([]byte(nil), fresh...)); err != nil {
			return err
		}
		out = append([]byte(nil), fresh...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
