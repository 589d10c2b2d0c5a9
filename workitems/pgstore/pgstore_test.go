package pgstore_test

import (
	"context"
	"fmt"
	"io/fs"
	"jwtidp/shared/proctest"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/workitems/pgstore"
	"jwtidp/workitems/storetest"
	"jwtidp/workitems/workitem"
)

var ctx = context.Background()

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) workitem.Store { return open(t, pgtest.NewDatabase(t)) })
}

// open opens the store on url and closes it when the test ends (before pgtest drops the
// database, as cleanups run last first).
func open(t *testing.T, url string) *pgstore.DB {
	t.Helper()
	db, err := pgstore.Open(ctx, pgdb.Config{URL: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := apperr.Code(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// Replicas starting together: every Open migrates or waits for the one that does, and the
// schema is at its latest version once.
func TestConcurrentOpens(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			db, err := pgstore.Open(ctx, pgdb.Config{URL: url, MaxConns: 2}, nil)
			if err == nil {
				db.Close()
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
	db := open(t, url)
	files, _ := fs.Glob(pgstore.Schema.FS, "*.sql")
	if v, err := pgdb.Version(ctx, db.Pool(), pgstore.Schema); err != nil || v != int64(len(files)) {
		t.Fatalf("schema version %d (%v), want %d: every migration applied", v, err, len(files))
	}
	if _, err := db.Create(ctx, workitem.Item{Owner: "o", Title: "t", CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// A server that is not there fails Open within the connect timeout, naming the host.
func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	_, err := pgstore.Open(ctx, pgdb.Config{URL: "postgres://postgres@127.0.0.1:1/x", ConnectTimeout: time.Second}, nil)
	if err == nil {
		t.Fatal("Open of a server that is not there succeeded")
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %q does not name the host", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Open took %v to fail, want about the connect timeout (1s)", took)
	}
}

// A NUL is valid UTF-8 but no PostgreSQL text can hold it: refused, not an internal error.
func TestNULTitleRefused(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	now := time.Now()
	_, err := db.Create(ctx, workitem.Item{Owner: "o", Title: "a\x00b", CreatedAt: now, UpdatedAt: now})
	wantCode(t, "Create with a NUL in the title", err, apperr.EINVALID)
	it, err := db.Create(ctx, workitem.Item{Owner: "o", Title: "ab", CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Update(ctx, "o", it.ID, func(it workitem.Item) (workitem.Item, error) { it.Title = "\x00"; return it, nil })
	wantCode(t, "Update to a NUL in the title", err, apperr.EINVALID)
}

// Import keeps ids, is idempotent, refuses a different item under a taken id, and leaves the
// sequence past every id imported or handed out.
func TestImport(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	empty, err := db.Empty(ctx)
	if err != nil || !empty {
		t.Fatalf("Empty of a new store = %v, %v; want true", empty, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC) // nanoseconds, as bbolt keeps them
	items := []workitem.Item{
		{ID: 7, Owner: "iss\x00alice", Title: "seven", Done: true, CreatedAt: t0, UpdatedAt: t0.Add(time.Hour)},
		{ID: 3, Owner: "iss\x00alice", Title: "three", CreatedAt: t0, UpdatedAt: t0},
		{ID: 5, Owner: "iss\x00bob", Title: "five", CreatedAt: t0, UpdatedAt: t0},
	}
	for range 2 { // a re-run is harmless
		for _, it := range items {
			if err := db.Import(ctx, it); err != nil {
				t.Fatalf("Import(%+v): %v", it, err)
			}
		}
	}
	if empty, err := db.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty after imports = %v, %v; want false", empty, err)
	}
	l, err := db.List(ctx, workitem.Filter{Owner: "iss\x00alice", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].ID != 3 || l[1].ID != 7 {
		t.Fatalf("alice's items %+v, want ids 3 and 7", l)
	}
	want := items[0]
	want.CreatedAt, want.UpdatedAt = want.CreatedAt.Truncate(time.Microsecond), want.UpdatedAt.Truncate(time.Microsecond)
	if l[1] != want {
		t.Fatalf("imported item read back as %+v, want %+v", l[1], want)
	}

	changed := items[0]
	changed.Title = "not seven"
	wantCode(t, "Import of a different item under a taken id", db.Import(ctx, changed), apperr.ECONFLICT)
	bad := items[0]
	bad.ID = 0
	wantCode(t, "Import of id 0", db.Import(ctx, bad), apperr.EINVALID)
	bad = items[0]
	bad.Title = ""
	wantCode(t, "Import of an invalid item", db.Import(ctx, bad), apperr.EINVALID)

	// New ids start past the largest imported…
	c, err := db.Create(ctx, workitem.Item{Owner: "iss\x00bob", Title: "new", CreatedAt: t0, UpdatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID <= 7 {
		t.Fatalf("Create after importing id 7 gave id %d", c.ID)
	}
	// …and an import of a smaller id never moves the sequence back over ids handed out, even
	// if their items were deleted.
	for range 5 {
		it, err := db.Create(ctx, workitem.Item{Owner: "o", Title: "t", CreatedAt: t0, UpdatedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		c = it
		if err := db.Delete(ctx, "o", it.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Import(ctx, workitem.Item{ID: 6, Owner: "o", Title: "six", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Create(ctx, workitem.Item{Owner: "o", Title: "t", CreatedAt: t0, UpdatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID <= c.ID {
		t.Fatalf("Create after importing id 6 gave id %d, not above the last one handed out (%d)", d.ID, c.ID)
	}
}

// Imports racing with creates and each other: no error, every id distinct, and the sequence
// ends past them all. (Imported ids are far apart, so no create reaches the next one: a clash
// would be a real conflict, ECONFLICT.)
func TestImportConcurrentWithCreates(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[uint64]bool{}
	const n = 40
	for i := range n {
		wg.Go(func() {
			it := workitem.Item{Owner: "o", Title: fmt.Sprint("item ", i), CreatedAt: now, UpdatedAt: now}
			if i%2 == 0 {
				it.ID = uint64(1000 * (i + 1))
				if err := db.Import(ctx, it); err != nil {
					t.Error(err)
				}
			} else {
				var err error
				if it, err = db.Create(ctx, it); err != nil {
					t.Error(err)
				}
			}
			mu.Lock()
			ids[it.ID] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(ids) != n {
		t.Fatalf("%d distinct ids for %d items", len(ids), n)
	}
	it, err := db.Create(ctx, workitem.Item{Owner: "o", Title: "t", CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	for id := range ids {
		if it.ID <= id {
			t.Fatalf("Create after the race gave id %d, not above %d", it.ID, id)
		}
	}
}

// A database that goes away is EUNAVAILABLE (a 503 with Retry-After), quickly, and the store
// recovers by itself when it is back. The outage is a cut TCP proxy in front of the server.
func TestOutageIsUnavailable(t *testing.T) {
	p, u := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	db, err := pgstore.Open(ctx, pgdb.Config{URL: u, ConnectTimeout: time.Second, StatementTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	it, err := db.Create(ctx, workitem.Item{Owner: "o", Title: "t", CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}

	p.Cut()
	start := time.Now()
	_, err = db.Get(ctx, "o", it.ID)
	wantCode(t, "Get while the database is away", err, apperr.EUNAVAILABLE)
	if apperr.RetryAfter(err) <= 0 {
		t.Errorf("Get while the database is away: no Retry-After in %v", err)
	}
	wantCode(t, "Ping while the database is away", db.Ping(ctx), apperr.EUNAVAILABLE)
	_, err = db.Update(ctx, "o", it.ID, func(it workitem.Item) (workitem.Item, error) { return it, nil })
	wantCode(t, "Update while the database is away", err, apperr.EUNAVAILABLE)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the calls during the outage took %v", took)
	}

	p.Restore()
	var got workitem.Item
	if !proctest.Eventually(5*time.Second, func() bool { got, err = db.Get(ctx, "o", it.ID); return err == nil }) {
		t.Fatalf("not recovered 5s after the database came back: %v", err)
	}
	if got.ID != it.ID {
		t.Fatalf("after the outage: %+v, want %+v", got, it)
	}
}
