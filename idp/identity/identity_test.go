package identity

import (
	"errors"
	"testing"
	"time"
)

func TestFamilyRefresh(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := Family{ID: "f", UserID: "u", Current: "r0", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	f, err := f.Refresh("r0", "r1", t0.Add(time.Minute))
	if err != nil || f.Current != "r1" {
		t.Fatalf("r0 → r1: %+v, %v", f, err)
	}
	// At the absolute expiry the family is dead, however recently it was refreshed.
	if _, err := f.Refresh("r1", "r2", t0.Add(time.Hour)); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("at expiry: %v", err)
	}
	if _, err := f.Refresh("r1", "r2", t0.Add(time.Hour-time.Second)); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	g, err := f.Refresh("r0", "x", t0.Add(time.Minute))
	if !errors.Is(err, ErrReuse) || !g.Revoked {
		t.Fatalf("reuse: %+v, %v", g, err)
	}
	if _, err := g.Refresh("r1", "r2", t0.Add(time.Minute)); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("revoked family refreshed: %v", err)
	}
	if !g.Dead(t0) || f.Dead(t0) || !f.Dead(t0.Add(time.Hour)) {
		t.Fatal("Dead is wrong")
	}
}
