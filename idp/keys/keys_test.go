package keys

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var pol = Policy{Period: 7 * 24 * time.Hour, TokenTTL: 15 * time.Minute, Leeway: 11 * time.Minute}

func fresh(ids ...string) *pool {
	p := &pool{}
	for _, id := range ids {
		p.fresh = append(p.fresh, identity.SigningKey{ID: id})
	}
	return p
}

func states(keys []identity.SigningKey) map[string]identity.KeyState {
	m := map[string]identity.KeyState{}
	for _, k := range keys {
		m[k.ID] = k.State
	}
	return m
}

func TestEnsureFirstStart(t *testing.T) {
	keys, err := Ensure(nil, t0, pol, fresh("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if s := states(keys); s["a"] != identity.KeyCurrent || s["b"] != identity.KeyNext || len(s) != 2 {
		t.Fatalf("states %v", s)
	}
	// The next key is published a whole period before it is due to sign.
	if want := t0.Add(pol.Period); !keys[1].SignsFrom.Equal(want) {
		t.Fatalf("next signs from %v, want %v", keys[1].SignsFrom, want)
	}
	// Ensure on a set in order needs no fresh key and changes nothing.
	again, err := Ensure(keys, t0.Add(time.Hour), pol, fresh())
	if err != nil || len(again) != 2 || again[0].ID != keys[0].ID || !again[1].SignsFrom.Equal(keys[1].SignsFrom) {
		t.Fatalf("Ensure on an ordered set: %v, %v", again, err)
	}
	if _, err := Ensure(nil, t0, pol, fresh("a")); err != errNeedKey {
		t.Fatalf("one fresh key for an empty set: %v, want errNeedKey", err)
	}
}

func TestRotateRetireAndDelete(t *testing.T) {
	keys, _ := Ensure(nil, t0, pol, fresh("a", "b"))
	t1 := t0.Add(pol.Period)
	if Due(keys, t1.Add(-time.Second), pol) || !Due(keys, t1, pol) {
		t.Fatal("Due is wrong around the period's end")
	}
	if got := NextEvent(keys, pol); !got.Equal(t1) {
		t.Fatalf("NextEvent %v, want %v", got, t1)
	}
	keys, err := Rotate(keys, t1, pol, fresh("c"))
	if err != nil {
		t.Fatal(err)
	}
	if s := states(keys); s["a"] != identity.KeyRetired || s["b"] != identity.KeyCurrent || s["c"] != identity.KeyNext {
		t.Fatalf("after rotation %v", s)
	}
	var a identity.SigningKey
	for _, k := range keys {
		if k.ID == "a" {
			a = k
		}
	}
	// Retired until its last token (signed just before t1) has expired, plus leeway.
	if want := t1.Add(pol.TokenTTL + pol.Leeway); !a.DeleteAt.Equal(want) {
		t.Fatalf("a deleted at %v, want %v", a.DeleteAt, want)
	}
	if got := NextEvent(keys, pol); !got.Equal(a.DeleteAt) {
		t.Fatalf("NextEvent %v, want a's deletion %v", got, a.DeleteAt)
	}
	if len(Prune(keys, a.DeleteAt.Add(-time.Second))) != 3 || len(Prune(keys, a.DeleteAt)) != 2 {
		t.Fatal("Prune at the wrong time")
	}
	// An on-demand rotation mid-period: the new next key is due a period after b started.
	t2 := t1.Add(time.Hour)
	keys, _ = Rotate(keys, t2, pol, fresh("d"))
	if s := states(keys); s["b"] != identity.KeyRetired || s["c"] != identity.KeyCurrent || s["d"] != identity.KeyNext {
		t.Fatalf("after second rotation %v", s)
	}
	// No schedule: never due, and the next key has no planned start.
	off := Policy{TokenTTL: pol.TokenTTL, Leeway: pol.Leeway}
	k2, _ := Ensure(nil, t0, off, fresh("x", "y"))
	if Due(k2, t0.Add(1000*time.Hour), off) || !k2[1].SignsFrom.IsZero() {
		t.Fatal("a disabled schedule rotates")
	}
}

func newManager(t *testing.T, dir string, now func() time.Time) (*Manager, *boltdb.DB) {
	t.Helper()
	db, err := boltdb.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return managerOn(t, db, now, slog.New(slog.DiscardHandler)), db
}

// managerOn starts a Manager on store: several on one store are processes sharing it.
func managerOn(t *testing.T, store identity.KeyStore, now func() time.Time, logger *slog.Logger) *Manager {
	t.Helper()
	m, err := New(context.Background(), store, Options{Bits: 2048, Policy: pol, Now: now, Random: rand.Reader, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManagerRestartAndConcurrentRotations(t *testing.T) {
	dir := t.TempDir()
	clock := t0
	now := func() time.Time { return clock }
	m, db := newManager(t, dir, now)
	kid := m.CurrentKID()
	jwks, etag := m.JWKS()
	db.Close()
	// A restart signs with the same key and publishes the same document.
	m, db = newManager(t, dir, now)
	defer db.Close()
	if k := m.CurrentKID(); k != kid {
		t.Fatalf("restart changed the signing key %s → %s", kid, k)
	}
	if j, e := m.JWKS(); string(j) != string(jwks) || e != etag {
		t.Fatal("restart changed the JWKS")
	}
	// Two rotations at once leave one consistent set: one current, one next, two retired.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Rotate(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	stored, _ := db.Keys(context.Background())
	count := map[identity.KeyState]int{}
	for _, k := range stored {
		count[k.State]++
	}
	if count[identity.KeyCurrent] != 1 || count[identity.KeyNext] != 1 || count[identity.KeyRetired] != 2 {
		t.Fatalf("after two racing rotations: %v", count)
	}
	// The JWKS holds the current key and no private part.
	cur := m.CurrentKID()
	j, _ := m.JWKS()
	var set struct{ Keys []map[string]any }
	json.Unmarshal(j, &set)
	found := false
	for _, k := range set.Keys {
		found = found || k["kid"] == cur
		if _, ok := k["d"]; ok {
			t.Fatal("private exponent published")
		}
	}
	if !found || len(set.Keys) != 4 {
		t.Fatalf("JWKS has %d keys, current present: %v", len(set.Keys), found)
	}
}
