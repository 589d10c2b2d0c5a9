package pgdb_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/pgdb/pgtest"
)

var schema = pgdb.Schema{FS: os.DirFS("testdata/schema"), Table: "test_schema_version"}

// Replicas starting together migrate once: sixteen Opens race, all succeed, and the one-row
// insert of the first migration ran exactly once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			pool, err := pgdb.Open(ctx, pgdb.Config{URL: url, MaxConns: 2}, schema, nil)
			if err == nil {
				pool.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pgdb.Open(ctx, pgdb.Config{URL: url}, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM counter").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("counter rows = %d (%v), want 1", rows, err)
	}
	if v, err := pgdb.Version(ctx, pool, schema); err != nil || v != 1 {
		t.Fatalf("version = %d (%v), want 1", v, err)
	}
}

// Serializable transactions that collide are retried until each has committed: 20 increments
// of one row by read-then-write, none lost.
func TestInTxRetriesSerializationFailures(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgdb.Config{URL: url, MaxConns: 20}, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for range 20 {
		wg.Go(func() {
			err := pgdb.InTx(ctx, pool, pgx.Serializable, func(tx pgx.Tx) error {
				var n int64
				if err := tx.QueryRow(ctx, "SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "UPDATE counter SET n = $1 WHERE id = 1", n+1)
				return err
			})
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// A few may run out of attempts under heavy contention; those must say so, and every
	// increment that was acknowledged must be there.
	var n int64
	if err := pool.QueryRow(ctx, "SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != 20-len(failed) {
		t.Fatalf("counter = %d after %d acknowledged increments", n, 20-len(failed))
	}
	if len(failed) > 2 {
		t.Fatalf("%d of 20 transactions failed despite retries: %v", len(failed), failed[0])
	}
}

// A decision fn wants kept is committed although fn returns an error; any other error rolls
// back.
func TestInTxKeep(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgdb.Config{URL: url}, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	kept, dropped := errors.New("kept"), errors.New("dropped")
	for _, want := range []error{kept, dropped} {
		err := pgdb.InTxKeep(ctx, pool, pgx.ReadCommitted, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "UPDATE counter SET n = n + 1"); err != nil {
				return err
			}
			return want
		}, func(err error) bool { return err == kept })
		if err != want {
			t.Fatalf("InTxKeep returned %v, want %v", err, want)
		}
	}
	var n int64
	pool.QueryRow(ctx, "SELECT n FROM counter").Scan(&n)
	if n != 1 {
		t.Fatalf("counter = %d: want the kept write only", n)
	}
}

// A server that is not there is an error naming it within the connect timeout, and a query on
// a pool whose server went away is EUNAVAILABLE with a Retry-After.
func TestUnreachableServer(t *testing.T) {
	start := time.Now()
	_, err := pgdb.Open(context.Background(), pgdb.Config{URL: "postgres://postgres@127.0.0.1:1/x", ConnectTimeout: time.Second}, schema, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("Open on a closed port: %v; want an error naming the host", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Open took %s", d)
	}
	err = pgdb.Err(&net{})
	if apperr.Code(err) != apperr.EUNAVAILABLE || apperr.RetryAfter(err) <= 0 {
		t.Fatalf("a network error maps to %q (retry %s), want unavailable with Retry-After", apperr.Code(err), apperr.RetryAfter(err))
	}
	if apperr.Code(pgdb.Err(errors.New("syntax error"))) != apperr.EINTERNAL {
		t.Fatal("an ordinary error must stay internal")
	}
}

// net is a net.Error, as a dropped connection reports.
type net struct{}

func (*net) Error() string   { return "read tcp: connection reset by peer" }
func (*net) Timeout() bool   { return false }
func (*net) Temporary() bool { return false }

func TestRedactsPasswordFromURLErrors(t *testing.T) {
	_, err := pgdb.Connect(context.Background(), pgdb.Config{URL: "postgres://u:hunter2-secret@127.0.0.1:1/x?sslmode=bogus", ConnectTimeout: time.Second})
	if err == nil || strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("error %v leaks the password", err)
	}
}
