package auth

import (
	"context"
	"errors"
	"testing"
)

// A pre-session (a right password, a code owed) signs nobody in: its secret resolves to no
// session, only to the pending login, which ends after PendingTTL and when the user's
// credentials change.
func TestPendingSessionSignsNobodyIn(t *testing.T) {
	svc, db, c := newService(t)
	ctx := context.Background()
	sessions := newSessions(svc, db, c)
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	u, _ := db.GetUserByName(ctx, "alice")
	secret, err := sessions.StartPending(WithClientIP(ctx, "192.0.2.1"), Authentication{User: u, AMR: []string{"pwd"}, AuthTime: c.now(), Pending: true}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sessions.Resolve(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a pre-session resolved as a session: %v", err)
	}
	pre, pu, err := sessions.Pending(ctx, secret)
	if err != nil || pu.ID != u.ID || !pre.Pending {
		t.Fatalf("Pending = %+v, %v", pre, err)
	}
	c.add(PendingTTL)
	if _, _, err := sessions.Pending(ctx, secret); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a pre-session past PendingTTL: %v", err)
	}
	// A full session's secret is no pre-session either.
	full, _, err := sessions.Start(WithClientIP(ctx, "192.0.2.1"), Authentication{User: u, AMR: []string{"pwd"}, AuthTime: c.now()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sessions.Pending(ctx, full); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a session taken for a pre-session: %v", err)
	}
}
