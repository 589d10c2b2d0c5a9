package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoSession = apperr.Errorf(apperr.ENOTFOUND, "Session not found")

// sessionCols are the columns of a session, of the table aliased s.
const sessionCols = `s.id, s.token_hash, s.user_id, s.epoch, s.auth_time, s.amr, s.created_at, s.last_seen_at,
	s.idle_ttl, s.expires_at, s.remote_addr, s.user_agent, s.pending, s.idp, s.clients`

func scanSession(row pgx.Row, more ...any) (identity.Session, error) {
	var s identity.Session
	dest := []any{&s.ID, &s.TokenHash, &s.UserID, &s.Epoch, &s.AuthTime, &s.AMR, &s.CreatedAt, &s.LastSeenAt,
		&s.IdleTTL, &s.ExpiresAt, &s.RemoteAddr, &s.UserAgent, &s.Pending, &s.IDP, &s.Clients}
	err := row.Scan(append(dest, more...)...)
	if len(s.Clients) == 0 {
		s.Clients = nil // as the bbolt store reads none back
	}
	s.AuthTime, s.CreatedAt = s.AuthTime.UTC(), s.CreatedAt.UTC()
	s.LastSeenAt, s.ExpiresAt = s.LastSeenAt.UTC(), s.ExpiresAt.UTC()
	return found(s, err, errNoSession)
}

// storedSession is sess as it is written and as every later read sees it: free text made
// storable, times UTC to the microsecond, the idle limit to the microsecond (an interval's
// precision), the AMR a copy of its own.
func storedSession(sess identity.Session) identity.Session {
	sess.AMR, sess.RemoteAddr, sess.UserAgent, sess.IDP = texts(sess.AMR), text(sess.RemoteAddr), text(sess.UserAgent), text(sess.IDP)
	sess.AuthTime, sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = ts(sess.AuthTime), ts(sess.CreatedAt), ts(sess.LastSeenAt), ts(sess.ExpiresAt)
	sess.IdleTTL = sess.IdleTTL.Truncate(time.Microsecond)
	if sess.Clients = texts(sess.Clients); len(sess.Clients) == 0 {
		sess.Clients = nil
	}
	return sess
}

func sessionArgs(sess identity.Session) []any {
	return []any{sess.ID, sess.TokenHash, sess.UserID, sess.Epoch, sess.AuthTime, sess.AMR, sess.CreatedAt, sess.LastSeenAt,
		sess.IdleTTL, sess.ExpiresAt, sess.RemoteAddr, sess.UserAgent, sess.Pending, sess.IDP, append([]string{}, sess.Clients...)}
}

const insertSession = `INSERT INTO sessions
	(id, token_hash, user_id, epoch, auth_time, amr, created_at, last_seen_at, idle_ttl, expires_at, remote_addr, user_agent, pending, idp, clients)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

// CreateSession implements identity.SessionStore. The user's row is locked FOR NO KEY UPDATE
// from the epoch check to the commit: a credential change (FOR UPDATE) either committed
// before — and the check refuses — or waits and then ends this session; and a user's session
// creations queue, so two logins past the bound do not both end the same oldest session and
// leave one too many. (Foreign-key checks take FOR KEY SHARE, which this lock does not block.)
func (s *DB) CreateSession(ctx context.Context, sess identity.Session) error {
	sess = storedSession(sess)
	return s.createAtEpoch(ctx, sess.Validate(), sess.UserID, sess.Epoch, "NO KEY UPDATE", func(tx pgx.Tx) error {
		// The sessions sess evicts (identity.Session.Evicts: of its kind, past the newest
		// KindLimit-1) end, with their families, to make room for it (none, almost always).
		rows, err := tx.Query(ctx, `SELECT id FROM sessions WHERE user_id = $1 AND pending = $3
			ORDER BY created_at DESC, id DESC OFFSET $2`, sess.UserID, sess.KindLimit()-1, sess.Pending)
		if err != nil {
			return err
		}
		old, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(old) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked = true
				WHERE user_id = $1 AND session_id = ANY($2) AND NOT revoked`, sess.UserID, old); err != nil {
				return err
			}
			if err := endSessions(ctx, tx, `DELETE FROM sessions WHERE id = ANY($1)`, old); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, insertSession, sessionArgs(sess)...)
		return conflict(err)
	})
}

// GetSession implements identity.SessionStore.
func (s *DB) GetSession(ctx context.Context, id string) (identity.Session, error) {
	return getRow(ctx, s, id, errNoSession, func(r pgx.Row) (identity.Session, error) { return scanSession(r) },
		`SELECT `+sessionCols+` FROM sessions s WHERE s.id = $1`)
}

// SessionByToken implements identity.SessionStore: one statement, one snapshot.
func (s *DB) SessionByToken(ctx context.Context, tokenHash string) (identity.Session, identity.User, error) {
	tokenHash, ok := key(tokenHash)
	if !ok {
		return identity.Session{}, identity.User{}, errNoSession
	}
	var r userRow
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+`, `+userColsOf("u")+`
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1`, tokenHash), r.dest()...)
	if err != nil {
		return identity.Session{}, identity.User{}, s.fail(err)
	}
	u, err := r.user()
	if err != nil {
		return identity.Session{}, identity.User{}, s.fail(err)
	}
	return sess, u, nil
}

// ListSessions implements identity.SessionStore.
func (s *DB) ListSessions(ctx context.Context, userID string) ([]identity.Session, error) {
	return listFor(ctx, s, userID, func(r pgx.Row) (identity.Session, error) { return scanSession(r) },
		`SELECT `+sessionCols+` FROM sessions s WHERE s.user_id = $1 ORDER BY s.created_at, s.id`)
}

// UpdateSession implements identity.SessionStore: the session's row is locked FOR UPDATE as
// it is read, so concurrent updaters queue.
func (s *DB) UpdateSession(ctx context.Context, id string, fn func(identity.Session) (identity.Session, error)) (identity.Session, error) {
	return updateRow(ctx, s, id, errNoSession, `SELECT `+sessionCols+` FROM sessions s WHERE s.id = $1 FOR UPDATE`,
		func(r pgx.Row) (identity.Session, error) { return scanSession(r) },
		func(old identity.Session) (identity.Session, bool, error) { return kept(identity.Apply(old, fn)) },
		func(tx pgx.Tx, sess identity.Session) (identity.Session, error) {
			sess = storedSession(sess)
			_, err := tx.Exec(ctx, `UPDATE sessions SET token_hash = $2, auth_time = $5, amr = $6, created_at = $7,
				last_seen_at = $8, idle_ttl = $9, expires_at = $10, remote_addr = $11, user_agent = $12, pending = $13, idp = $14,
				clients = $15 WHERE id = $1 AND user_id = $3 AND epoch = $4`, sessionArgs(sess)...)
			return sess, conflict(err)
		})
}

// EndSession implements identity.SessionStore. The families bound to the session are revoked
// before the session's row is deleted, the order a credential change takes its locks in
// (families, then sessions), so the two do not deadlock.
func (s *DB) EndSession(ctx context.Context, id string) (identity.Session, error) {
	id, ok := key(id)
	if !ok {
		return identity.Session{}, errNoSession
	}
	var sess identity.Session
	err := s.write(ctx, func(tx pgx.Tx) error {
		var userID string
		if err := tx.QueryRow(ctx, `SELECT user_id FROM sessions WHERE id = $1`, id).Scan(&userID); err != nil {
			return noRow(err, errNoSession)
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked = true WHERE user_id = $1 AND session_id = $2 AND NOT revoked`,
			userID, id); err != nil {
			return err
		}
		// Ended meanwhile by another: this transaction rolls back, its revocations with it.
		var err error
		if sess, err = scanSession(tx.QueryRow(ctx, `DELETE FROM sessions s WHERE s.id = $1 RETURNING `+sessionCols, id)); err != nil {
			return err
		}
		return logoutMail(ctx, tx, []identity.Session{sess})
	})
	if err != nil {
		return identity.Session{}, err
	}
	return sess, nil
}

// endSessions runs sql, a DELETE of sessions that end before their time (not an expiry), and
// queues in tx the back-channel logout notices of the clients that got tokens from them.
func endSessions(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	return tellClients(ctx, tx, sql+` RETURNING id, user_id, clients`, args...)
}

// tellClients queues in tx the back-channel logout notices of the sessions query (id, user_id,
// clients) returns: those that end.
func tellClients(ctx context.Context, tx pgx.Tx, query string, args ...any) error {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	ended, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (identity.Session, error) {
		var s identity.Session
		return s, r.Scan(&s.ID, &s.UserID, &s.Clients)
	})
	if err != nil {
		return err
	}
	return logoutMail(ctx, tx, ended)
}

// logoutMail queues in tx the back-channel logout notices of ended sessions
// (identity.LogoutMail), reading their clients in tx.
func logoutMail(ctx context.Context, tx pgx.Tx, ended []identity.Session) error {
	var mails []identity.Mail
	for _, sess := range ended {
		m, err := identity.LogoutMail(sess, func(id string) (identity.Client, error) {
			return scanClient(tx.QueryRow(ctx, `SELECT `+clientCols+` FROM oauth_clients WHERE id = $1`, id))
		}, time.Now())
		if err != nil {
			return err
		}
		mails = append(mails, m...)
	}
	return record(ctx, tx, nil, mails)
}

// DeleteDeadSessions implements identity.SessionStore, in batches as DeleteDeadFamilies.
func (s *DB) DeleteDeadSessions(ctx context.Context, now time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM sessions WHERE id IN (
		SELECT id FROM sessions
		WHERE expires_at <= $1 OR (idle_ttl > interval '0' AND last_seen_at + idle_ttl <= $1)
		LIMIT $2 FOR UPDATE SKIP LOCKED)`, now)
}
