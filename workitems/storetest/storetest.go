// Package storetest is the conformance suite every work-item store runs.
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"jwtidp/shared/apperr"
	"jwtidp/workitems/workitem"
)

// RunTests runs the suite; newStore returns a fresh, empty store for each subtest.
func RunTests(t *testing.T, newStore func(t *testing.T) workitem.Store) {
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, newStore(t)) })
	t.Run("OwnersIsolated", func(t *testing.T) { testIsolation(t, newStore(t)) })
	t.Run("ListPages", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("PatchDelete", func(t *testing.T) { testPatchDelete(t, newStore(t)) })
	t.Run("ConcurrentCreatesUniqueIDs", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mk(t *testing.T, s workitem.Store, owner, title string) workitem.Item {
	t.Helper()
	it, err := s.Create(context.Background(), workitem.Item{Owner: owner, Title: title, CreatedAt: t0, UpdatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func testCreateGet(t *testing.T, s workitem.Store) {
	a := mk(t, s, "o1", "first")
	b := mk(t, s, "o1", "second")
	if a.ID == 0 || b.ID <= a.ID {
		t.Fatalf("ids %d, %d: want increasing from 1", a.ID, b.ID)
	}
	got, err := s.Get(context.Background(), "o1", a.ID)
	if err != nil || got.Title != "first" || !got.CreatedAt.Equal(t0) || got.Owner != "o1" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := s.Get(context.Background(), "o1", 999); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("missing item: %v", err)
	}
}

func testIsolation(t *testing.T, s workitem.Store) {
	ctx := context.Background()
	a := mk(t, s, "alice", "hers")
	title := "stolen"
	if _, err := s.Get(ctx, "bob", a.ID); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("bob got alice's item: %v", err)
	}
	if _, err := s.Patch(ctx, "bob", a.ID, workitem.Update{Title: &title}, t0); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("bob patched alice's item: %v", err)
	}
	if err := s.Delete(ctx, "bob", a.ID); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("bob deleted alice's item: %v", err)
	}
	if l, _ := s.List(ctx, workitem.Filter{Owner: "bob", Limit: 10}); len(l) != 0 {
		t.Fatalf("bob lists %d items", len(l))
	}
	if got, _ := s.Get(ctx, "alice", a.ID); got.Title != "hers" {
		t.Fatalf("alice's item changed: %+v", got)
	}
}

func testList(t *testing.T, s workitem.Store) {
	ctx := context.Background()
	var ids []uint64
	for i := range 7 {
		ids = append(ids, mk(t, s, "o", string(rune('a'+i))).ID)
		mk(t, s, "other", "noise")
	}
	page, err := s.List(ctx, workitem.Filter{Owner: "o", Limit: 3})
	if err != nil || len(page) != 3 || page[0].ID != ids[0] || page[2].ID != ids[2] {
		t.Fatalf("first page %+v, %v", page, err)
	}
	page, _ = s.List(ctx, workitem.Filter{Owner: "o", After: page[2].ID, Limit: 3})
	if len(page) != 3 || page[0].ID != ids[3] {
		t.Fatalf("second page %+v", page)
	}
	page, _ = s.List(ctx, workitem.Filter{Owner: "o", After: page[2].ID, Limit: 3})
	if len(page) != 1 || page[0].ID != ids[6] {
		t.Fatalf("last page %+v", page)
	}
	if page, _ := s.List(ctx, workitem.Filter{Owner: "nobody", Limit: 3}); page == nil || len(page) != 0 {
		t.Fatalf("empty owner: %#v, want an empty, non-nil list", page)
	}
}

func testPatchDelete(t *testing.T, s workitem.Store) {
	ctx := context.Background()
	a := mk(t, s, "o", "before")
	done := true
	t1 := t0.Add(time.Hour)
	got, err := s.Patch(ctx, "o", a.ID, workitem.Update{Done: &done}, t1)
	if err != nil || !got.Done || got.Title != "before" || !got.UpdatedAt.Equal(t1) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("Patch = %+v, %v", got, err)
	}
	if err := s.Delete(ctx, "o", a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "o", a.ID); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}
	// Ids are never reused.
	if b := mk(t, s, "o", "after"); b.ID <= a.ID {
		t.Fatalf("id %d reused after delete of %d", b.ID, a.ID)
	}
}

func testConcurrent(t *testing.T, s workitem.Store) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it, err := s.Create(context.Background(), workitem.Item{Owner: "o", Title: "x"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[it.ID] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Fatalf("%d distinct ids for 20 creates", len(seen))
	}
}
