package keys

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/proctest"
)

// revokeBase is a set with a key in each state: a retired, b current, c next; tn is a minute
// after the rotation, while a is still published.
func revokeBase() ([]identity.SigningKey, time.Time) {
	keys, _ := Ensure(nil, t0, pol, fresh("a", "b"))
	keys, _ = Rotate(keys, t0.Add(pol.Period), pol, fresh("c"))
	return keys, t0.Add(pol.Period + time.Minute)
}

func byID(keys []identity.SigningKey, id string) identity.SigningKey {
	for _, k := range keys {
		if k.ID == id {
			return k
		}
	}
	return identity.SigningKey{}
}

func TestRevokeCurrent(t *testing.T) {
	keys, tn := revokeBase()
	before := states(keys)
	got, err := Revoke("b")(keys, tn, pol, fresh("d"))
	if err != nil {
		t.Fatal(err)
	}
	// The next key, already published, signs at once; a fresh next key is published a period
	// ahead of it.
	if s := states(got); len(s) != 3 || s["a"] != identity.KeyRetired || s["c"] != identity.KeyCurrent || s["d"] != identity.KeyNext {
		t.Fatalf("after revoking the current key: %v", s)
	}
	if c := byID(got, "c"); !c.SignsFrom.Equal(tn) {
		t.Fatalf("the promoted key signs from %v, want %v", c.SignsFrom, tn)
	}
	if d := byID(got, "d"); !d.SignsFrom.Equal(tn.Add(pol.Period)) {
		t.Fatalf("the new next key signs from %v, want %v", d.SignsFrom, tn.Add(pol.Period))
	}
	if !maps.Equal(states(keys), before) {
		t.Fatal("Revoke changed the set it was given: an updater must be pure")
	}
	if _, err := Revoke("b")(keys, tn, pol, fresh()); err != errNeedKey {
		t.Fatalf("revoking the current key without a fresh key: %v, want errNeedKey", err)
	}
}

func TestRevokeNext(t *testing.T) {
	keys, tn := revokeBase()
	got, err := Revoke("c")(keys, tn, pol, fresh("d"))
	if err != nil {
		t.Fatal(err)
	}
	if s := states(got); len(s) != 3 || s["a"] != identity.KeyRetired || s["b"] != identity.KeyCurrent || s["d"] != identity.KeyNext {
		t.Fatalf("after revoking the next key: %v", s)
	}
	// The current key keeps signing, on its schedule.
	if b := byID(got, "b"); !b.SignsFrom.Equal(byID(keys, "b").SignsFrom) {
		t.Fatal("revoking the next key changed the current key")
	}
	if d := byID(got, "d"); !d.SignsFrom.Equal(byID(keys, "b").SignsFrom.Add(pol.Period)) {
		t.Fatalf("the new next key signs from %v, want the current key's end", d.SignsFrom)
	}
}

func TestRevokeRetired(t *testing.T) {
	keys, tn := revokeBase()
	got, err := Revoke("a")(keys, tn, pol, fresh()) // no fresh key needed
	if err != nil {
		t.Fatal(err)
	}
	if s := states(got); len(s) != 2 || s["b"] != identity.KeyCurrent || s["c"] != identity.KeyNext {
		t.Fatalf("after revoking the retired key: %v", s)
	}
}

func TestRevokeUnknown(t *testing.T) {
	keys, tn := revokeBase()
	if _, err := Revoke("zz")(keys, tn, pol, fresh("d")); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("revoking an unknown kid: %v, want %s", err, apperr.ENOTFOUND)
	}
}

func TestManagerRevoke(t *testing.T) {
	db := openDB(t)
	clock := t0
	var logs proctest.LogBuffer
	m := managerOn(t, db, func() time.Time { return clock }, slog.New(slog.NewTextHandler(&logs, nil)))
	cur := m.CurrentKID()
	next := kidIn(m.Keys(), identity.KeyNext)
	gen := m.Generation()
	clock = t0.Add(time.Hour)
	if err := m.Revoke(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	// Gone from the signer, the key lookup and the JWKS at once; the generation tells the
	// verified-token cache.
	if kid := m.CurrentKID(); kid != next {
		t.Fatalf("signs with %s after revoking %s, want the former next key %s", kid, cur, next)
	}
	if _, ok := m.PublicKey(cur); ok {
		t.Fatal("the revoked key is still trusted")
	}
	if j, _ := m.JWKS(); strings.Contains(string(j), cur) {
		t.Fatal("the revoked key is still published")
	}
	if m.Generation() == gen {
		t.Fatal("the generation did not change")
	}
	if n := countStates(t, db); n[identity.KeyCurrent] != 1 || n[identity.KeyNext] != 1 || len(n) != 2 {
		t.Fatalf("stored after revoking the current key: %v", n)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "kid="+cur) {
		t.Fatalf("no warning naming the revoked kid in the log:\n%s", l)
	}
	// An unknown kid: ENOTFOUND and nothing changes.
	stored, _ := db.Keys(context.Background())
	if err := m.Revoke(context.Background(), "no-such-kid"); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("revoking an unknown kid: %v, want %s", err, apperr.ENOTFOUND)
	}
	if after, _ := db.Keys(context.Background()); !sameKeys(after, stored) {
		t.Fatal("revoking an unknown kid changed the set")
	}
}
