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
	rows, err := s.pool.Query(ctx, `SELECT key, `+counterCols+` FROM throttle_counters WHERE key = ANY($1)`, byteKeys(keys))
	if err != nil {
		return nil, s.fail(err)
	}
	for rows.Next() {
		var k []byte
		c, err := scanCounter(rows, &k)
		if err != nil {
			rows.Close()
			return nil, s.fail(err)
		}
		out[string(k)] = c
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

// counterCols are the columns of a counter, after its key's.
const counterCols = `first_at, until_at, last_at, touched_at, failures, lockouts`

// scanCounter reads the key's columns into keys, then counterCols.
func scanCounter(row pgx.Row, keys ...any) (identity.ThrottleCounter, error) {
	var c identity.ThrottleCounter
	err := row.Scan(append(keys, &c.First, &c.Until, &c.Last, &c.Touched, &c.Failures, &c.Lockouts)...)
	c.First, c.Until, c.Last, c.Touched = c.First.UTC(), c.Until.UTC(), c.Last.UTC(), c.Touched.UTC()
	return c, err
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
	return retryInsertRace(func() error {
		return s.write(ctx, func(tx pgx.Tx) error { return updateThrottle(ctx, tx, sorted, fn) })
	})
}

func updateThrottle(ctx context.Context, tx pgx.Tx, keys []string, fn func(string, identity.ThrottleCounter) identity.ThrottleCounter) error {
	have := map[string]identity.ThrottleCounter{}
	rows, err := tx.Query(ctx, `SELECT key, `+counterCols+`
		FROM throttle_counters WHERE key = ANY($1) ORDER BY key FOR UPDATE`, byteKeys(keys))
	if err != nil {
		return err
	}
	for rows.Next() {
		var k []byte
		c, err := scanCounter(rows, &k)
		if err != nil {
			rows.Close()
			return err
		}
		have[string(k)] = c
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		old, exists := have[k]
		if err := writeCounter(ctx, tx, "throttle_counters", "key", []byte(k), old, fn(k, old), exists); err != nil {
			return err
		}
	}
	return nil
}

// writeCounter stores c, an updater's counter, in place of old (identity.WriteCounter) in the
// row of table whose column keyCol is key (exists: there is one). errInsertRace when another
// transaction made the row since it was read.
func writeCounter(ctx context.Context, tx pgx.Tx, table, keyCol string, key any, old, c identity.ThrottleCounter, exists bool) error {
	args := []any{key, ts(c.First), ts(c.Until), ts(c.Last), ts(c.Touched), c.Failures, c.Lockouts}
	switch identity.WriteCounter(old, c) {
	case identity.CounterDelete:
		_, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE `+keyCol+` = $1`, key)
		return err
	case identity.CounterStore:
		if exists {
			_, err := tx.Exec(ctx, `UPDATE `+table+` SET first_at = $2, until_at = $3, last_at = $4,
				touched_at = $5, failures = $6, lockouts = $7 WHERE `+keyCol+` = $1`, args...)
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO `+table+` (`+keyCol+`, `+counterCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (`+keyCol+`) DO NOTHING`, args...)
		if err == nil && tag.RowsAffected() == 0 {
			return errInsertRace // made meanwhile by another replica: decide again from it
		}
		return err
	}
	return nil
}

// retryInsertRace runs write until it ends otherwise than in errInsertRace, five times at most.
func retryInsertRace(write func() error) error {
	var err error
	for range 5 {
		if err = write(); !errors.Is(err, errInsertRace) {
			break
		}
	}
	return err
}

// DeleteStaleThrottles implements identity.ThrottleStore, in batches that skip rows a login
// holds, so replicas collecting at once neither wait on each other nor on logins.
func (s *DB) DeleteStaleThrottles(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM throttle_counters WHERE key IN (
		SELECT key FROM throttle_counters WHERE touched_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, ts(before))
}
