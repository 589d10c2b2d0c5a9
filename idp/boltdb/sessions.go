package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoSession = apperr.Errorf(apperr.ENOTFOUND, "Session not found")

var sessions = table[identity.Session]{bucket: bucketSessions, name: "session", missing: errNoSession,
	taken: apperr.Errorf(apperr.ECONFLICT, "Session id already taken"),
	utc: func(s *identity.Session) {
		s.AuthTime, s.CreatedAt = s.AuthTime.UTC(), s.CreatedAt.UTC()
		s.LastSeenAt, s.ExpiresAt = s.LastSeenAt.UTC(), s.ExpiresAt.UTC()
	}}

var errSessionToken = apperr.Errorf(apperr.ECONFLICT, "Session token already taken")

// CreateSession implements identity.SessionStore.
func (s *DB) CreateSession(ctx context.Context, sess identity.Session) error {
	return s.createAtEpoch(ctx, sess.Validate(), sess.UserID, sess.Epoch, func(tx *bolt.Tx) error {
		if err := sessions.create(tx, sess.ID, sess); err != nil {
			return err
		}
		if err := moveKey(tx.Bucket(bucketSessToks), "", sess.TokenHash, sess.ID, errSessionToken); err != nil {
			return err
		}
		if err := makeRoom(tx, sess); err != nil {
			return err
		}
		return index(tx.Bucket(bucketUserSess), sess.UserID, sess.ID)
	})
}

// GetSession implements identity.SessionStore.
func (s *DB) GetSession(ctx context.Context, id string) (identity.Session, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.Session, error) { return sessions.get(tx, id) })
}

// SessionByToken implements identity.SessionStore.
func (s *DB) SessionByToken(ctx context.Context, tokenHash string) (identity.Session, identity.User, error) {
	var sess identity.Session
	u, err := result(ctx, s.view, func(tx *bolt.Tx) (identity.User, error) {
		id := tx.Bucket(bucketSessToks).Get([]byte(tokenHash))
		if id == nil {
			return identity.User{}, errNoSession
		}
		var err error
		if sess, err = sessions.get(tx, string(id)); err != nil {
			return identity.User{}, err
		}
		return users.get(tx, sess.UserID)
	})
	if err != nil {
		return identity.Session{}, identity.User{}, err
	}
	return sess, u, nil
}

// ListSessions implements identity.SessionStore.
func (s *DB) ListSessions(ctx context.Context, userID string) ([]identity.Session, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) ([]identity.Session, error) { return userSessions(tx, userID) })
}

// userSessions reads the user's sessions, oldest first (then by id).
func userSessions(tx *bolt.Tx, userID string) ([]identity.Session, error) {
	return sessions.owned(tx, bucketUserSess, userID, func(s identity.Session) time.Time { return s.CreatedAt })
}

// UpdateSession implements identity.SessionStore.
func (s *DB) UpdateSession(ctx context.Context, id string, fn func(identity.Session) (identity.Session, error)) (identity.Session, error) {
	// Batched: every request of a user renews LastSeenAt through here.
	return result(ctx, s.batch, func(tx *bolt.Tx) (identity.Session, error) {
		return sessions.update(tx, id, func(old identity.Session) (identity.Session, error) {
			next, err := identity.Apply(old, fn)
			if err != nil || next.TokenHash == old.TokenHash {
				return next, err
			}
			return next, moveKey(tx.Bucket(bucketSessToks), old.TokenHash, next.TokenHash, id, errSessionToken)
		})
	})
}

// EndSession implements identity.SessionStore.
func (s *DB) EndSession(ctx context.Context, id string) (identity.Session, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.Session, error) {
		sess, err := sessions.get(tx, id)
		if err != nil {
			return sess, err
		}
		if err := revokeFamilies(tx, sess.UserID, sess.ID); err != nil {
			return sess, err
		}
		return sess, endSession(tx, sess)
	})
}

// endSession deletes a session that ends before its time (not an expiry) and queues, in the
// same transaction, the back-channel logout notices of the clients that got tokens from it
// (identity.LogoutMail).
func endSession(tx *bolt.Tx, sess identity.Session) error {
	mails, err := identity.LogoutMail(sess, func(id string) (identity.Client, error) { return clients.get(tx, id) }, time.Now())
	if err != nil {
		return err
	}
	if err := enqueue(tx, mails); err != nil {
		return err
	}
	return deleteSession(tx, sess)
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
	return sessions.delete(tx, sess.ID)
}

// makeRoom ends the user's sessions (and their families) that sess, a new one, evicts
// (identity.Session.Evicts), so logging in again and again cannot grow the store without bound,
// and half-finished sign-ins cannot push real sessions out.
func makeRoom(tx *bolt.Tx, sess identity.Session) error {
	all, err := userSessions(tx, sess.UserID)
	if err != nil {
		return err
	}
	for _, old := range sess.Evicts(all) {
		if err := revokeFamilies(tx, old.UserID, old.ID); err != nil {
			return err
		}
		if err := endSession(tx, old); err != nil {
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
		if err := endSession(tx, sess); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketUserSess).DeleteBucket([]byte(userID))
}

// DeleteDeadSessions implements identity.SessionStore.
func (s *DB) DeleteDeadSessions(ctx context.Context, now time.Time) (int, error) {
	return deleteAll(s, sessions, func(sess identity.Session) bool { return sess.Dead(now) }, deleteSession)
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
