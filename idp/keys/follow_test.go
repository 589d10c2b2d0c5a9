package keys

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// Two managers on one store are two replicas: a rotation through one reaches the other at its
// next Refresh — the same current kid, the same JWKS — and an unchanged store changes nothing.
func TestRefreshFollowsAnotherReplicasRotation(t *testing.T) {
	ctx := context.Background()
	a, db := newManager(t, t.TempDir(), func() time.Time { return t0 })
	b := managerOn(t, db, func() time.Time { return t0 }, slog.New(slog.DiscardHandler))
	genB := b.Generation()
	if err := b.Refresh(ctx); err != nil || b.Generation() != genB {
		t.Fatalf("Refresh of an unchanged store: %v, generation %d → %d", err, genB, b.Generation())
	}
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	kidA := a.CurrentKID()
	if kidB := b.CurrentKID(); kidB == kidA {
		t.Fatal("b saw the rotation before refreshing: the test proves nothing")
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	jwksA, _ := a.JWKS()
	jwksB, _ := b.JWKS()
	if kidB := b.CurrentKID(); kidB != kidA || string(jwksA) != string(jwksB) {
		t.Fatalf("after Refresh b signs with %s and serves %s; a signs with %s and serves %s", kidB, jwksB, kidA, jwksA)
	}
	if b.Generation() == genB {
		t.Fatal("the generation did not move: verifiers would keep stale keys")
	}
}
