package storetest

import (
	"slices"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// totpUser is a user with a confirmed TOTP (its secret as a sealer would leave it: bytes that
// are not UTF-8) and three recovery-code hashes; its enrolment time is given in zone.
func totpUser(id string) identity.User {
	u := user(id)
	u.Factors = identity.SecondFactors{
		TOTP: &identity.TOTP{Secret: []byte{'s', 0, 0xff, 0xfe, 1}, Confirmed: true, LastStep: 59_000_123_456,
			EnrolledAt: t0.Add(-time.Hour).In(zone)},
		RecoveryCodes: []string{"rc-hash-1", "rc-hash-2", "rc-hash-3"},
	}
	return u
}

// inUTC is u as a store reads it back, in slices of its own: its enrolment time in UTC.
func inUTC(u identity.User) identity.User {
	if u.Factors.TOTP != nil {
		t := *u.Factors.TOTP
		t.EnrolledAt = t.EnrolledAt.UTC()
		t.Secret = slices.Clone(t.Secret)
		u.Factors.TOTP = &t
	}
	u.Factors.RecoveryCodes = slices.Clone(u.Factors.RecoveryCodes)
	return u
}

func testSecondFactorsRoundTrip(t *testing.T, s Store) {
	alice := totpUser("u1")
	check(t, s.CreateUser(ctx, alice))
	want := inUTC(alice)
	equal(t, "GetUser of a user with TOTP", getUser(t, s, "u1"), want)
	byName, err := s.GetUserByName(ctx, alice.Username)
	check(t, err)
	equal(t, "GetUserByName of a user with TOTP", byName, want)
	equal(t, "ListUsers", listed(t, s.ListUsers, identity.ListOptions{Limit: 10}), []identity.User{want})

	// The users a session's and a family's lookups give carry the factors too.
	create(t, s.CreateSession, session("s1", "u1", 0))
	_, owner, err := s.SessionByToken(ctx, "th-s1")
	check(t, err)
	equal(t, "SessionByToken's user", owner, want)
	create(t, s.CreateFamily, family("f1", "u1", "r1"))
	_, owner = peek(t, s, "r1")
	equal(t, "the user UpdateFamilyByToken's step is given", owner, want)

	// The factors are the store's own: changing what was given or returned changes nothing.
	alice.Factors.TOTP.Secret[0] = 'X'
	alice.Factors.RecoveryCodes[0] = "evil"
	got := getUser(t, s, "u1")
	got.Factors.TOTP.Secret[1] = 'X'
	got.Factors.RecoveryCodes[1] = "evil"
	equal(t, "GetUser after changing slices outside the store", getUser(t, s, "u1"), want)

	// Nil and empty lists and secrets are kept apart, as the store keeps its other lists; an
	// unconfirmed enrolment, and no factors at all, read back as they were.
	for _, tt := range []struct {
		id string
		f  identity.SecondFactors
	}{
		{"u2", identity.SecondFactors{TOTP: &identity.TOTP{Secret: []byte{}, EnrolledAt: t0}, RecoveryCodes: []string{}}},
		{"u3", identity.SecondFactors{TOTP: &identity.TOTP{}}},
		{"u4", identity.SecondFactors{RecoveryCodes: []string{"orphan"}}},
		{"u5", identity.SecondFactors{}},
	} {
		u := user(tt.id)
		u.Factors = tt.f
		check(t, s.CreateUser(ctx, u))
		equal(t, "GetUser "+tt.id, getUser(t, s, tt.id), u)
		got, err := s.UpdateUser(ctx, tt.id, func(u identity.User) (identity.User, error) { u.PasswordHash += "'"; return u, nil })
		check(t, err)
		u.PasswordHash += "'"
		equal(t, "UpdateUser's result, the factors untouched, "+tt.id, got, u)
		equal(t, "GetUser after an update that left the factors "+tt.id, getUser(t, s, tt.id), u)
	}

	// A change of credentials keeps them too.
	got, err = s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { u.PasswordHash = "h2"; return u, nil })
	check(t, err)
	want.PasswordHash, want.Epoch = "h2", 1
	equal(t, "ChangeCredentials' result", got, want)
	equal(t, "GetUser after ChangeCredentials", getUser(t, s, "u1"), want)
}

// testSecondFactorUpdaters takes a user through identity's updaters: each change is stored as
// the updater made it, and each refusal stores nothing.
func testSecondFactorUpdaters(t *testing.T, s Store) {
	users(t, s, "u1")
	want := getUser(t, s, "u1")
	update := func(what string, fn func(identity.User) (identity.User, error)) {
		t.Helper()
		got, err := s.UpdateUser(ctx, "u1", fn)
		check(t, err)
		var change error
		want, change = fn(want)
		check(t, change)
		want = inUTC(want)
		equal(t, what+": UpdateUser's result", got, want)
		equal(t, what+": GetUser", getUser(t, s, "u1"), want)
	}
	refused := func(what string, fn func(identity.User) (identity.User, error), target error) {
		t.Helper()
		_, err := s.UpdateUser(ctx, "u1", fn)
		wantIs(t, what, err, target)
		equal(t, what+": GetUser after the refusal", getUser(t, s, "u1"), want)
	}
	secret := []byte("sealed:1")
	update("enrol", func(u identity.User) (identity.User, error) { return u.EnrollTOTP(secret, t0.In(zone)) })
	refused("confirm another enrolment", func(u identity.User) (identity.User, error) {
		return u.ConfirmTOTP([]byte("sealed:0"), 100, []string{"a"})
	}, identity.ErrTOTPNotEnrolled)
	update("confirm", func(u identity.User) (identity.User, error) { return u.ConfirmTOTP(secret, 100, []string{"a", "b"}) })
	if !getUser(t, s, "u1").Factors.HasTOTP() {
		t.Fatal("the confirmed TOTP is not stored as confirmed")
	}
	refused("enrol again", func(u identity.User) (identity.User, error) { return u.EnrollTOTP([]byte("x"), t0) }, identity.ErrTOTPEnabled)
	update("a code of a later step", func(u identity.User) (identity.User, error) { return u.UseTOTPStep(101) })
	refused("the same step again", func(u identity.User) (identity.User, error) { return u.UseTOTPStep(101) }, identity.ErrCodeUsed)
	refused("an earlier step", func(u identity.User) (identity.User, error) { return u.UseTOTPStep(100) }, identity.ErrCodeUsed)
	update("a recovery code", func(u identity.User) (identity.User, error) { return u.UseRecoveryCode("a") })
	refused("the recovery code again", func(u identity.User) (identity.User, error) { return u.UseRecoveryCode("a") }, identity.ErrRecoveryCodeUsed)
	update("the last recovery code", func(u identity.User) (identity.User, error) { return u.UseRecoveryCode("b") })
	if l := getUser(t, s, "u1").Factors.RecoveryCodes; l == nil || len(l) != 0 {
		t.Fatalf("recovery codes after the last was used: %#v, want an empty list", l)
	}

	// Credentials change with the factors as the updater leaves them.
	got, err := s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { return u.DisableTOTP() })
	check(t, err)
	want.Factors, want.Epoch = identity.SecondFactors{}, want.Epoch+1
	equal(t, "ChangeCredentials disabling TOTP", got, want)
	equal(t, "GetUser after disabling TOTP", getUser(t, s, "u1"), want)
	refused("disable again", func(u identity.User) (identity.User, error) { return u.DisableTOTP() }, identity.ErrTOTPNotEnabled)
	_, err = s.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) { return u.UseTOTPStep(200) })
	wantIs(t, "ChangeCredentials with a refused step", err, identity.ErrTOTPNotEnabled)
	equal(t, "GetUser after the refused ChangeCredentials", getUser(t, s, "u1"), want)
}

func testPendingSessionRoundTrip(t *testing.T, s Store) {
	users(t, s, "u1")
	u := getUser(t, s, "u1")
	pre := session("s1", "u1", 0)
	pre.Pending, pre.AMR = true, []string{"pwd"}
	full := session("s2", "u1", 0)
	full.CreatedAt = t0.Add(time.Second)
	create(t, s.CreateSession, pre, full)
	equal(t, "GetSession of a pending session", getSession(t, s, "s1"), pre)
	got, owner, err := s.SessionByToken(ctx, "th-s1")
	check(t, err)
	equal(t, "SessionByToken of a pending session", got, pre)
	equal(t, "SessionByToken's user", owner, u)
	if got.Live(owner, t0) || !got.PendingLive(owner, t0) {
		t.Fatal("the pending session read back is live, or not pending-live")
	}
	equal(t, "ListSessions", listed(t, s.ListSessions, "u1"), []identity.Session{pre, full})

	// An update may not turn a pre-session into a session, nor a session into a pre-session:
	// the second step makes a new session. Its other fields still update.
	for _, id := range []string{"s1", "s2"} {
		_, err := s.UpdateSession(ctx, id, func(sess identity.Session) (identity.Session, error) {
			sess.Pending = !sess.Pending
			return sess, nil
		})
		if apperr.Code(err) != apperr.EINVALID {
			t.Fatalf("UpdateSession flipping Pending of %s: %v, want EINVALID", id, err)
		}
	}
	done, err := s.UpdateSession(ctx, "s1", func(sess identity.Session) (identity.Session, error) {
		sess.AMR = append(sess.AMR, "otp")
		return sess, nil
	})
	check(t, err)
	pre.AMR = []string{"pwd", "otp"}
	equal(t, "UpdateSession of a pending session", done, pre)
	equal(t, "ListSessions after the updates", listed(t, s.ListSessions, "u1"), []identity.Session{pre, full})
	ended, err := s.EndSession(ctx, "s2")
	check(t, err)
	equal(t, "EndSession's pending session", ended, full)
}

func testFamilyAMRRoundTrip(t *testing.T, s Store) {
	users(t, s, "u1")
	f1 := family("f1", "u1", "r1")
	f1.AMR = []string{"pwd", "otp"}
	f2 := family("f2", "u1", "r2")
	f2.CreatedAt, f2.AMR = t0.Add(time.Second), []string{}
	f3 := family("f3", "u1", "r3")
	f3.CreatedAt = t0.Add(2 * time.Second) // nil AMR
	create(t, s.CreateFamily, f1, f2, f3)
	equal(t, "ListFamilies", listed(t, s.ListFamilies, "u1"), []identity.Family{f1, f2, f3})
	for tok, want := range map[string]identity.Family{"r1": f1, "r2": f2, "r3": f3} {
		got, _ := peek(t, s, tok)
		equal(t, "the family UpdateFamilyByToken's step is given for "+tok, got, want)
	}

	// The AMR is the store's own: changing what was given or returned changes nothing.
	want := f1
	want.AMR = []string{"pwd", "otp"}
	f1.AMR[0] = "evil"
	listed(t, s.ListFamilies, "u1")[0].AMR[1] = "evil"
	equal(t, "the family after changing slices outside the store", listed(t, s.ListFamilies, "u1")[0], want)

	// A refresh keeps the AMR; a step that changes it is stored.
	got, err := refresh(s, "r1", "r1b", t0)
	check(t, err)
	want.Current = "r1b"
	equal(t, "the family after a refresh", got, want)
	equal(t, "ListFamilies after a refresh", listed(t, s.ListFamilies, "u1")[0], want)
	got, err = s.UpdateFamilyByToken(ctx, "r1b", func(f identity.Family, _ identity.User) (identity.Family, error) {
		f.AMR = []string{"pwd", "hwk"}
		f.Current = "r1c"
		return f, nil
	})
	check(t, err)
	want.AMR, want.Current = []string{"pwd", "hwk"}, "r1c"
	equal(t, "the family after a step changed its AMR", got, want)
	f, _ := peek(t, s, "r1c")
	equal(t, "the family of r1c", f, want)
	// A revocation stored with the step's error keeps it too.
	got, err = refresh(s, "r1", "x", t0)
	wantIs(t, "replayed r1", err, identity.ErrReuse)
	want.Revoked = true
	equal(t, "the revoked family", got, want)
	equal(t, "ListFamilies after the revocation", listed(t, s.ListFamilies, "u1"), []identity.Family{want, f2, f3})
}
