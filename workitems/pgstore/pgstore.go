// Package pgstore keeps work items in PostgreSQL, for several work-item processes sharing one
// database. It passes the same conformance suite as the bbolt store (workitems/storetest): ids
// come from one sequence for the whole store, only grow and are never reused; a user's items
// list in id order from the index (owner, id).
//
// Schema: one table, workitems (see migrations/), versioned in workitems_schema_version, so the
// IdP may share the database.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
	"jwtidp/workitems/workitem"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Schema is the service's versioned schema, which Open applies and `workitems migrate` may
// apply alone.
var Schema = pgdb.Schema{FS: pgdb.Sub(migrations, "migrations"), Table: "workitems_schema_version"}

// DB implements workitem.Store on a pgx pool.
type DB struct {
	pool *pgxpool.Pool
	rep  *pgdb.Reporter // logs an unreachable database once a minute, not once a request
}

var _ workitem.Store = (*DB)(nil)

// Open connects to the database, migrates the schema (replicas starting together migrate
// once) and returns the store. A server that does not answer within cfg.ConnectTimeout is an
// error naming its host.
func Open(ctx context.Context, cfg pgdb.Config, logger *slog.Logger) (*DB, error) {
	pool, err := pgdb.Open(ctx, cfg, Schema, logger)
	if err != nil {
		return nil, fmt.Errorf("work-item store: %w", err)
	}
	s := &DB{pool: pool, rep: pgdb.NewReporter(logger)}
	return s, nil
}

// SetLogger sets where storage failures are reported.
func (s *DB) SetLogger(l *slog.Logger) { s.rep.SetLogger(l) }

// Ping reports whether the database answers (readiness).
func (s *DB) Ping(ctx context.Context) error { return s.err(s.pool.Ping(ctx)) }

// Close closes the pool.
func (s *DB) Close() error {
	s.pool.Close()
	return nil
}

// Pool is the store's pool, for tools that need the database itself.
func (s *DB) Pool() *pgxpool.Pool { return s.pool }

// err maps a database error to the store's vocabulary (pgdb.Err): an unreachable database is
// EUNAVAILABLE, reported once a minute.
func (s *DB) err(err error) error { return s.rep.Fail(err) }

func notFound() error { return apperr.Errorf(apperr.ENOTFOUND, "Work item not found") }

// dbID is id as the bigint column holds it; ok is false for an id no row can have.
func dbID(id uint64) (int64, bool) {
	if id == 0 || id > math.MaxInt64 {
		return 0, false
	}
	return int64(id), true
}

// columns are what scan reads; the owner is the caller's, never read back.
const columns = "id, title, done, created_at, updated_at"

// scan reads one row of columns into an item of owner's, with its times in UTC.
func scan(row pgx.Row, owner string) (workitem.Item, error) {
	var id int64
	it := workitem.Item{Owner: owner}
	if err := row.Scan(&id, &it.Title, &it.Done, &it.CreatedAt, &it.UpdatedAt); err != nil {
		return workitem.Item{}, err
	}
	it.ID = uint64(id)
	it.CreatedAt, it.UpdatedAt = it.CreatedAt.UTC(), it.UpdatedAt.UTC()
	return it, nil
}

// Create implements workitem.Store. The item is read back as the database stored it (times to
// the microsecond), as every later read sees it.
func (s *DB) Create(ctx context.Context, it workitem.Item) (workitem.Item, error) {
	if err := it.Validate(); err != nil {
		return workitem.Item{}, err
	}
	out, err := scan(s.pool.QueryRow(ctx,
		`INSERT INTO workitems (owner, title, done, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
		 RETURNING `+columns,
		[]byte(it.Owner), it.Title, it.Done, it.CreatedAt, it.UpdatedAt), it.Owner)
	if err != nil {
		return workitem.Item{}, s.err(fmt.Errorf("create item: %w", err))
	}
	return out, nil
}

// Get implements workitem.Store.
func (s *DB) Get(ctx context.Context, owner string, id uint64) (workitem.Item, error) {
	n, ok := dbID(id)
	if !ok {
		return workitem.Item{}, notFound()
	}
	it, err := scan(s.pool.QueryRow(ctx,
		`SELECT `+columns+` FROM workitems WHERE id = $1 AND owner = $2`, n, []byte(owner)), owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return workitem.Item{}, notFound()
	}
	if err != nil {
		return workitem.Item{}, s.err(fmt.Errorf("get item: %w", err))
	}
	return it, nil
}

// List implements workitem.Store: one statement on the index (owner, id), or for every owner
// on the primary key, outside a transaction. The rows are read into one set of destinations,
// and an owner's own items take the owner from the filter rather than from each row: a list is
// the service's hot path.
func (s *DB) List(ctx context.Context, f workitem.Filter) ([]workitem.Item, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	items := make([]workitem.Item, 0, min(f.Limit, 32))
	if f.After >= math.MaxInt64 { // no id is larger
		return items, nil
	}
	var (
		id    int64
		owner []byte
		it    workitem.Item
	)
	dest := []any{&id, &it.Title, &it.Done, &it.CreatedAt, &it.UpdatedAt, &owner}
	// Two statements, not one with an optional owner: each keeps a plan on its own index.
	var rows pgx.Rows
	var err error
	if f.AllOwners {
		rows, err = s.pool.Query(ctx, `SELECT `+columns+`, owner FROM workitems WHERE id > $1 ORDER BY id LIMIT $2`,
			int64(f.After), f.Limit)
	} else {
		dest = dest[:5]
		rows, err = s.pool.Query(ctx, `SELECT `+columns+` FROM workitems WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3`,
			[]byte(f.Owner), int64(f.After), f.Limit)
	}
	if err != nil {
		return nil, s.err(fmt.Errorf("list items: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, s.err(fmt.Errorf("list items: %w", err))
		}
		it.ID, it.Owner = uint64(id), f.Owner
		if f.AllOwners {
			it.Owner = string(owner)
		}
		it.CreatedAt, it.UpdatedAt = it.CreatedAt.UTC(), it.UpdatedAt.UTC()
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(fmt.Errorf("list items: %w", err))
	}
	return items, nil
}

// Update implements workitem.Store. The row is locked (FOR UPDATE) from the read fn is given
// to the write, so concurrent updaters, in this process or another, take turns and none is
// lost. A retried transaction runs fn again.
func (s *DB) Update(ctx context.Context, owner string, id uint64, fn func(workitem.Item) (workitem.Item, error)) (workitem.Item, error) {
	n, ok := dbID(id)
	if !ok {
		return workitem.Item{}, notFound()
	}
	var out workitem.Item
	err := pgdb.InTx(ctx, s.pool, pgx.ReadCommitted, func(tx pgx.Tx) error {
		old, err := scan(tx.QueryRow(ctx,
			`SELECT `+columns+` FROM workitems WHERE id = $1 AND owner = $2 FOR UPDATE`, n, []byte(owner)), owner)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound()
		}
		if err != nil {
			return fmt.Errorf("update item: %w", err)
		}
		it, err := fn(old)
		if err != nil {
			return err
		}
		if it.ID != id || it.Owner != owner {
			return apperr.Errorf(apperr.EINVALID, "An update may not change an item's id or owner")
		}
		if err := it.Validate(); err != nil {
			return err
		}
		out, err = scan(tx.QueryRow(ctx,
			`UPDATE workitems SET title = $2, done = $3, created_at = $4, updated_at = $5 WHERE id = $1
			 RETURNING `+columns,
			n, it.Title, it.Done, it.CreatedAt, it.UpdatedAt), owner)
		if err != nil {
			return fmt.Errorf("update item: %w", err)
		}
		return nil
	})
	if err != nil {
		return workitem.Item{}, s.err(err)
	}
	return out, nil
}

// Delete implements workitem.Store.
func (s *DB) Delete(ctx context.Context, owner string, id uint64) error {
	n, ok := dbID(id)
	if !ok {
		return notFound()
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM workitems WHERE id = $1 AND owner = $2`, n, []byte(owner))
	if err != nil {
		return s.err(fmt.Errorf("delete item: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return notFound()
	}
	return nil
}

// Import stores an item with its own id, for `workitems store copy`. Re-importing the same
// item does nothing (a copy may be re-run); an item of that id that differs is ECONFLICT. After
// it, the id sequence is past the item's id, so Create never hands that id out; it never moves
// the sequence back, so an id handed out before is never handed out again. EINVALID when the
// item breaks Item.Validate or its id is 0 or past the bigint range.
//
// Each import takes a table lock that keeps Creates out until it commits: the sequence's check
// and move are then one step. Reads go on.
func (s *DB) Import(ctx context.Context, it workitem.Item) error {
	if err := it.Validate(); err != nil {
		return err
	}
	n, ok := dbID(it.ID)
	if !ok {
		return apperr.Errorf(apperr.EINVALID, "Work item id %d is out of range", it.ID)
	}
	args := []any{n, []byte(it.Owner), it.Title, it.Done, it.CreatedAt, it.UpdatedAt}
	return s.err(pgdb.InTx(ctx, s.pool, pgx.ReadCommitted, func(tx pgx.Tx) error {
		// SHARE ROW EXCLUSIVE conflicts with the ROW EXCLUSIVE of INSERT (and with itself), not
		// with reads: no nextval runs between reading the sequence and setting it.
		if _, err := tx.Exec(ctx, `LOCK TABLE workitems IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("import item %d: %w", it.ID, err)
		}
		tag, err := tx.Exec(ctx,
			`INSERT INTO workitems (id, owner, title, done, created_at, updated_at) OVERRIDING SYSTEM VALUE
			 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`, args...)
		if err != nil {
			return fmt.Errorf("import item %d: %w", it.ID, err)
		}
		if tag.RowsAffected() == 0 {
			// The same parameters, compared by the database: times truncated alike.
			var same bool
			err := tx.QueryRow(ctx,
				`SELECT owner = $2 AND title = $3 AND done = $4 AND created_at = $5 AND updated_at = $6
				 FROM workitems WHERE id = $1`, args...).Scan(&same)
			if err != nil {
				return fmt.Errorf("import item %d: %w", it.ID, err)
			}
			if !same {
				return apperr.Errorf(apperr.ECONFLICT, "Work item %d already exists and differs", it.ID)
			}
		}
		if _, err := tx.Exec(ctx,
			`SELECT setval('workitems_id_seq', greatest($1, last_value)) FROM workitems_id_seq`, n); err != nil {
			return fmt.Errorf("import item %d: move the id sequence: %w", it.ID, err)
		}
		return nil
	}))
}

// Empty reports whether the store holds no item (`workitems store copy` refuses a target that
// is not empty unless told).
func (s *DB) Empty(ctx context.Context) (bool, error) {
	var empty bool
	if err := s.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM workitems)`).Scan(&empty); err != nil {
		return false, s.err(fmt.Errorf("count items: %w", err))
	}
	return empty, nil
}

// ReserveIDs moves the id sequence to at least n, never back: after a copy, the ids the source
// had handed out (deleted items' included) are never handed out again.
func (s *DB) ReserveIDs(ctx context.Context, n uint64) error {
	v, ok := dbID(n)
	if !ok {
		return apperr.Errorf(apperr.EINVALID, "Work item id %d is out of range", n)
	}
	return s.err(pgdb.InTx(ctx, s.pool, pgx.ReadCommitted, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE workitems IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT setval('workitems_id_seq', greatest($1, last_value)) FROM workitems_id_seq`, v)
		return err
	}))
}

// MarkServed records that a service has served from this database (service start-up calls
// it), after which a store copy into it is refused.
func (s *DB) MarkServed(ctx context.Context) error {
	return pgdb.MarkServed(ctx, s.pool, "workitems_served")
}

// Served reports whether a service has served from this database.
func (s *DB) Served(ctx context.Context) (bool, error) {
	return pgdb.Served(ctx, s.pool, "workitems_served")
}
