package storetest

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func session(id, user string, epoch int64, now time.Time) identity.Session {
	return identity.Session{
		ID: id, TokenHash: "th-" + id, UserID: user, Epoch: epoch, AuthTime: now.Add(-time.Second),
		AMR: []string{"pwd"}, CreatedAt: now, LastSeenAt: now, IdleTTL: time.Hour, ExpiresAt: now.Add(12 * time.Hour),
		RemoteAddr: "192.0.2.1", UserAgent: "test/1.0",
	}
}

func testFamilyEpoch(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0).UTC()
	users(t, s, "u1")
	stale := family("f1", "u1", "r0", now)
	stale.Epoch = 1 // the user is at epoch 0
	if err := s.CreateFamily(ctx, stale); apperr.Code(err) != apperr.ECONFLICT {
		t.Fatalf("family for another epoch: %v, want ECONFLICT", err)
	}
	if err := s.CreateFamily(ctx, family("f2", "nobody", "r1", now)); apperr.Code(err) != apperr.ECONFLICT {
		t.Fatalf("family for a missing user: %v, want ECONFLICT", err)
	}
	if _, err := refresh(s, "r0", "x", now); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("a refused family was stored: %v", err)
	}
}

func testChangePassword(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0).UTC()
	users(t, s, "u1", "u2")
	for _, f := range []identity.Family{family("a", "u1", "ra", now), family("b", "u2", "rb", now)} {
		if err := s.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, sess := range []identity.Session{session("s1", "u1", 0, now), session("s2", "u2", 0, now)} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, s.ChangePassword(ctx, "u1", "wrong-old-hash", "h2"), apperr.ECONFLICT)
	wantCode(t, s.ChangePassword(ctx, "nobody", "", "h2"), apperr.ENOTFOUND)
	if err := s.ChangePassword(ctx, "u1", "h-u1", "h2"); err != nil {
		t.Fatal(err)
	}
	u, err := s.UserByID(ctx, "u1")
	if err != nil || u.PasswordHash != "h2" || u.Epoch != 1 {
		t.Fatalf("after the change: %+v, %v; want the new hash at epoch 1", u, err)
	}
	if _, err := refresh(s, "ra", "ra1", now); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("the user's family after the change: %v, want invalid grant", err)
	}
	if _, _, err := s.SessionByToken(ctx, "th-s1"); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("the user's session after the change: %v, want ENOTFOUND", err)
	}
	if _, err := refresh(s, "rb", "rb1", now); err != nil {
		t.Fatalf("another user's family: %v", err)
	}
	if _, _, err := s.SessionByToken(ctx, "th-s2"); err != nil {
		t.Fatalf("another user's session: %v", err)
	}
	// A session for the old epoch is refused; one for the new is taken. A rehash keeps the epoch.
	if err := s.CreateSession(ctx, session("s3", "u1", 0, now)); apperr.Code(err) != apperr.ECONFLICT {
		t.Fatalf("session for the old epoch: %v, want ECONFLICT", err)
	}
	if err := s.CreateSession(ctx, session("s4", "u1", 1, now)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPasswordHash(ctx, "u1", "h2", "h3"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.UserByID(ctx, "u1"); u.Epoch != 1 {
		t.Fatalf("a rehash moved the epoch to %d", u.Epoch)
	}
}

func testSessionRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0).UTC()
	users(t, s, "u1")
	want := session("s1", "u1", 0, now)
	if err := s.CreateSession(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, u, err := s.SessionByToken(ctx, "th-s1")
	if err != nil || !reflect.DeepEqual(got, want) || u.ID != "u1" || u.Username != "user-u1" {
		t.Fatalf("SessionByToken = %+v, %+v, %v; want %+v and its user", got, u, err, want)
	}
	if err := s.CreateSession(ctx, want); err == nil {
		t.Fatal("a second session with the same id and token was accepted")
	}
	if err := s.CreateSession(ctx, identity.Session{ID: "x", UserID: "u1"}); err == nil {
		t.Fatal("a session without token hash and expiry was accepted")
	}
	_, _, err = s.SessionByToken(ctx, "th-unknown")
	wantCode(t, err, apperr.ENOTFOUND)
	// Touch only moves LastSeenAt forward, and concurrent touches leave the latest.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if err := s.TouchSession(ctx, "s1", now.Add(time.Duration(i+1)*time.Minute)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.TouchSession(ctx, "s1", now); err != nil {
		t.Fatal(err)
	}
	got, _, _ = s.SessionByToken(ctx, "th-s1")
	if !got.LastSeenAt.Equal(now.Add(10 * time.Minute)) {
		t.Fatalf("LastSeenAt = %s, want the latest touch", got.LastSeenAt)
	}
	if err := s.TouchSession(ctx, "gone", now); err != nil {
		t.Fatalf("touching a missing session: %v", err)
	}
}

func testEndSession(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0).UTC()
	users(t, s, "u1")
	if err := s.CreateSession(ctx, session("s1", "u1", 0, now)); err != nil {
		t.Fatal(err)
	}
	bound, other := family("a", "u1", "ra", now), family("b", "u1", "rb", now)
	bound.SessionID = "s1"
	for _, f := range []identity.Family{bound, other} {
		if err := s.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.EndSession(ctx, "s1")
	if err != nil || got.ID != "s1" {
		t.Fatalf("EndSession = %+v, %v", got, err)
	}
	if _, _, err := s.SessionByToken(ctx, "th-s1"); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("ended session still found: %v", err)
	}
	if _, err := refresh(s, "ra", "ra1", now); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("the session's family: %v, want invalid grant", err)
	}
	if _, err := refresh(s, "rb", "rb1", now); err != nil {
		t.Fatalf("a family of no session: %v", err)
	}
	_, err = s.EndSession(ctx, "s1")
	wantCode(t, err, apperr.ENOTFOUND)
}

func testDeleteDeadSessions(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0).UTC()
	users(t, s, "u1")
	live, idle, expired := session("live", "u1", 0, now), session("idle", "u1", 0, now), session("exp", "u1", 0, now)
	live.LastSeenAt = now.Add(2 * time.Hour)
	expired.ExpiresAt = now.Add(time.Minute)
	expired.IdleTTL = 0
	for _, sess := range []identity.Session{live, idle, expired} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteDeadSessions(ctx, now.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteDeadSessions = %d, %v; want 2", n, err)
	}
	for tok, want := range map[string]string{"th-live": "", "th-idle": apperr.ENOTFOUND, "th-exp": apperr.ENOTFOUND} {
		if _, _, err := s.SessionByToken(ctx, tok); apperr.Code(err) != want {
			t.Fatalf("%s after GC: %v, want %q", tok, err, want)
		}
	}
}

func testSecret(t *testing.T, s Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([][]byte, 10)
	for i := range got {
		wg.Go(func() {
			v, err := s.Secret(ctx, "k", []byte{byte(i + 1)})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for _, v := range got {
		if len(v) != 1 || v[0] != got[0][0] {
			t.Fatalf("processes racing on the first start got different secrets: %v", got)
		}
	}
	if v, err := s.Secret(ctx, "k", []byte{99}); err != nil || v[0] != got[0][0] {
		t.Fatalf("a later start replaced the secret: %v, %v", v, err)
	}
}
