package pgstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
)

var _ identity.ThrottleStore = (*DB)(nil)

// ThrottleCounters implements identity.ThrottleStore: one indexed read, no transaction.
func (s *DB) ThrottleCounters(ctx context.Context, keys ...string) (map[string]identity.ThrottleCounter, error) {
	out := make(map[string]identity.ThrottleCounter, len(keys))
	rows, err := s.pool.Query(ctx, `SELECT key, first_at, until_at, last_at, touched_at, failures, lockouts
		FROM throttle_counters WHERE key = ANY($1)`, byteKeys(keys))
	if err != nil {
		return nil, s.fail(err)
	}
	for rows.Next() {
		k, c, err := scanCounter(rows)
		if err != nil {
			rows.Close()
			return nil, s.fail(err)
		}
		out[k] = c
	}
	return out, s.fail(rows.Err())
}

func byteKeys(keys []string) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out
}

func scanCounter(row pgx.Row) (string, identity.ThrottleCounter, error) {
	var k []byte
	var c identity.ThrottleCounter
	err := row.Scan(&k, &c.First, &c.Until, &c.Last, &c.Touched, &c.Failures, &c.Lockouts)
	c.First, c.Until, c.Last, c.Touched = c.First.UTC(), c.Until.UTC(), c.Last.UTC(), c.Touched.UTC()
	return string(k), c, err
}

// errInsertRace is a counter another transaction created between this one's read and its
// insert: the transaction runs again and then finds it.
var errInsertRace = errors.New("throttle counter created concurrently")

// UpdateThrottle implements identity.ThrottleStore. The keys' rows are locked in key order (so
// two updates of the same keys cannot deadlock) for the time of a few statements; a key whose
// result is the zero counter and that has none costs no write at all (a login's success).
func (s *DB) UpdateThrottle(ctx context.Context, keys []string, fn func(string, identity.ThrottleCounter) identity.ThrottleCounter) error {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var err error
	for range 5 {
		err = s.write(ctx, func(tx pgx.Tx) error { return updateThrottle(ctx, tx, sorted, fn) })
		if !errors.Is(err, errInsertRace) {
			break
		}
	}
	return err
}

func updateThrottle(ctx context.Context, tx pgx.Tx, keys []string, fn func(string, identity.ThrottleCounter) identity.ThrottleCounter) error {
	have := map[string]identity.ThrottleCounter{}
	rows, err := tx.Query(ctx, `SELECT key, first_at, until_at, last_at, touched_at, failures, lockouts
		FROM throttle_counters WHERE key = ANY($1) ORDER BY key FOR UPDATE`, byteKeys(keys))
	if err != nil {
		return err
	}
	for rows.Next() {
		k, c, err := scanCounter(rows)
		if err != nil {
			rows.Close()
			return err
		}
		have[k] = c
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		old, exists := have[k]
		c := fn(k, old)
		switch {
		case c == (identity.ThrottleCounter{}) && exists:
			if _, err := tx.Exec(ctx, `DELETE FROM throttle_counters WHERE key = $1`, []byte(k)); err != nil {
				return err
			}
		case c == (identity.ThrottleCounter{}):
		case exists:
			if _, err := tx.Exec(ctx, `UPDATE throttle_counters SET first_at = $2, until_at = $3, last_at = $4,
				touched_at = $5, failures = $6, lockouts = $7 WHERE key = $1`, counterArgs(k, c)...); err != nil {
				return err
			}
		default:
			tag, err := tx.Exec(ctx, `INSERT INTO throttle_counters (key, first_at, until_at, last_at, touched_at, failures, lockouts)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING`, counterArgs(k, c)...)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errInsertRace
			}
		}
	}
	return nil
}

func counterArgs(k string, c identity.ThrottleCounter) []any {
	return []any{[]byte(k), ts(c.First), ts(c.Until), ts(c.Last), ts(c.Touched), c.Failures, c.Lockouts}
}

// DeleteStaleThrottles implements identity.ThrottleStore, in batches that skip rows a login
// holds, so replicas collecting at once neither wait on each other nor on logins.
func (s *DB) DeleteStaleThrottles(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM throttle_counters WHERE key IN (
		SELECT key FROM throttle_counters WHERE touched_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, ts(before))
}
