// Package storetest is the conformance suite every identity store runs, so a second backend
// (PostgreSQL, say) is a drop-in: it must pass the same tests as bbolt.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Store is everything an identity backend implements.
type Store interface {
	identity.UserStore
	identity.KeyStore
	identity.FamilyStore
	identity.SessionStore
	identity.SecretStore
}

// RunTests runs the suite; newStore returns a fresh, empty store for each subtest.
func RunTests(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("UserRoundTrip", func(t *testing.T) { testUserRoundTrip(t, newStore(t)) })
	t.Run("UsernameCaseInsensitive", func(t *testing.T) { testUsernameCase(t, newStore(t)) })
	t.Run("ConcurrentSignupOneWinner", func(t *testing.T) { testConcurrentSignup(t, newStore(t)) })
	t.Run("SetPasswordHashOnlyIfUnchanged", func(t *testing.T) { testSetPasswordHash(t, newStore(t)) })
	t.Run("KeysUpdate", func(t *testing.T) { testKeysUpdate(t, newStore(t)) })
	t.Run("KeysUpdateErrorChangesNothing", func(t *testing.T) { testKeysUpdateError(t, newStore(t)) })
	t.Run("CreateFamily", func(t *testing.T) { testCreateFamily(t, newStore(t)) })
	t.Run("RefreshChainAndReuse", func(t *testing.T) { testRefreshChain(t, newStore(t)) })
	t.Run("ConcurrentRefreshOneWinner", func(t *testing.T) { testConcurrentRefresh(t, newStore(t)) })
	t.Run("RevokeUserFamilies", func(t *testing.T) { testRevokeUser(t, newStore(t)) })
	t.Run("DeleteDeadFamilies", func(t *testing.T) { testDeleteDead(t, newStore(t)) })
	t.Run("FamilyNeedsCurrentCredentials", func(t *testing.T) { testFamilyEpoch(t, newStore(t)) })
	t.Run("ChangePasswordEndsEverything", func(t *testing.T) { testChangePassword(t, newStore(t)) })
	t.Run("SessionRoundTrip", func(t *testing.T) { testSessionRoundTrip(t, newStore(t)) })
	t.Run("EndSessionRevokesItsFamilies", func(t *testing.T) { testEndSession(t, newStore(t)) })
	t.Run("DeleteDeadSessions", func(t *testing.T) { testDeleteDeadSessions(t, newStore(t)) })
	t.Run("SecretFirstWriterWins", func(t *testing.T) { testSecret(t, newStore(t)) })
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := apperr.Code(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func testUserRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	u := identity.User{ID: "u1", Username: "Alice", PasswordHash: "$argon2id$x", CreatedAt: time.Unix(1700000000, 0).UTC()}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.UserByID(ctx, "u1")
	if err != nil || got != u {
		t.Fatalf("UserByID = %+v, %v; want %+v", got, err, u)
	}
	got, err = s.UserByName(ctx, "Alice")
	if err != nil || got != u {
		t.Fatalf("UserByName = %+v, %v; want %+v", got, err, u)
	}
	_, err = s.UserByID(ctx, "nobody")
	wantCode(t, err, apperr.ENOTFOUND)
	_, err = s.UserByName(ctx, "nobody")
	wantCode(t, err, apperr.ENOTFOUND)
}

func testUsernameCase(t *testing.T, s Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, identity.User{ID: "u1", Username: "Alice"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateUser(ctx, identity.User{ID: "u2", Username: "aLICE"}), apperr.ECONFLICT)
	got, err := s.UserByName(ctx, "ALICE")
	if err != nil || got.ID != "u1" || got.Username != "Alice" {
		t.Fatalf("UserByName(ALICE) = %+v, %v; want u1 as typed at signup", got, err)
	}
	if _, err := s.UserByID(ctx, "u2"); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("the refused signup left a user behind: %v", err)
	}
}

func testConcurrentSignup(t *testing.T, s Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, conflict := 0, 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.CreateUser(ctx, identity.User{ID: string(rune('a' + i)), Username: "bob"})
			mu.Lock()
			defer mu.Unlock()
			switch apperr.Code(err) {
			case "":
				ok++
			case apperr.ECONFLICT:
				conflict++
			default:
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || conflict != 19 {
		t.Fatalf("%d created and %d conflicts, want 1 and 19", ok, conflict)
	}
}

func testSetPasswordHash(t *testing.T, s Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, identity.User{ID: "u1", Username: "carol", PasswordHash: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPasswordHash(ctx, "u1", "h1", "h2"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.SetPasswordHash(ctx, "u1", "h1", "h3"), apperr.ECONFLICT)
	u, _ := s.UserByID(ctx, "u1")
	if u.PasswordHash != "h2" {
		t.Fatalf("hash = %q, want h2", u.PasswordHash)
	}
	wantCode(t, s.SetPasswordHash(ctx, "nobody", "", "x"), apperr.ENOTFOUND)
}

func testKeysUpdate(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Unix(1700000000, 0).UTC()
	a := identity.SigningKey{ID: "a", State: identity.KeyCurrent, PrivateDER: []byte{1, 2, 3}, CreatedAt: t0, SignsFrom: t0}
	b := identity.SigningKey{ID: "b", State: identity.KeyNext, PrivateDER: []byte{4}, CreatedAt: t0, SignsFrom: t0.Add(time.Hour)}
	err := s.UpdateKeys(ctx, func(keys []identity.SigningKey) ([]identity.SigningKey, error) {
		if len(keys) != 0 {
			t.Errorf("a new store has %d keys", len(keys))
		}
		return []identity.SigningKey{a, b}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Dropping a key from the result deletes it.
	err = s.UpdateKeys(ctx, func(keys []identity.SigningKey) ([]identity.SigningKey, error) {
		return []identity.SigningKey{b}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != "b" || string(keys[0].PrivateDER) != "\x04" || !keys[0].SignsFrom.Equal(b.SignsFrom) {
		t.Fatalf("Keys = %+v, %v; want only b", keys, err)
	}
}

func testKeysUpdateError(t *testing.T, s Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.UpdateKeys(ctx, func(keys []identity.SigningKey) ([]identity.SigningKey, error) {
		return []identity.SigningKey{{ID: "x"}}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the updater's", err)
	}
	if keys, _ := s.Keys(ctx); len(keys) != 0 {
		t.Fatalf("a failed update stored %d keys", len(keys))
	}
}

func testCreateFamily(t *testing.T, s Store) {
	ctx := context.Background()
	users(t, s, "u1")
	now := time.Unix(1700000000, 0).UTC()
	f := identity.Family{ID: "f1", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: "hash0"}
	if err := s.CreateFamily(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFamily(ctx, f); err == nil {
		t.Fatal("a second family with the same id was accepted")
	}
	if err := s.CreateFamily(ctx, identity.Family{ID: "f2"}); err == nil {
		t.Fatal("a family without user and token was accepted")
	}
}

func refresh(s Store, presented, next string, now time.Time) (identity.Family, error) {
	return s.UpdateFamilyByToken(context.Background(), presented, func(f identity.Family, u identity.User) (identity.Family, error) {
		return f.Refresh(presented, next, u, now)
	})
}

// users creates users with these ids (families and sessions need theirs to exist).
func users(t *testing.T, s Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.CreateUser(context.Background(), identity.User{ID: id, Username: "user-" + id, PasswordHash: "h-" + id}); err != nil {
			t.Fatal(err)
		}
	}
}

func family(id, user, current string, now time.Time) identity.Family {
	return identity.Family{ID: id, UserID: user, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: current}
}

func testRefreshChain(t *testing.T, s Store) {
	ctx := context.Background()
	users(t, s, "u1")
	now := time.Unix(1700000000, 0).UTC()
	if err := s.CreateFamily(ctx, family("f1", "u1", "r0", now)); err != nil {
		t.Fatal(err)
	}
	if _, err := refresh(s, "r0", "r1", now); err != nil {
		t.Fatalf("r0 → r1: %v", err)
	}
	if _, err := refresh(s, "r1", "r2", now); err != nil {
		t.Fatalf("r1 → r2: %v", err)
	}
	// Replaying r0 is reuse: refused, and the revocation is stored, so r2 is dead too.
	if _, err := refresh(s, "r0", "x", now); !errors.Is(err, identity.ErrReuse) {
		t.Fatalf("replayed r0: %v, want reuse", err)
	}
	if _, err := refresh(s, "r2", "r3", now); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("r2 after reuse: %v, want invalid grant", err)
	}
	_, err := refresh(s, "never-issued", "x", now)
	wantCode(t, err, apperr.ENOTFOUND)
}

func testConcurrentRefresh(t *testing.T, s Store) {
	users(t, s, "u1")
	now := time.Unix(1700000000, 0).UTC()
	if err := s.CreateFamily(context.Background(), family("f1", "u1", "r0", now)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := refresh(s, "r0", string(rune('A'+i)), now); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded, want exactly 1", wins)
	}
}

func testRevokeUser(t *testing.T, s Store) {
	ctx := context.Background()
	users(t, s, "u1", "u2")
	now := time.Unix(1700000000, 0).UTC()
	for _, f := range []identity.Family{family("a", "u1", "ra", now), family("b", "u1", "rb", now), family("c", "u2", "rc", now)} {
		if err := s.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeUserFamilies(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"ra", "rb"} {
		if _, err := refresh(s, tok, tok+"1", now); apperr.Code(err) != apperr.EUNAUTHORIZED {
			t.Fatalf("%s after the user's families were revoked: %v", tok, err)
		}
	}
	if _, err := refresh(s, "rc", "rc1", now); err != nil {
		t.Fatalf("another user's family was revoked: %v", err)
	}
	if err := s.RevokeUserFamilies(ctx, "nobody"); err != nil {
		t.Fatalf("revoking a user without families: %v", err)
	}
}

func testDeleteDead(t *testing.T, s Store) {
	ctx := context.Background()
	users(t, s, "u")
	now := time.Unix(1700000000, 0).UTC()
	live, expired, revoked := family("live", "u", "l0", now), family("exp", "u", "e0", now), family("rev", "u", "v0", now)
	expired.ExpiresAt = now.Add(time.Minute)
	for _, f := range []identity.Family{live, expired, revoked} {
		if err := s.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := refresh(s, "e0", "e1", now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateFamilyByToken(ctx, "v0", func(f identity.Family, _ identity.User) (identity.Family, error) { return f.Revoke() }); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteDeadFamilies(ctx, now.Add(2*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("DeleteDeadFamilies = %d, %v; want 2", n, err)
	}
	for _, tok := range []string{"e0", "e1", "v0"} {
		if _, err := refresh(s, tok, "z", now); apperr.Code(err) != apperr.ENOTFOUND {
			t.Fatalf("token %s of a deleted family: %v, want ENOTFOUND", tok, err)
		}
	}
	if _, err := refresh(s, "l0", "l1", now); err != nil {
		t.Fatalf("the live family was touched: %v", err)
	}
}
