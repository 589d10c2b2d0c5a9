package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"jwtidp/shared/apperr"
)

// Secret implements identity.SecretStore. Every start but the first reads the stored secret;
// processes racing on the first start insert with ON CONFLICT DO NOTHING (which waits for a
// concurrent insert of the name to commit), then all read the one row that won.
func (s *DB) Secret(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	name, ok := key(name)
	if !ok {
		return nil, apperr.Errorf(apperr.EINVALID, "Secret %q: not a valid name", name)
	}
	v, err := s.readSecret(ctx, name)
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return v, s.fail(err)
	}
	if len(fresh) == 0 {
		return nil, apperr.Errorf(apperr.EINVALID, "Secret %s: nothing to store", name)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
		return nil, s.fail(err)
	}
	v, err = s.readSecret(ctx, name)
	return v, s.fail(err)
}

// readSecret returns a secret in a slice of the caller's own (pgx allocates it).
func (s *DB) readSecret(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v); err != nil {
		return nil, err
	}
	return v, nil
}
