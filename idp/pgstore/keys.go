package pgstore

import (
	"context"
	"reflect"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"jwtidp/idp/identity"
)

// Keys implements identity.KeyStore.
func (s *DB) Keys(ctx context.Context) ([]identity.SigningKey, error) {
	keys, err := readKeys(ctx, s.pool)
	if err != nil {
		return nil, s.fail(err)
	}
	return keys, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readKeys reads every key, ordered by ID byte by byte (the column is COLLATE "C").
func readKeys(ctx context.Context, q querier) ([]identity.SigningKey, error) {
	rows, err := q.Query(ctx, `SELECT id, state, private_der, created_at, signs_from, retired_at, delete_at
		FROM signing_keys ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []identity.SigningKey{}
	for rows.Next() {
		var k identity.SigningKey
		var retired, del pgtype.Timestamptz
		if err := rows.Scan(&k.ID, &k.State, &k.PrivateDER, &k.CreatedAt, &k.SignsFrom, &retired, &del); err != nil {
			return nil, err
		}
		k.CreatedAt, k.SignsFrom = k.CreatedAt.UTC(), k.SignsFrom.UTC()
		k.RetiredAt, k.DeleteAt = fromNull(retired), fromNull(del)
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// storedKey is k as every later read sees it.
func storedKey(k identity.SigningKey) identity.SigningKey {
	k.State = identity.KeyState(text(string(k.State)))
	k.CreatedAt, k.SignsFrom, k.RetiredAt, k.DeleteAt = ts(k.CreatedAt), ts(k.SignsFrom), ts(k.RetiredAt), ts(k.DeleteAt)
	return k
}

// UpdateKeys implements identity.KeyStore. Writers of the key set serialize on a SHARE ROW
// EXCLUSIVE lock of the table (which conflicts with itself and with every write, not with
// reads), taken before the set is read, so every update decides on the set the one before it
// stored: N replicas racing to rotate rotate once.
func (s *DB) UpdateKeys(ctx context.Context, update func([]identity.SigningKey) ([]identity.SigningKey, error)) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		old, err := readKeys(ctx, tx)
		if err != nil {
			return err
		}
		next, gone, err := identity.ApplyKeys(old, update)
		if err != nil {
			return err
		}
		if len(gone) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM signing_keys WHERE id = ANY($1)`, gone); err != nil {
				return err
			}
		}
		byID := map[string]identity.SigningKey{}
		for _, k := range old {
			byID[k.ID] = k
		}
		for _, k := range next {
			k = storedKey(k)
			if was, ok := byID[k.ID]; ok && reflect.DeepEqual(was, k) {
				continue // unchanged: a schedule check that decides nothing writes nothing
			}
			_, err := tx.Exec(ctx, `INSERT INTO signing_keys (id, state, private_der, created_at, signs_from, retired_at, delete_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, private_der = EXCLUDED.private_der,
					created_at = EXCLUDED.created_at, signs_from = EXCLUDED.signs_from,
					retired_at = EXCLUDED.retired_at, delete_at = EXCLUDED.delete_at`,
				k.ID, k.State, k.PrivateDER, k.CreatedAt, k.SignsFrom, nullTime(k.RetiredAt), nullTime(k.DeleteAt))
			if err != nil {
				return conflict(err)
			}
		}
		return nil
	})
}
