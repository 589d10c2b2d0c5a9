// Package pgdb opens a service's PostgreSQL store the one way both services want it: a pgx pool
// with bounded size, connect and statement timeouts; the service's versioned SQL schema,
// embedded in the binary, applied under an advisory lock so replicas starting together
// migrate once; transactions retried on serialization failures and deadlocks; and database
// errors turned into the apperr codes the stores document (a database that is down is
// EUNAVAILABLE: a 503 with Retry-After, never a hang).
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"golang.org/x/time/rate"

	"jwtidp/shared/apperr"
)

// Config is how a service reaches its database.
type Config struct {
	URL              string        // postgres://user@host:port/db?…
	MaxConns         int32         // pool size; 0 is pgxpool's default (max(4, cores))
	ConnectTimeout   time.Duration // per connection attempt; 0 is 5s
	StatementTimeout time.Duration // server-side, per statement; 0 is 5s
	// Tracer, when set, is told of every statement and batch besides the pool's own deadline
	// tracer (a test counts a request's round trips with it).
	Tracer pgx.QueryTracer
}

// IsURL reports whether s names a PostgreSQL database rather than a data folder.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Schema is a service's migrations: the files NNNNN_name.sql in FS (goose's format), applied
// in order and recorded in Table, so two services may share one database.
type Schema struct {
	FS    fs.FS
	Table string // e.g. "idp_schema_version"
}

// Open connects, checks the server answers and migrates the schema. A server that does not
// answer within the connect timeout is an error naming the host, never a hang.
func Open(ctx context.Context, cfg Config, schema Schema, logger *slog.Logger) (*pgxpool.Pool, error) {
	pool, err := Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, pool, schema, logger); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// Connect opens the pool and pings the server, without migrating.
func Connect(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %v", redact(err)) // the URL may hold a password
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	connect := cmp(cfg.ConnectTimeout, 5*time.Second)
	pc.ConnConfig.ConnectTimeout = connect
	pc.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(cmp(cfg.StatementTimeout, 5*time.Second).Milliseconds())
	// An idle transaction must not hold locks for long if a client vanishes mid-way.
	pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "30000"
	pc.ConnConfig.RuntimeParams["application_name"] = "jwtidp"
	// The server ends a slow statement; a deadline on this side ends one whose answer never
	// comes (a network that drops packets rather than connections), so nothing hangs.
	pc.ConnConfig.Tracer = deadline(cmp(cfg.StatementTimeout, 5*time.Second) + 2*time.Second)
	if cfg.Tracer != nil {
		pc.ConnConfig.Tracer = multitracer.New(pc.ConnConfig.Tracer, cfg.Tracer)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database %s: %v", pc.ConnConfig.Host, err)
	}
	pctx, cancel := context.WithTimeout(ctx, connect+time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s:%d does not answer: %v", pc.ConnConfig.Host, pc.ConnConfig.Port, redact(err))
	}
	return pool, nil
}

// Migrate applies the schema's pending migrations under a session-level advisory lock keyed
// by the schema's table, so replicas starting together migrate once and the others wait.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema Schema, logger *slog.Logger) error {
	h := fnv.New64a()
	h.Write([]byte("jwtidp:" + schema.Table))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, schema.FS,
		goose.WithSessionLocker(locker), goose.WithTableName(schema.Table), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	for _, r := range results {
		if logger != nil {
			logger.Info("schema migrated", "table", schema.Table, "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
		}
	}
	return nil
}

// Version returns the schema's applied version (0 before any migration).
func Version(ctx context.Context, pool *pgxpool.Pool, schema Schema) (int64, error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, schema.FS,
		goose.WithTableName(schema.Table), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

func cmp(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// redact keeps a password that a connection error might quote out of the message.
func redact(err error) string {
	s := err.Error()
	if i := strings.Index(s, "password="); i >= 0 {
		end := strings.IndexAny(s[i:], " &")
		if end < 0 {
			end = len(s) - i
		}
		s = s[:i] + "password=xxxxx" + s[i+end:]
	}
	return s
}

// maxAttempts bounds the retries of a transaction that lost a serialization race.
const maxAttempts = 10

// InTx runs fn in a transaction at the given isolation level and commits it, retrying the
// whole transaction when PostgreSQL reports a serialization failure or a deadlock (fn may
// therefore run more than once and must not have side effects outside tx). When fn returns an
// error the transaction is rolled back and that error returned — unless keep is true for it,
// for a decision fn recorded that must stand although fn reports it as an error.
func InTx(ctx context.Context, pool *pgxpool.Pool, iso pgx.TxIsoLevel, fn func(pgx.Tx) error) error {
	return InTxKeep(ctx, pool, iso, fn, nil)
}

// InTxKeep is InTx, but an error of fn for which keep returns true is committed (the
// transaction's writes stand) and then returned.
func InTxKeep(ctx context.Context, pool *pgxpool.Pool, iso pgx.TxIsoLevel, fn func(pgx.Tx) error, keep func(error) bool) error {
	var err error
	for attempt := range maxAttempts {
		err = once(ctx, pool, iso, fn, keep)
		if !Retryable(err) {
			break
		}
		if attempt > 1 { // back off a little once two attempts collided
			t := time.NewTimer(time.Duration(attempt) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return Err(ctx.Err())
			case <-t.C:
			}
		}
	}
	return Err(err)
}

func once(ctx context.Context, pool *pgxpool.Pool, iso pgx.TxIsoLevel, fn func(pgx.Tx) error, keep func(error) bool) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	ferr := fn(tx)
	if ferr != nil && (keep == nil || !keep(ferr) || Retryable(ferr)) {
		return ferr
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	return ferr
}

// Retryable reports a serialization failure or a deadlock: the transaction may simply be run
// again.
func Retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// UniqueViolation reports a unique or primary-key constraint refusal, naming the constraint.
func UniqueViolation(err error) (constraint string, ok bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName, true
	}
	return "", false
}

// ForeignKeyViolation reports a foreign-key refusal.
func ForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// RetryAfter is what a client is told to wait when the database is unreachable.
const RetryAfter = 5 * time.Second

// Err maps a database error to the store's vocabulary: an *apperr.Error passes unchanged;
// a database that cannot be reached, is shutting down, refuses connections or timed out is
// EUNAVAILABLE with Retry-After; anything else is internal (logged, never shown).
func Err(err error) error {
	if err == nil {
		return nil
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		// The client went away mid-query: nobody reads the answer, and it is no fault to log.
		return &apperr.Error{Code: apperr.EUNAVAILABLE, Message: "Request cancelled", Err: err}
	}
	if Unavailable(err) {
		return &apperr.Error{Code: apperr.EUNAVAILABLE, Message: "The database is unavailable; try again shortly", RetryAfter: RetryAfter, Err: err}
	}
	return err
}

// Unavailable reports an error that says the database is out of reach rather than that the
// request was wrong: connection failures, timeouts, cancellation by the server, admin
// shutdown, too many connections, a read-only or recovering server.
func Unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57014": // query_canceled: statement_timeout
			return true
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "57P"), strings.HasPrefix(pe.Code, "53"):
			return true // connection exception, shutdown/cannot connect now, insufficient resources
		case pe.Code == "25006": // read_only_sql_transaction: a standby
			return true
		}
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "conn closed") || strings.Contains(s, "unexpected EOF") || strings.Contains(s, "broken pipe") ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "failed to connect")
}

// deadline is a pgx tracer that gives every statement (a query with its rows, an exec, a
// transaction's begin and commit, a batch), and every wait for a pooled connection, a client-side
// deadline unless its context has a sooner one.
type deadline time.Duration

type cancelKey struct{}

func (d deadline) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return d.start(ctx)
}

func (d deadline) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	d.end(ctx)
}

// TraceBatchStart gives a batch (a pipeline of statements, as a refresh grant sends) the same
// deadline, until its results are closed.
func (d deadline) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return d.start(ctx)
}

func (deadline) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (d deadline) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	d.end(ctx)
}

// TraceAcquireStart bounds the wait for a free connection: when the database stalls and every
// pooled connection is stuck, later requests fail at the deadline instead of queueing forever.
func (d deadline) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return d.start(ctx)
}

func (d deadline) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	d.end(ctx)
}

func (d deadline) start(ctx context.Context) context.Context {
	until := time.Now().Add(time.Duration(d))
	if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
		return ctx
	}
	ctx, cancel := context.WithDeadline(ctx, until)
	return context.WithValue(ctx, cancelKey{}, cancel)
}

func (deadline) end(ctx context.Context) {
	if cancel, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

// MarkServed records, once, that a service has served from the database: table is the
// service's one-column marker table (first_at timestamptz). Serializable, so two replicas
// starting together record one row.
func MarkServed(ctx context.Context, pool *pgxpool.Pool, table string) error {
	return InTx(ctx, pool, pgx.Serializable, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{table}.Sanitize()+` (first_at)
			SELECT now() WHERE NOT EXISTS (SELECT FROM `+pgx.Identifier{table}.Sanitize()+`)`)
		return err
	})
}

// Served reports whether MarkServed has run on the database.
func Served(ctx context.Context, pool *pgxpool.Pool, table string) (bool, error) {
	var served bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+pgx.Identifier{table}.Sanitize()+`)`).Scan(&served)
	return served, Err(err)
}

// Reporter is a store's error path: Fail turns a database error into the store's vocabulary
// (Err) and logs, at most once a minute, that the database is out of reach — not once per
// request during an outage. A client that hung up is not reported.
type Reporter struct {
	logger atomic.Pointer[slog.Logger]
	every  rate.Sometimes
}

// NewReporter returns a Reporter logging to logger (nil: nowhere until SetLogger).
func NewReporter(logger *slog.Logger) *Reporter {
	r := &Reporter{every: rate.Sometimes{Interval: time.Minute}}
	r.SetLogger(logger)
	return r
}

// SetLogger sets where an unreachable database is reported.
func (r *Reporter) SetLogger(l *slog.Logger) { r.logger.Store(l) }

// Fail is Err, reporting an unreachable database.
func (r *Reporter) Fail(err error) error {
	err = Err(err)
	if apperr.Code(err) == apperr.EUNAVAILABLE && !errors.Is(err, context.Canceled) {
		r.every.Do(func() {
			if l := r.logger.Load(); l != nil {
				l.Error("the database is unavailable; answering 503 (logged once a minute)", "err", errors.Unwrap(err))
			}
		})
	}
	return err
}

// Sub is fs.Sub for an embedded folder that is known to exist (a schema's migrations).
func Sub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
