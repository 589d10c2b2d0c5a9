// Package pgstore keeps the IdP's users, signing keys, refresh-token families, browser
// sessions, secrets, registered OAuth clients, authorization codes, consents, groups, the audit
// trail, the mail outbox and the links to upstream identities in PostgreSQL, so several IdP
// processes can share one store.
//
// Every decision an updater makes is made inside the transaction that reads what it decides
// on, with the row it changes locked (SELECT … FOR UPDATE) at READ COMMITTED: concurrent
// updaters of one row queue, and each sees what the one before it stored. The operations that
// must see a user's credential epoch (creating a session or a refresh family) lock the user's
// row against a concurrent credential change in the same transaction; UpdateKeys serializes on
// a lock of the key table. Transactions that hit a deadlock are retried by pgdb.InTx, so
// updaters may run more than once, as the identity contracts allow. A database that cannot be
// reached is EUNAVAILABLE (pgdb.Err).
package pgstore

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Schema is the IdP's versioned schema, recorded in idp_schema_version so the work-item
// service's schema can share the database. `idp migrate` applies it alone.
var Schema = pgdb.Schema{FS: pgdb.Sub(migrations, "migrations"), Table: "idp_schema_version"}

// DB is the PostgreSQL-backed store: an identity.Store, and an identity.ThrottleStore. Every
// write method writes the audit events and the mail of its context in its own transaction
// (write, writeKeep, exec).
type DB struct {
	pool   *pgxpool.Pool
	rep    *pgdb.Reporter // logs an unreachable database once a minute, not once a request
	spends *spendGroup    // the writes of concurrent refreshes, grouped
	reads  *readGroup     // and their reads
}

var _ identity.Store = (*DB)(nil)

// Open connects to the database cfg names and migrates the schema (under an advisory lock,
// so replicas starting together migrate once). A server that does not answer within the
// connect timeout is an error naming the host.
func Open(ctx context.Context, cfg pgdb.Config, logger *slog.Logger) (*DB, error) {
	pool, err := pgdb.Open(ctx, cfg, Schema, logger)
	if err != nil {
		return nil, err
	}
	db := &DB{pool: pool, rep: pgdb.NewReporter(logger), spends: newSpendGroup(pool), reads: newReadGroup(pool)}
	return db, nil
}

// Pool is the connection pool, for the work that shares it (migrations, tests).
func (s *DB) Pool() *pgxpool.Pool { return s.pool }

// SetLogger sets where storage failures are reported.
func (s *DB) SetLogger(l *slog.Logger) { s.rep.SetLogger(l) }

// Ping reports whether the database answers: readiness.
func (s *DB) Ping(ctx context.Context) error { return s.fail(s.pool.Ping(ctx)) }

// Close closes the pool.
func (s *DB) Close() error {
	s.pool.Close()
	return nil
}

// fail turns a database error into the store's vocabulary (pgdb.Err) and logs, at most once
// a minute, that the database is out of reach.
func (s *DB) fail(err error) error { return s.rep.Fail(err) }

// tx runs fn in one READ COMMITTED transaction, retried on deadlock.
func (s *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.fail(pgdb.InTx(ctx, s.pool, pgx.ReadCommitted, fn))
}

// conflict maps a unique-constraint refusal to ECONFLICT, naming what is taken; any other
// error passes unchanged.
func conflict(err error) error {
	c, ok := pgdb.UniqueViolation(err)
	if !ok {
		return err
	}
	switch c {
	case "users_email_lower_key":
		return identity.ErrEmailTaken
	case "users_username_normalized_key": // so a caller can tell it from another conflict (errors.Is)
		return identity.ErrUsernameTaken
	case "users_pkey":
		return identity.ErrUserIDTaken
	}
	msg, ok := conflicts[c]
	if !ok {
		msg = "Already exists"
	}
	return apperr.Wrap(apperr.ECONFLICT, err, msg)
}

var conflicts = map[string]string{
	"signing_keys_pkey":          "Signing key id already taken",
	"refresh_families_pkey":      "Refresh family id already taken",
	"refresh_tokens_pkey":        "Refresh token already issued",
	"sessions_pkey":              "Session id already taken",
	"sessions_token_hash_key":    "Session token already taken",
	"oauth_clients_pkey":         "Client id already taken",
	"auth_codes_pkey":            "Authorization code already issued",
	"auth_requests_pkey":         "Authorization request id already taken",
	"links_pkey":                 "Link id already taken",
	"links_hash_key":             "Link hash already taken",
	"mail_outbox_pkey":           "Mail id already queued",
	"device_codes_pkey":          "Device code already issued",
	"device_codes_user_code_key": "User code already taken",
}

// ts is t as the database keeps it: UTC, to the microsecond (PostgreSQL truncates, as this
// does), without a monotonic reading. Stores return what they stored in this form.
func ts(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// nullTime is t for a nullable column: NULL when zero.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromNull reads a nullable time column: zero when NULL.
func fromNull(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// nullStr is s for a nullable column: NULL when empty.
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// text is s as a PostgreSQL text column can hold it: valid UTF-8 without NUL (the bbolt
// store's JSON coerces invalid UTF-8 alike). Free text from requests (a user agent, a scope)
// may be neither; identifiers and hashes the IdP makes are ASCII and pass unchanged.
func text(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// texts is text of every element, in a new slice; nil stays nil.
func texts(l []string) []string {
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = text(s)
	}
	return out
}

// key is s as a key column can be looked up: a value PostgreSQL cannot hold (NUL, invalid
// UTF-8) was never stored, so ok is false and the lookup finds nothing.
func key(s string) (string, bool) {
	return s, utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// MarkServed records that a service has served from this database (service start-up calls
// it), after which a store copy into it is refused.
func (s *DB) MarkServed(ctx context.Context) error { return pgdb.MarkServed(ctx, s.pool, "idp_served") }

// Served reports whether a service has served from this database.
func (s *DB) Served(ctx context.Context) (bool, error) { return pgdb.Served(ctx, s.pool, "idp_served") }

// list runs a query and scans every row with scan: empty, never nil, when there is none.
func list[T any](ctx context.Context, s *DB, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.fail(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.fail(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(err)
	}
	return out, nil
}

// getRow reads the one row sql finds by id ($1): missing when id cannot be a key (no row
// holds it) or there is none.
func getRow[T any](ctx context.Context, s *DB, id string, missing error, scan func(pgx.Row) (T, error), sql string) (T, error) {
	if _, ok := key(id); !ok {
		var zero T
		return zero, missing
	}
	v, err := scan(s.pool.QueryRow(ctx, sql, id))
	return v, s.fail(err)
}

// listFor is list of the rows of one owner (a user): $1 is id. None when id cannot be a key.
func listFor[T any](ctx context.Context, s *DB, id string, scan func(pgx.Row) (T, error), sql string) ([]T, error) {
	if _, ok := key(id); !ok {
		return []T{}, nil
	}
	return list(ctx, s, scan, sql, id)
}

// writeFor is write for a method on the row whose key is id: missing, with nothing done, when
// id cannot be a key.
func (s *DB) writeFor(ctx context.Context, id string, missing error, fn func(pgx.Tx) error) error {
	if _, ok := key(id); !ok {
		return missing
	}
	return s.write(ctx, fn)
}

// updateRow is an Update method's transaction: the row whose key is id is read locked FOR
// UPDATE (selectSQL, scanned by scan), so concurrent updaters queue; apply decides on it (an
// identity rule around the method's updater), and store writes what apply keeps and returns it
// as every later read sees it. What apply does not keep is returned with apply's error, and
// nothing changes. missing when id cannot be a key.
func updateRow[T any](ctx context.Context, s *DB, id string, missing error, selectSQL string, scan func(pgx.Row) (T, error),
	apply func(T) (T, bool, error), store func(pgx.Tx, T) (T, error)) (T, error) {
	var out T
	var refused error
	id, ok := key(id)
	if !ok {
		return out, missing
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		old, err := scan(tx.QueryRow(ctx, selectSQL, id))
		if err != nil {
			return err
		}
		var keep bool
		if out, keep, refused = apply(old); !keep {
			return errNoChange
		}
		out, err = store(tx, out)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, refused
}

// found is what a scan of one row read: missing when there was no row, the zero T with any
// other error.
func found[T any](v T, err error, missing error) (T, error) {
	if err != nil {
		var zero T
		return zero, noRow(err, missing)
	}
	return v, nil
}

// noRow is err, but missing when a read of one row found none.
func noRow(err, missing error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return missing
	}
	return err
}

// kept is identity.Apply's result as apply of updateRow: kept unless refused, when it is the
// zero T.
func kept[T any](next T, err error) (T, bool, error) {
	if err != nil {
		var zero T
		return zero, false, err
	}
	return next, true, nil
}
