package auth

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// edgeStore is a user and client store whose answers a test sets, counting user reads; during
// runs inside a user read.
type edgeStore struct {
	users   map[string]identity.User
	clients map[string]identity.Client
	err     error
	reads   int
	during  func()
}

func (e *edgeStore) GetUser(_ context.Context, id string) (identity.User, error) {
	e.reads++
	u, ok := e.users[id]
	if e.during != nil {
		e.during() // after the read: what it changes is not in this answer
	}
	if e.err != nil {
		return identity.User{}, e.err
	}
	if !ok {
		return identity.User{}, apperr.Errorf(apperr.ENOTFOUND, "no user")
	}
	return u, nil
}

func (e *edgeStore) GetClient(_ context.Context, id string) (identity.Client, error) {
	if e.err != nil {
		return identity.Client{}, e.err
	}
	c, ok := e.clients[id]
	if !ok {
		return identity.Client{}, apperr.Errorf(apperr.ENOTFOUND, "no client")
	}
	return c, nil
}

func newEdge(ttl time.Duration) (*Sessions, *edgeStore, *clock) {
	st := &edgeStore{
		users: map[string]identity.User{"u1": {ID: "u1", Username: "alice"}, "u2": {ID: "u2", Username: "bob", Disabled: true}},
		clients: map[string]identity.Client{"portal": {ID: "portal", ForwardAuth: true}, "webapp": {ID: "webapp"},
			"service": {ID: "service", ForwardAuth: true}},
	}
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return &Sessions{CacheTTL: ttl, Now: c.now, Logger: slog.New(slog.DiscardHandler), Users: st, Clients: st}, st, c
}

// Who passes the edge with a verified token: the IdP's own or a forward_auth client's token of
// an active user, named by the stored username; nothing else.
func TestBearerAtTheEdge(t *testing.T) {
	s, _, _ := newEdge(5 * time.Second)
	ctx := context.Background()
	for _, tt := range []struct {
		name, client, sub string
		pass              bool
	}{
		{"the IdP's own token", identity.FirstPartyClientID, "u1", true},
		{"a forward_auth client's token", "portal", "u1", true},
		{"a relying party's token", "webapp", "u1", false},
		{"an unknown client's token", "gone", "u1", false},
		{"a client's own token", "service", "service", false},
		{"a disabled user's token", identity.FirstPartyClientID, "u2", false},
		{"a deleted user's token", "portal", "u3", false},
		{"no subject", identity.FirstPartyClientID, "", false},
	} {
		r, err := s.Bearer(ctx, tt.client, tt.sub)
		switch {
		case tt.pass && (err != nil || r.UserID != tt.sub || r.Username != "alice"):
			t.Errorf("%s: %+v, %v; want alice", tt.name, r, err)
		case !tt.pass && !errors.Is(err, ErrNotForEdge):
			t.Errorf("%s: %+v, %v; want ErrNotForEdge", tt.name, r, err)
		}
	}
}

// The user is read at most once per CacheTTL; a forget (this process disabled the user) drops
// the entry at once — even one a read racing the forget is about to store.
func TestBearerCacheAndForget(t *testing.T) {
	s, st, c := newEdge(5 * time.Second)
	ctx := context.Background()
	for range 3 {
		if _, err := s.Bearer(ctx, identity.FirstPartyClientID, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	if st.reads != 1 {
		t.Fatalf("%d store reads for three requests within the cache period, want 1", st.reads)
	}
	// A read that saw alice active finishes after the disable's forget: its answer is not kept.
	c.add(5 * time.Second)
	st.during = func() {
		st.during = nil
		s.ForgetUser("u1")
		st.users["u1"] = identity.User{ID: "u1", Username: "alice", Disabled: true}
	}
	if _, err := s.Bearer(ctx, identity.FirstPartyClientID, "u1"); err != nil {
		t.Fatalf("the racing read: %v", err)
	}
	if _, err := s.Bearer(ctx, identity.FirstPartyClientID, "u1"); !errors.Is(err, ErrNotForEdge) {
		t.Fatalf("after the forget: %v, want ErrNotForEdge (a read racing the forget was cached)", err)
	}
}

// When the store cannot be read, the last answer is used (even with no cache period at all),
// but only within OutageGrace of the read that gave it; a user never seen, or an answer older
// than that, is an error, which /verify answers 401.
func TestBearerDuringAnOutage(t *testing.T) {
	s, st, c := newEdge(0)
	ctx := context.Background()
	if _, err := s.Bearer(ctx, "portal", "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bearer(ctx, "portal", "u1"); err != nil || st.reads != 2 {
		t.Fatalf("with no cache period every request reads: %d reads, %v", st.reads, err)
	}
	c.add(OutageGrace - time.Second)
	st.err = apperr.Errorf(apperr.EUNAVAILABLE, "store down")
	if r, err := s.Bearer(ctx, "portal", "u1"); err != nil || r.Username != "alice" {
		t.Fatalf("during the outage: %+v, %v; want the last answer", r, err)
	}
	c.add(time.Second)
	if _, err := s.Bearer(ctx, "portal", "u1"); apperr.Code(err) != apperr.EUNAVAILABLE {
		t.Fatalf("an answer OutageGrace old during the outage: %v, want the store's error", err)
	}
	if _, err := s.Bearer(ctx, identity.FirstPartyClientID, "u2"); apperr.Code(err) != apperr.EUNAVAILABLE {
		t.Fatalf("a user never seen during the outage: %v", err)
	}
}
