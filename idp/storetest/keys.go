package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func testKeysRoundTrip(t *testing.T, s Store) {
	equal(t, "keys of an empty store", keys(t, s), []identity.SigningKey{})
	next := identity.SigningKey{ID: "k1", State: identity.KeyNext, PrivateDER: []byte{1, 2, 3},
		CreatedAt: t0.Add(time.Hour).In(zone), SignsFrom: t0.Add(2 * time.Hour).In(zone)}
	current := identity.SigningKey{ID: "k2", State: identity.KeyCurrent, PrivateDER: []byte{4, 5},
		CreatedAt: t0, SignsFrom: t0.Add(time.Minute)}
	retired := identity.SigningKey{ID: "k3", State: identity.KeyRetired, PrivateDER: []byte{6},
		CreatedAt: t0.Add(-time.Hour), SignsFrom: t0.Add(-time.Hour), RetiredAt: t0.Add(time.Minute).In(zone), DeleteAt: t0.Add(3 * time.Hour)}
	var given []identity.SigningKey
	check(t, s.UpdateKeys(ctx, func(ks []identity.SigningKey) ([]identity.SigningKey, error) {
		given = ks
		return []identity.SigningKey{retired, next, current}, nil
	}))
	if len(given) != 0 {
		t.Fatalf("the updater of an empty store was given %+v", given)
	}
	utc := func(k identity.SigningKey) identity.SigningKey {
		k.CreatedAt, k.SignsFrom, k.RetiredAt, k.DeleteAt = k.CreatedAt.UTC(), k.SignsFrom.UTC(), k.RetiredAt.UTC(), k.DeleteAt.UTC()
		k.PrivateDER = bytes.Clone(k.PrivateDER)
		return k
	}
	want := []identity.SigningKey{utc(next), utc(current), utc(retired)} // by ID
	equal(t, "Keys", keys(t, s), want)

	// The stored bytes are the store's own: changing what was given or returned changes nothing.
	next.PrivateDER[0] = 99
	keys(t, s)[0].PrivateDER[0] = 98
	equal(t, "Keys after changing slices outside the store", keys(t, s), want)

	// A key left out of the result is deleted; the rest is replaced as returned.
	promoted := want[0]
	promoted.State = identity.KeyCurrent
	check(t, s.UpdateKeys(ctx, func(ks []identity.SigningKey) ([]identity.SigningKey, error) {
		given = ks
		return []identity.SigningKey{want[2], promoted}, nil
	}))
	equal(t, "what the second updater was given", given, want)
	equal(t, "Keys after dropping k2 and promoting k1", keys(t, s), []identity.SigningKey{promoted, want[2]})
}

func twoKeys(t *testing.T, s Store) []identity.SigningKey {
	t.Helper()
	set := []identity.SigningKey{
		{ID: "a", State: identity.KeyCurrent, PrivateDER: []byte{1}, CreatedAt: t0, SignsFrom: t0},
		{ID: "b", State: identity.KeyNext, PrivateDER: []byte{2}, CreatedAt: t0, SignsFrom: t0.Add(time.Hour)},
	}
	check(t, s.UpdateKeys(ctx, func([]identity.SigningKey) ([]identity.SigningKey, error) { return set, nil }))
	return keys(t, s)
}

func testKeysUpdateError(t *testing.T, s Store) {
	before := twoKeys(t, s)
	err := s.UpdateKeys(ctx, func(ks []identity.SigningKey) ([]identity.SigningKey, error) {
		return []identity.SigningKey{{ID: "x", State: identity.KeyNext, CreatedAt: t0}}, errBoom
	})
	wantIs(t, "an updater's error", err, errBoom)
	equal(t, "keys after a failed update", keys(t, s), before)
}

func testKeysInvalid(t *testing.T, s Store) {
	before := twoKeys(t, s)
	for name, set := range map[string][]identity.SigningKey{
		"a key without id": {before[0], {State: identity.KeyNext, CreatedAt: t0}},
		"two keys, one id": {before[0], before[1], {ID: "a", State: identity.KeyNext, CreatedAt: t0}},
	} {
		err := s.UpdateKeys(ctx, func([]identity.SigningKey) ([]identity.SigningKey, error) { return set, nil })
		wantCode(t, name, err, apperr.EINVALID)
		equal(t, "keys after "+name, keys(t, s), before)
	}
}

// Twenty updaters each add a key of their own and a byte to a shared key: none is lost.
func testConcurrentUpdateKeys(t *testing.T, s Store) {
	shared := identity.SigningKey{ID: "shared", State: identity.KeyCurrent, PrivateDER: []byte{}, CreatedAt: t0}
	check(t, s.UpdateKeys(ctx, func([]identity.SigningKey) ([]identity.SigningKey, error) {
		return []identity.SigningKey{shared}, nil
	}))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			err := s.UpdateKeys(ctx, func(ks []identity.SigningKey) ([]identity.SigningKey, error) {
				ks = slices.Clone(ks)
				for j := range ks {
					if ks[j].ID == "shared" {
						ks[j].PrivateDER = append(slices.Clone(ks[j].PrivateDER), byte(i))
					}
				}
				return append(ks, identity.SigningKey{ID: fmt.Sprintf("k%02d", i), State: identity.KeyRetired, CreatedAt: t0}), nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got := keys(t, s)
	var ids []string
	var der []byte
	for _, k := range got {
		ids = append(ids, k.ID)
		if k.ID == "shared" {
			der = slices.Sorted(slices.Values(k.PrivateDER))
		}
	}
	var wantIDs []string
	var wantDER []byte
	for i := range 20 {
		wantIDs = append(wantIDs, fmt.Sprintf("k%02d", i))
		wantDER = append(wantDER, byte(i))
	}
	equal(t, "keys after 20 concurrent updates", ids, append(wantIDs, "shared"))
	equal(t, "the shared key's bytes after 20 concurrent appends", der, wantDER)
}
