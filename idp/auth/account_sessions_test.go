package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// swappedFamily runs every family step on another family (as if the token's hash now found
// that one): the step must check it is still the family it meant.
type swappedFamily struct {
	Families
	other identity.Family
}

func (s swappedFamily) UpdateFamilyByToken(ctx context.Context, hash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, error) {
	return s.Families.UpdateFamilyByToken(ctx, s.other.Current, step)
}

func TestAccountSessionsListAndEnd(t *testing.T) {
	svc, db, c := newService(t)
	svc.Sessions = db
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := svc.Signup(ctx, u, "correct-horse-9", ""); err != nil {
			t.Fatal(err)
		}
	}
	alice, err := svc.Authenticate(ctx, creds("alice", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := svc.Authenticate(ctx, creds("bob", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	sessions := newSessions(svc, db, c)
	sessions.IdleTTL = time.Hour
	_, s1, err := sessions.Start(WithClientIP(ctx, "192.0.2.1"), alice, "Firefox")
	if err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	if _, err := sessions.StartPending(WithClientIP(ctx, "192.0.2.9"), alice, "pending"); err != nil {
		t.Fatal(err)
	}
	_, idle, err := sessions.Start(WithClientIP(ctx, "192.0.2.3"), alice, "idle")
	if err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	// A family bound to s1 (the code flow's), a first-party one, and one revoked.
	if _, err := svc.Issue(ctx, Grant{User: alice.User, Client: Client{ID: "rp", Scope: "openid"}, Refresh: true, SessionID: s1.ID}); err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	tok, err := svc.Issue(ctx, Grant{User: alice.User, Client: svc.FirstParty, Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := svc.Issue(ctx, Grant{User: alice.User, Client: svc.FirstParty, Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Revoke(ctx, revoked.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, bobSession, err := sessions.Start(WithClientIP(ctx, "198.51.100.1"), bob, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := svc.Issue(ctx, Grant{User: bob.User, Client: svc.FirstParty, Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	// The idle session goes idle; s1 and bob's are used.
	c.add(59 * time.Minute)
	for _, id := range []string{s1.ID, bobSession.ID} {
		if _, err := db.UpdateSession(ctx, id, touch(c.now())); err != nil {
			t.Fatal(err)
		}
	}
	c.add(2 * time.Minute)

	list, err := svc.AccountSessions(ctx, alice.User.ID, s1.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("list: %+v, want s1, the rp family and the first-party family", list)
	}
	got, rp, fp := list[0], list[1], list[2]
	if got.ID != s1.ID || got.Kind != SessionKindBrowser || !got.Current || got.RemoteAddr != "192.0.2.1" ||
		got.UserAgent != "Firefox" || got.ClientID != identity.FirstPartyClientID || !got.LastUsedAt.After(got.CreatedAt) {
		t.Fatalf("browser entry %+v", got)
	}
	if rp.Kind != SessionKindRefresh || rp.ClientID != "rp" || rp.RemoteAddr != "192.0.2.1" || rp.UserAgent != "Firefox" ||
		rp.Current || !rp.LastUsedAt.IsZero() || rp.ID == s1.ID {
		t.Fatalf("bound family entry %+v", rp)
	}
	if fp.Kind != SessionKindRefresh || fp.ClientID != "idp" || fp.RemoteAddr != "" || fp.UserAgent != "" || fp.Current {
		t.Fatalf("first-party family entry %+v", fp)
	}
	if l, _ := svc.AccountSessions(ctx, alice.User.ID, "", fp.ID); l[0].Current || !l[2].Current {
		t.Fatalf("current family: %+v", l)
	}

	// Other users' ids, the idle session's and unknown ones are all the same ENOTFOUND.
	bobList, err := svc.AccountSessions(ctx, bob.User.ID, "", "")
	if err != nil || len(bobList) != 2 {
		t.Fatalf("bob: %+v %v", bobList, err)
	}
	for _, id := range []string{bobList[0].ID, bobList[1].ID, "nope", ""} {
		if err := svc.EndAccountSession(ctx, alice.User.ID, id); !errors.Is(err, ErrNoAccountSession) {
			t.Fatalf("alice ends %q: %v, want ErrNoAccountSession", id, err)
		}
	}
	if l, _ := svc.AccountSessions(ctx, bob.User.ID, "", ""); len(l) != 2 {
		t.Fatalf("bob after alice's attempts: %+v", l)
	}
	if _, err := svc.Refresh(ctx, bobTok.RefreshToken); err != nil {
		t.Fatalf("bob's family after alice's attempts: %v", err)
	}
	if _, err := db.GetSession(ctx, bobSession.ID); err != nil {
		t.Fatalf("bob's session after alice's attempts: %v", err)
	}
	if err := svc.EndAccountSession(ctx, alice.User.ID, idle.ID); err != nil {
		t.Fatalf("ending an idle (dead) session of one's own: %v", err)
	}

	// A step that finds another user's family changes nothing.
	bobFams, _ := db.ListFamilies(ctx, bob.User.ID)
	cfg := svc.Config
	cfg.Families = swappedFamily{Families: db, other: bobFams[0]}
	swapped := New(cfg)
	if err := swapped.EndAccountSession(ctx, alice.User.ID, fp.ID); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("a step on bob's family: %v, want ENOTFOUND", err)
	}
	if f, _ := db.ListFamilies(ctx, bob.User.ID); f[0].Revoked {
		t.Fatal("alice's end revoked bob's family")
	}

	// Ending the first-party family revokes it; ending s1 ends it and its bound family.
	if err := svc.EndAccountSession(ctx, alice.User.ID, fp.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Refresh(ctx, tok.RefreshToken); err == nil {
		t.Fatal("the ended family still refreshes")
	}
	if err := svc.EndAccountSession(ctx, alice.User.ID, s1.ID); err != nil {
		t.Fatal(err)
	}
	if l, err := svc.AccountSessions(ctx, alice.User.ID, "", ""); err != nil || len(l) != 0 {
		t.Fatalf("after ending all: %+v %v", l, err)
	}
	if _, err := svc.AccountSessions(ctx, "no-such-user", "", ""); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("unknown user: %v", err)
	}
}
