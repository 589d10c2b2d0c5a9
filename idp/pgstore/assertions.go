package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
)

// UseAssertion implements identity.AssertionStore in one statement: the insert takes the
// (client, jti) row, or replaces it only when the use it holds has expired. Two replicas
// using one jti at once meet at the primary key: the second waits for the first, then finds a
// live row and changes nothing.
func (s *DB) UseAssertion(ctx context.Context, a identity.UsedAssertion, now time.Time) error {
	if err := a.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
			WHERE client_assertions.expires_at <= $4`, a.ClientID, a.JTI, ts(a.ExpiresAt), ts(now))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return identity.ErrAssertionReplayed
		}
		return nil
	})
}

// DeleteExpiredAssertions implements identity.AssertionStore, in batches that skip rows a use
// holds.
func (s *DB) DeleteExpiredAssertions(ctx context.Context, now time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM client_assertions WHERE (client_id, jti) IN (
		SELECT client_id, jti FROM client_assertions WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, ts(now))
}
