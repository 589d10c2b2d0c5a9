package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
)

// UpdateCodeFailures implements identity.CodeFailureStore: the user's row is locked (FOR
// UPDATE) for the few statements of the decision, so replicas counting at once each see the
// others' counts. A result equal to what is stored writes nothing.
func (s *DB) UpdateCodeFailures(ctx context.Context, userID string, fn func(identity.ThrottleCounter) identity.ThrottleCounter) (identity.ThrottleCounter, error) {
	var out identity.ThrottleCounter
	err := retryInsertRace(func() error {
		return s.write(ctx, func(tx pgx.Tx) error {
			old, err := scanCounter(tx.QueryRow(ctx, `SELECT `+counterCols+` FROM code_failures WHERE user_id = $1 FOR UPDATE`, userID))
			exists := !errors.Is(err, pgx.ErrNoRows)
			if exists && err != nil {
				return err
			}
			if !exists {
				old = identity.ThrottleCounter{}
			}
			out = fn(old)
			return writeCounter(ctx, tx, "code_failures", "user_id", userID, old, out, exists)
		})
	})
	if err != nil {
		return identity.ThrottleCounter{}, err
	}
	return out, nil
}

// DeleteStaleCodeFailures implements identity.CodeFailureStore, in batches that skip rows a
// sign-in holds.
func (s *DB) DeleteStaleCodeFailures(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM code_failures WHERE user_id IN (
		SELECT user_id FROM code_failures WHERE touched_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, ts(before))
}
