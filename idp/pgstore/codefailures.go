package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
)

var _ identity.CodeFailureStore = (*DB)(nil)

// UpdateCodeFailures implements identity.CodeFailureStore: the user's row is locked (FOR
// UPDATE) for the few statements of the decision, so replicas counting at once each see the
// others' counts. A result equal to what is stored writes nothing.
func (s *DB) UpdateCodeFailures(ctx context.Context, userID string, fn func(identity.ThrottleCounter) identity.ThrottleCounter) (identity.ThrottleCounter, error) {
	var out identity.ThrottleCounter
	var err error
	for range 5 {
		err = s.write(ctx, func(tx pgx.Tx) error {
			c, err := updateCodeFailures(ctx, tx, userID, fn)
			out = c
			return err
		})
		if !errors.Is(err, errInsertRace) {
			break
		}
	}
	if err != nil {
		return identity.ThrottleCounter{}, err
	}
	return out, nil
}

func updateCodeFailures(ctx context.Context, tx pgx.Tx, userID string, fn func(identity.ThrottleCounter) identity.ThrottleCounter) (identity.ThrottleCounter, error) {
	var old identity.ThrottleCounter
	exists := true
	err := tx.QueryRow(ctx, `SELECT first_at, until_at, last_at, touched_at, failures, lockouts
		FROM code_failures WHERE user_id = $1 FOR UPDATE`, userID).
		Scan(&old.First, &old.Until, &old.Last, &old.Touched, &old.Failures, &old.Lockouts)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		exists, err = false, nil
	case err != nil:
		return old, err
	default:
		old.First, old.Until, old.Last, old.Touched = old.First.UTC(), old.Until.UTC(), old.Last.UTC(), old.Touched.UTC()
	}
	c := fn(old)
	args := []any{userID, ts(c.First), ts(c.Until), ts(c.Last), ts(c.Touched), c.Failures, c.Lockouts}
	switch {
	case c == old:
	case c == (identity.ThrottleCounter{}):
		_, err = tx.Exec(ctx, `DELETE FROM code_failures WHERE user_id = $1`, userID)
	case exists:
		_, err = tx.Exec(ctx, `UPDATE code_failures SET first_at = $2, until_at = $3, last_at = $4,
			touched_at = $5, failures = $6, lockouts = $7 WHERE user_id = $1`, args...)
	default:
		tag, ierr := tx.Exec(ctx, `INSERT INTO code_failures (user_id, first_at, until_at, last_at, touched_at, failures, lockouts)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id) DO NOTHING`, args...)
		if err = ierr; err == nil && tag.RowsAffected() == 0 {
			err = errInsertRace // another replica made the row meanwhile: decide again from it
		}
	}
	return c, err
}

// DeleteStaleCodeFailures implements identity.CodeFailureStore, in batches that skip rows a
// sign-in holds.
func (s *DB) DeleteStaleCodeFailures(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM code_failures WHERE user_id IN (
		SELECT user_id FROM code_failures WHERE touched_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, ts(before))
}
