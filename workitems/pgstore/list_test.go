package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/shared/pgdb"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/workitems/pgstore"
	"jwtidp/workitems/workitem"
)

// statements counts what a pool sends outside batches (this store sends none in them).
type statements struct {
	mu  sync.Mutex
	sql []string
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	s.sql = append(s.sql, d.SQL)
	s.mu.Unlock()
	return ctx
}
func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sql
	s.sql = nil
	return out
}

// listFixture is a store with ten items of alice's and ten of bob's.
func listFixture(t testing.TB, tracer pgx.QueryTracer) (*pgstore.DB, string) {
	db, err := pgstore.Open(ctx, pgdb.Config{URL: pgtest.NewDatabase(t), MaxConns: 1, Tracer: tracer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	alice, bob := workitem.Owner("https://idp", "alice"), workitem.Owner("https://idp", "bob")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		for _, o := range []string{alice, bob} {
			if _, err := db.Create(ctx, workitem.Item{Owner: o, Title: fmt.Sprintf("item %d", i), CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return db, alice
}

// A list is one statement, outside a transaction, and gives its owner's items with the owner set.
func TestListIsOneStatement(t *testing.T) {
	var count statements
	db, alice := listFixture(t, &count)
	count.take()
	items, err := db.List(ctx, workitem.Filter{Owner: alice, Limit: 5, After: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sql := count.take(); len(sql) != 1 {
		t.Fatalf("a list sent %d statements, want 1: %q", len(sql), sql)
	}
	if len(items) != 5 || items[0].ID <= 2 {
		t.Fatalf("alice's page after 2: %d items, first %+v", len(items), items[0])
	}
	for i, it := range items {
		if it.Owner != alice || it.Title != fmt.Sprintf("item %d", (it.ID-1)/2) || (i > 0 && it.ID <= items[i-1].ID) {
			t.Fatalf("item %d of alice's page: %+v", i, it)
		}
	}
}

// BenchmarkList lists a page of ten items: its allocations are the driver's and the store's.
func BenchmarkList(b *testing.B) {
	db, alice := listFixture(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		if items, err := db.List(ctx, workitem.Filter{Owner: alice, Limit: 10}); err != nil || len(items) != 10 {
			b.Fatal(len(items), err)
		}
	}
}
