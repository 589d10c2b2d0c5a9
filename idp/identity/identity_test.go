package identity

import (
	"errors"
	"testing"
	"time"
)

func TestFamilyRefresh(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := User{ID: "u"}
	f := Family{ID: "f", UserID: "u", Current: "r0", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	f, err := f.Refresh("r0", "r1", u, t0.Add(time.Minute))
	if err != nil || f.Current != "r1" {
		t.Fatalf("r0 → r1: %+v, %v", f, err)
	}
	// At the absolute expiry the family is dead, however recently it was refreshed.
	if _, err := f.Refresh("r1", "r2", u, t0.Add(time.Hour)); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("at expiry: %v", err)
	}
	if _, err := f.Refresh("r1", "r2", u, t0.Add(time.Hour-time.Second)); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	g, err := f.Refresh("r0", "x", u, t0.Add(time.Minute))
	if !errors.Is(err, ErrReuse) || !g.Revoked {
		t.Fatalf("reuse: %+v, %v", g, err)
	}
	if _, err := g.Refresh("r1", "r2", u, t0.Add(time.Minute)); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("revoked family refreshed: %v", err)
	}
	if !g.Dead(t0) || f.Dead(t0) || !f.Dead(t0.Add(time.Hour)) {
		t.Fatal("Dead is wrong")
	}
}

// A family dies with its user, and with the credentials it was made under: a refresh after a
// password change (a later epoch) or of a deleted user (the zero User) revokes it.
func TestFamilyDiesWithItsUsersCredentials(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := Family{ID: "f", UserID: "u", Current: "r0", Epoch: 3, ExpiresAt: t0.Add(time.Hour)}
	for name, u := range map[string]User{"password changed": {ID: "u", Epoch: 4}, "user deleted": {}} {
		g, err := f.Refresh("r0", "r1", u, t0)
		if !errors.Is(err, ErrInvalidGrant) || !g.Revoked || g.Current != "r0" {
			t.Errorf("%s: %+v, %v; want a revoked family and invalid_grant", name, g, err)
		}
	}
	if _, err := f.Refresh("r0", "r1", User{ID: "u", Epoch: 3}, t0); err != nil {
		t.Fatalf("same epoch: %v", err)
	}
}

func TestSessionLive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := Session{ID: "s", UserID: "u", Epoch: 1, LastSeenAt: t0, IdleTTL: time.Hour, ExpiresAt: t0.Add(12 * time.Hour)}
	u := User{ID: "u", Epoch: 1}
	for _, tt := range []struct {
		name string
		u    User
		at   time.Time
		want bool
	}{
		{"fresh", u, t0, true},
		{"just before idle", u, t0.Add(time.Hour - time.Second), true},
		{"idle", u, t0.Add(time.Hour), false},
		{"password changed", User{ID: "u", Epoch: 2}, t0, false},
		{"user gone", User{}, t0, false},
	} {
		if got := s.Live(tt.u, tt.at); got != tt.want {
			t.Errorf("%s: Live = %v, want %v", tt.name, got, tt.want)
		}
	}
	s.LastSeenAt = t0.Add(11*time.Hour + 30*time.Minute)
	if s.Live(u, t0.Add(12*time.Hour)) || !s.Dead(t0.Add(12*time.Hour)) {
		t.Fatal("a session used recently outlived its absolute expiry")
	}
}
