// Package storetest is the conformance suite every work-item store runs, so a second backend
// (PostgreSQL, say) is a drop-in: it must pass the same tests as bbolt, unchanged.
//
// It holds a store to the contract written on workitem.Store: every field reads back exactly
// as stored (times in UTC, to the microsecond), each refusal has its apperr code and changes
// nothing, another owner's item is out of reach, lists come in id order and page, ids are never
// reused, and updaters on one item from many goroutines lose nothing.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/shared/apperr"
	"jwtidp/workitems/workitem"
)

// RunTests runs the suite; newStore returns a fresh, empty store for each subtest and closes
// it with t.Cleanup.
func RunTests(t *testing.T, newStore func(t *testing.T) workitem.Store) {
	for _, tt := range []struct {
		name string
		test func(*testing.T, workitem.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"CreateRefusals", testCreateRefusals},
		{"OwnersIsolated", testIsolation},
		{"ListPages", testList},
		{"ListAllOwners", testListAllOwners},
		{"Update", testUpdate},
		{"ConcurrentUpdate", testConcurrentUpdate},
		{"DeleteAndIDsNeverReused", testDelete},
		{"ConcurrentCreatesUniqueIDs", testConcurrentCreate},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, newStore(t)) })
	}
}

// t0 has microseconds, the finest precision the suite asks a store to keep.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// zone is not UTC: times given in it must come back as the same instants in UTC.
var zone = time.FixedZone("UTC+2", 2*60*60)

var ctx = context.Background()

var errBoom = errors.New("boom")

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := apperr.Code(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func item(owner, title string) workitem.Item {
	return workitem.Item{Owner: owner, Title: title, CreatedAt: t0, UpdatedAt: t0}
}

func mk(t *testing.T, s workitem.Store, owner, title string) workitem.Item {
	t.Helper()
	it, err := s.Create(ctx, item(owner, title))
	check(t, err)
	return it
}

func get(t *testing.T, s workitem.Store, owner string, id uint64) workitem.Item {
	t.Helper()
	it, err := s.Get(ctx, owner, id)
	check(t, err)
	return it
}

func list(t *testing.T, s workitem.Store, f workitem.Filter) []workitem.Item {
	t.Helper()
	l, err := s.List(ctx, f)
	check(t, err)
	if l == nil {
		t.Fatalf("List(%+v) = nil, want a list", f)
	}
	return l
}

func ids(items []workitem.Item) []uint64 {
	out := []uint64{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

func testRoundTrip(t *testing.T, s workitem.Store) {
	in := workitem.Item{ID: 999, Owner: "issuer\x00alice", Title: "write the docs ✓", Done: true,
		CreatedAt: t0.In(zone), UpdatedAt: t0.Add(time.Hour)}
	a, err := s.Create(ctx, in)
	check(t, err)
	if a.ID == 0 || a.ID == 999 {
		t.Fatalf("Create gave id %d: want the store's own, not 0 or the one sent", a.ID)
	}
	want := in
	want.ID, want.CreatedAt = a.ID, t0
	equal(t, "Create's result", a, want)
	equal(t, "Get", get(t, s, in.Owner, a.ID), want)
	equal(t, "List", list(t, s, workitem.Filter{Owner: in.Owner, Limit: 10}), []workitem.Item{want})

	// Whatever precision a store keeps, Create returns what Get reads.
	nanos := item("o", "nanoseconds")
	nanos.CreatedAt, nanos.UpdatedAt = t0.Add(789), t0.Add(time.Nanosecond).In(zone)
	b, err := s.Create(ctx, nanos)
	check(t, err)
	equal(t, "Create's result and Get's", b, get(t, s, "o", b.ID))
	if b.ID <= a.ID {
		t.Fatalf("ids %d then %d: want them to grow", a.ID, b.ID)
	}

	_, err = s.Get(ctx, in.Owner, b.ID+1000)
	wantCode(t, "Get of no item", err, apperr.ENOTFOUND)
	_, err = s.Get(ctx, in.Owner, 0)
	wantCode(t, "Get of id 0", err, apperr.ENOTFOUND)
}

func testCreateRefusals(t *testing.T, s workitem.Store) {
	noTimes := item("o", "t")
	noTimes.CreatedAt = time.Time{}
	noUpdate := item("o", "t")
	noUpdate.UpdatedAt = time.Time{}
	for name, it := range map[string]workitem.Item{
		"no owner":      item("", "t"),
		"empty title":   item("o", ""),
		"blank title":   item("o", " \t"),
		"long title":    item("o", strings.Repeat("é", workitem.MaxTitle+1)),
		"invalid UTF-8": item("o", "\xff"),
		"no created_at": noTimes,
		"no updated_at": noUpdate,
	} {
		_, err := s.Create(ctx, it)
		wantCode(t, name, err, apperr.EINVALID)
	}
	equal(t, "o's items after the refusals", list(t, s, workitem.Filter{Owner: "o", Limit: 10}), []workitem.Item{})
	// The longest title is fine.
	mk(t, s, "o", strings.Repeat("é", workitem.MaxTitle))
}

func testIsolation(t *testing.T, s workitem.Store) {
	a := mk(t, s, "alice", "hers")
	called := false
	_, err := s.Get(ctx, "bob", a.ID)
	wantCode(t, "bob's Get of alice's item", err, apperr.ENOTFOUND)
	_, err = s.Update(ctx, "bob", a.ID, func(it workitem.Item) (workitem.Item, error) {
		called = true
		it.Title = "stolen"
		return it, nil
	})
	wantCode(t, "bob's Update of alice's item", err, apperr.ENOTFOUND)
	if called {
		t.Fatal("bob's updater was shown alice's item")
	}
	wantCode(t, "bob's Delete of alice's item", s.Delete(ctx, "bob", a.ID), apperr.ENOTFOUND)
	equal(t, "bob's list", list(t, s, workitem.Filter{Owner: "bob", Limit: 10}), []workitem.Item{})
	// An owner that is another's with something appended is another owner too.
	equal(t, "alice2's list", list(t, s, workitem.Filter{Owner: "alice2", Limit: 10}), []workitem.Item{})
	_, err = s.Get(ctx, "alic", a.ID)
	wantCode(t, "a prefix of alice's Get", err, apperr.ENOTFOUND)
	equal(t, "alice's item", get(t, s, "alice", a.ID), a)
}

func testList(t *testing.T, s workitem.Store) {
	var mine []workitem.Item
	for i := range 7 {
		it := item("o", fmt.Sprintf("item %d", i))
		it.Done = i%2 == 0
		it.CreatedAt = t0.Add(time.Duration(7-i) * time.Minute) // ids, not times, give the order
		it, err := s.Create(ctx, it)
		check(t, err)
		mine = append(mine, it)
		mk(t, s, "other", "noise")
	}
	equal(t, "all of o's items", list(t, s, workitem.Filter{Owner: "o", Limit: workitem.MaxLimit}), mine)
	var pages [][]uint64
	var after uint64
	for {
		page := list(t, s, workitem.Filter{Owner: "o", After: after, Limit: 3})
		if len(page) == 0 {
			break
		}
		if len(pages) > len(mine) {
			t.Fatal("paging does not end")
		}
		pages = append(pages, ids(page))
		after = page[len(page)-1].ID
	}
	equal(t, "pages of 3", pages, [][]uint64{ids(mine[0:3]), ids(mine[3:6]), ids(mine[6:])})
	// After need not be an id of the owner's.
	equal(t, "after an id between two", ids(list(t, s, workitem.Filter{Owner: "o", After: mine[2].ID + 1, Limit: 100})), ids(mine[3:]))
	equal(t, "after the last id", list(t, s, workitem.Filter{Owner: "o", After: math.MaxUint64, Limit: 100}), []workitem.Item{})
	equal(t, "an owner without items", list(t, s, workitem.Filter{Owner: "nobody", Limit: 3}), []workitem.Item{})
	for _, f := range []workitem.Filter{{Owner: "o", Limit: 0}, {Owner: "o", Limit: -1}, {Owner: "o", Limit: workitem.MaxLimit + 1}, {Limit: 10}} {
		_, err := s.List(ctx, f)
		wantCode(t, fmt.Sprintf("List(%+v)", f), err, apperr.EINVALID)
	}
}

// Every owner's items, each with its owner, in id order and in pages, whatever Owner says.
func testListAllOwners(t *testing.T, s workitem.Store) {
	var all []workitem.Item
	for i := range 5 {
		for _, owner := range []string{"b", "a", "c"}[:1+i%3] {
			all = append(all, mk(t, s, owner, fmt.Sprintf("%s's item %d", owner, i)))
		}
	}
	equal(t, "every owner's items", list(t, s, workitem.Filter{AllOwners: true, Owner: "ignored", Limit: workitem.MaxLimit}), all)
	var got []workitem.Item
	for after := uint64(0); ; {
		page := list(t, s, workitem.Filter{AllOwners: true, After: after, Limit: 2})
		if len(page) == 0 {
			break
		}
		if len(page) > 2 || len(got) > len(all) {
			t.Fatalf("a page of %d, after %d pages", len(page), len(got))
		}
		got, after = append(got, page...), page[len(page)-1].ID
	}
	equal(t, "every owner's items in pages of 2", got, all)
	equal(t, "after the last id", list(t, s, workitem.Filter{AllOwners: true, After: math.MaxUint64, Limit: 10}), []workitem.Item{})
	_, err := s.List(ctx, workitem.Filter{AllOwners: true, Limit: 0})
	wantCode(t, "a bad limit", err, apperr.EINVALID)
}

func testUpdate(t *testing.T, s workitem.Store) {
	a := mk(t, s, "o", "before")
	b := mk(t, s, "o", "other")
	var seen workitem.Item
	got, err := s.Update(ctx, "o", a.ID, func(it workitem.Item) (workitem.Item, error) {
		seen = it
		it.Title, it.Done, it.CreatedAt, it.UpdatedAt = "after", true, t0.Add(time.Second), t0.Add(time.Hour).In(zone)
		return it, nil
	})
	check(t, err)
	equal(t, "what the updater was given", seen, a)
	want := workitem.Item{ID: a.ID, Owner: "o", Title: "after", Done: true, CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Hour)}
	equal(t, "Update's result", got, want)
	equal(t, "Get after the update", get(t, s, "o", a.ID), want)

	// A PATCH's updater.
	done := false
	got, err = s.Update(ctx, "o", a.ID, func(it workitem.Item) (workitem.Item, error) {
		return it.Apply(workitem.Update{Done: &done}, t0.Add(2*time.Hour)), nil
	})
	check(t, err)
	want.Done, want.UpdatedAt = false, t0.Add(2*time.Hour)
	equal(t, "after a partial update", got, want)

	// Refusals change nothing.
	for _, tt := range []struct {
		name string
		fn   func(workitem.Item) (workitem.Item, error)
		code string
	}{
		{"a change of id", func(it workitem.Item) (workitem.Item, error) { it.ID = b.ID; return it, nil }, apperr.EINVALID},
		{"a change of owner", func(it workitem.Item) (workitem.Item, error) { it.Owner = "p"; return it, nil }, apperr.EINVALID},
		{"an empty title", func(it workitem.Item) (workitem.Item, error) { it.Title = ""; return it, nil }, apperr.EINVALID},
		{"no update time", func(it workitem.Item) (workitem.Item, error) { it.UpdatedAt = time.Time{}; return it, nil }, apperr.EINVALID},
	} {
		_, err := s.Update(ctx, "o", a.ID, tt.fn)
		wantCode(t, tt.name, err, tt.code)
		equal(t, "the item after "+tt.name, get(t, s, "o", a.ID), want)
		equal(t, "the other item after "+tt.name, get(t, s, "o", b.ID), b)
	}
	equal(t, "p's items", list(t, s, workitem.Filter{Owner: "p", Limit: 10}), []workitem.Item{})
	_, err = s.Update(ctx, "o", a.ID, func(it workitem.Item) (workitem.Item, error) { it.Title = "x"; return it, errBoom })
	if !errors.Is(err, errBoom) {
		t.Fatalf("an updater's error: %v, want %v", err, errBoom)
	}
	equal(t, "the item after a failed updater", get(t, s, "o", a.ID), want)

	called := false
	_, err = s.Update(ctx, "o", b.ID+1000, func(it workitem.Item) (workitem.Item, error) { called = true; return it, nil })
	wantCode(t, "Update of no item", err, apperr.ENOTFOUND)
	if called {
		t.Fatal("the updater was called for an item that does not exist")
	}
}

// Twenty updaters each append to one item's title: none is lost.
func testConcurrentUpdate(t *testing.T, s workitem.Store) {
	a := mk(t, s, "o", "x")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.Update(ctx, "o", a.ID, func(it workitem.Item) (workitem.Item, error) {
				it.Title += fmt.Sprintf("<%d>", i)
				return it, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got := get(t, s, "o", a.ID)
	for i := range 20 {
		if n := strings.Count(got.Title, fmt.Sprintf("<%d>", i)); n != 1 {
			t.Fatalf("update %d is in the result %d times, want once: %q", i, n, got.Title)
		}
	}
}

func testDelete(t *testing.T, s workitem.Store) {
	a, b := mk(t, s, "o", "first"), mk(t, s, "o", "last")
	check(t, s.Delete(ctx, "o", b.ID))
	_, err := s.Get(ctx, "o", b.ID)
	wantCode(t, "Get of a deleted item", err, apperr.ENOTFOUND)
	_, err = s.Update(ctx, "o", b.ID, func(it workitem.Item) (workitem.Item, error) { return it, nil })
	wantCode(t, "Update of a deleted item", err, apperr.ENOTFOUND)
	wantCode(t, "a second Delete", s.Delete(ctx, "o", b.ID), apperr.ENOTFOUND)
	wantCode(t, "Delete of no item", s.Delete(ctx, "o", b.ID+1000), apperr.ENOTFOUND)
	equal(t, "the items left", list(t, s, workitem.Filter{Owner: "o", Limit: 10}), []workitem.Item{a})
	// The newest item's id is not handed out again, to this owner or another.
	c, d := mk(t, s, "o", "after"), mk(t, s, "p", "after")
	if c.ID <= b.ID || d.ID <= b.ID || c.ID == d.ID {
		t.Fatalf("ids %d and %d after deleting %d: want new ones above it", c.ID, d.ID, b.ID)
	}
	equal(t, "the items after", list(t, s, workitem.Filter{Owner: "o", Limit: 10}), []workitem.Item{a, c})
}

func testConcurrentCreate(t *testing.T, s workitem.Store) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var got []workitem.Item
	for i := range 20 {
		wg.Go(func() {
			it, err := s.Create(ctx, item(fmt.Sprintf("o%d", i%3), fmt.Sprintf("item %d", i)))
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			mu.Lock()
			got = append(got, it)
			mu.Unlock()
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, it := range got {
		seen[it.ID] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d distinct ids for 20 creates", len(seen))
	}
	// Each owner lists exactly the items created for it, in id order.
	for o := range 3 {
		owner := fmt.Sprintf("o%d", o)
		var want []workitem.Item
		for _, it := range got {
			if it.Owner == owner {
				want = append(want, it)
			}
		}
		slices.SortFunc(want, func(a, b workitem.Item) int { return cmp.Compare(a.ID, b.ID) })
		equal(t, owner+"'s items", list(t, s, workitem.Filter{Owner: owner, Limit: 100}), want)
	}
}
