package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
)

var _ identity.RegistrationTokenStore = (*DB)(nil)

// CreateRegistrationToken implements identity.RegistrationTokenStore.
func (s *DB) CreateRegistrationToken(ctx context.Context, t identity.RegistrationToken) error {
	if err := t.Validate(); err != nil {
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO registration_tokens (hash, id, created_at, expires_at, uses_left)
		VALUES ($1, $2, $3, $4, $5)`, text(t.Hash), text(t.ID), t.CreatedAt, t.ExpiresAt, t.UsesLeft)
	return s.fail(conflict(err))
}

// SpendRegistrationToken implements identity.RegistrationTokenStore: the token's row is read
// FOR UPDATE, so two replicas spending its last use queue and the second reads it gone;
// RegistrationToken.Spend decides, and the row is updated or deleted in the same transaction.
func (s *DB) SpendRegistrationToken(ctx context.Context, hash string, now time.Time) (identity.RegistrationToken, error) {
	var out identity.RegistrationToken
	if _, ok := key(hash); !ok {
		return out, identity.ErrRegistrationToken
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		var t identity.RegistrationToken
		err := tx.QueryRow(ctx, `SELECT hash, id, created_at, expires_at, uses_left FROM registration_tokens
			WHERE hash = $1 FOR UPDATE`, hash).Scan(&t.Hash, &t.ID, &t.CreatedAt, &t.ExpiresAt, &t.UsesLeft)
		if err != nil {
			return noRow(err, identity.ErrRegistrationToken)
		}
		t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
		next, keep, err := t.Spend(now)
		if err != nil {
			return err
		}
		if keep {
			_, err = tx.Exec(ctx, `UPDATE registration_tokens SET uses_left = $2 WHERE hash = $1`, hash, next.UsesLeft)
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM registration_tokens WHERE hash = $1`, hash)
		}
		out = next
		return err
	})
	if err != nil {
		return identity.RegistrationToken{}, s.fail(err)
	}
	return out, nil
}

// DeleteDeadRegistrationTokens implements identity.RegistrationTokenStore, in batches as
// DeleteDeadCodes.
func (s *DB) DeleteDeadRegistrationTokens(ctx context.Context, now time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM registration_tokens WHERE hash IN (
		SELECT hash FROM registration_tokens WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now)
}
