package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jwtidp/shared/proctest"
	"jwtidp/workitems/boltdb"
	"jwtidp/workitems/workitem"
)

// kill -9 during item writes: every item answered 201 is there after a restart, and the store
// checks clean.
func TestKill9DuringWritesLosesNothingAcknowledged(t *testing.T) {
	idp := startIDP(t)
	dir := t.TempDir()
	wi := startWIBinary(t, idp.URL, dir)
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	tok := "Bearer " + token(t, idp.URL, "writer")
	var mu sync.Mutex
	acked := map[float64]string{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				title := fmt.Sprintf("w%d-%d", w, i)
				a, err := tryCall(wi.URL+"/workitems", tok, map[string]string{"title": title})
				if err != nil {
					return
				}
				if a.status == 201 {
					var env struct{ Result struct{ ID float64 } }
					if decode(a.body, &env) == nil {
						mu.Lock()
						acked[env.Result.ID] = title
						mu.Unlock()
					}
				}
			}
		}()
	}
	// Kill once the load is well under way (twice the acknowledgements the test needs).
	proctest.Eventually(10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 40
	})
	wi.Kill()
	stop.Store(true)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d items before the kill", len(acked))
	}
	db, err := boltdb.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Fatalf("store after kill -9: %v", err)
	}
	items, _ := db.List(t.Context(), workitem.Filter{Owner: ownerOf(t, tok, idp.URL), Limit: workitem.MaxLimit})
	got := map[float64]string{}
	for _, it := range items {
		got[float64(it.ID)] = it.Title
	}
	for id, title := range acked {
		if got[id] != title {
			t.Fatalf("acknowledged item %v (%q) lost after kill -9", id, title)
		}
	}
	t.Logf("%d acknowledged items, all present after kill -9", len(acked))
}
