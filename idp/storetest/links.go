package storetest

import (
	"errors"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// link is a valid, unused link of kind with id, whose token hashes to "h-"+id.
func link(id string, kind identity.LinkKind) identity.Link {
	l := identity.Link{ID: id, Hash: "h-" + id, Kind: kind, UserID: "u1", Email: "alice@example.com",
		Epoch: 3, CreatedAt: t0, ExpiresAt: t0.Add(identity.ResetPasswordTTL)}
	if kind == identity.LinkInvitation {
		l.UserID, l.Epoch, l.Groups = "", 0, []string{"ops", "admins"}
	}
	return l
}

// linkOf reads the link of kind whose id is id through ListLinks.
func linkOf(t *testing.T, s Store, kind identity.LinkKind, id string) (identity.Link, bool) {
	t.Helper()
	all, err := s.ListLinks(ctx, kind)
	check(t, err)
	for _, l := range all {
		if l.ID == id {
			return l, true
		}
	}
	return identity.Link{}, false
}

// use is the updater that spends a live link once, as every use does.
func use(at time.Time) func(identity.Link) (identity.Link, error) {
	return func(l identity.Link) (identity.Link, error) {
		if !l.Live(at) {
			return identity.Link{}, errSpent
		}
		l.UsedAt = at
		return l, nil
	}
}

var errSpent = errors.New("used or expired")

func testLinkRoundTrip(t *testing.T, s Store) {
	reset, inv := link("l1", identity.LinkResetPassword), link("l2", identity.LinkInvitation)
	verify := link("l3", identity.LinkVerifyEmail)
	reset.CreatedAt, reset.ExpiresAt = reset.CreatedAt.In(zone), reset.ExpiresAt.In(zone)
	create(t, s.CreateLink, reset, inv, verify)
	want := reset
	want.CreatedAt, want.ExpiresAt = reset.CreatedAt.UTC(), reset.ExpiresAt.UTC()
	got, ok := linkOf(t, s, identity.LinkResetPassword, "l1")
	if !ok {
		t.Fatal("the reset link is not listed")
	}
	equal(t, "a reset link", got, want)
	got, _ = linkOf(t, s, identity.LinkInvitation, "l2")
	equal(t, "an invitation", got, inv)
	got.Groups[0] = "changed"
	got, _ = linkOf(t, s, identity.LinkInvitation, "l2")
	equal(t, "the invitation after its copy was changed", got, inv)
	// Each kind lists its own, oldest first.
	later := link("l0", identity.LinkInvitation)
	later.CreatedAt = t0.Add(time.Minute)
	create(t, s.CreateLink, later)
	all, err := s.ListLinks(ctx, identity.LinkInvitation)
	check(t, err)
	if len(all) != 2 || all[0].ID != "l2" || all[1].ID != "l0" {
		t.Errorf("the invitations, oldest first: %+v", all)
	}
	none, err := s.ListLinks(ctx, "nothing")
	check(t, err)
	if none == nil || len(none) != 0 {
		t.Errorf("no links of a kind: %#v, want empty and not nil", none)
	}
}

func testCreateLinkRefusals(t *testing.T, s Store) {
	l := link("l1", identity.LinkResetPassword)
	create(t, s.CreateLink, l)
	sameID := link("l1", identity.LinkVerifyEmail)
	sameID.Hash = "h-other"
	wantCode(t, "a link whose id is taken", s.CreateLink(ctx, sameID), apperr.ECONFLICT)
	sameHash := link("l9", identity.LinkVerifyEmail)
	sameHash.Hash = l.Hash
	wantCode(t, "a link whose hash is taken", s.CreateLink(ctx, sameHash), apperr.ECONFLICT)
	for name, change := range map[string]func(*identity.Link){
		"no id":                          func(l *identity.Link) { l.ID = "" },
		"no hash":                        func(l *identity.Link) { l.Hash = "" },
		"no expiry":                      func(l *identity.Link) { l.ExpiresAt = time.Time{} },
		"an unknown kind":                func(l *identity.Link) { l.Kind = "magic" },
		"a reset of no user":             func(l *identity.Link) { l.UserID = "" },
		"groups on a reset":              func(l *identity.Link) { l.Groups = []string{"ops"} },
		"a verification of no address":   func(l *identity.Link) { l.Kind, l.Email = identity.LinkVerifyEmail, "" },
		"an invitation of a user":        func(l *identity.Link) { l.Kind = identity.LinkInvitation },
		"an invitation into a bad group": func(l *identity.Link) { l.Kind, l.UserID, l.Groups = identity.LinkInvitation, "", []string{"Bad Name"} },
	} {
		bad := link("l2", identity.LinkResetPassword)
		change(&bad)
		wantCode(t, "a link with "+name, s.CreateLink(ctx, bad), apperr.EINVALID)
	}
	for _, kind := range []identity.LinkKind{identity.LinkResetPassword, identity.LinkVerifyEmail, identity.LinkInvitation} {
		all, err := s.ListLinks(ctx, kind)
		check(t, err)
		if want := map[identity.LinkKind]int{identity.LinkResetPassword: 1}[kind]; len(all) != want {
			t.Errorf("%s links after the refusals: %+v", kind, all)
		}
	}
	_, err := s.UseLink(ctx, "h-l9", use(t0))
	wantCode(t, "the refused link's hash", err, apperr.ENOTFOUND)
}

func testUseLink(t *testing.T, s Store) {
	l := link("l1", identity.LinkResetPassword)
	create(t, s.CreateLink, l)
	_, err := s.UseLink(ctx, "h-nothing", use(t0))
	wantCode(t, "an unknown hash", err, apperr.ENOTFOUND)
	_, err = s.UseLink(ctx, "l1", use(t0))
	wantCode(t, "an id is not a hash", err, apperr.ENOTFOUND)

	// fn's error changes nothing and is returned.
	_, err = s.UseLink(ctx, "h-l1", func(l identity.Link) (identity.Link, error) {
		l.UsedAt = t0
		return l, errBoom
	})
	wantIs(t, "an updater's error", err, errBoom)
	// An update may only record the one use.
	for name, change := range map[string]func(*identity.Link){
		"the user":   func(l *identity.Link) { l.UserID = "u2" },
		"the email":  func(l *identity.Link) { l.Email = "mallory@example.com" },
		"the epoch":  func(l *identity.Link) { l.Epoch++ },
		"the expiry": func(l *identity.Link) { l.ExpiresAt = l.ExpiresAt.Add(time.Hour) },
		"the kind":   func(l *identity.Link) { l.Kind = identity.LinkVerifyEmail },
	} {
		got, err := s.UseLink(ctx, "h-l1", func(l identity.Link) (identity.Link, error) {
			l.UsedAt = t0
			change(&l)
			return l, nil
		})
		wantCode(t, "a use that changes "+name, err, apperr.EINVALID)
		equal(t, "what a use that changes "+name+" returns", got, identity.Link{})
	}
	got, _ := linkOf(t, s, identity.LinkResetPassword, "l1")
	equal(t, "the link after the refused uses", got, l)

	// Used once; the second use is fn's refusal, and a use is never undone or moved.
	at := t0.Add(time.Minute)
	got, err = s.UseLink(ctx, "h-l1", use(at.In(zone)))
	check(t, err)
	want := l
	want.UsedAt = at
	equal(t, "the used link", got, want)
	_, err = s.UseLink(ctx, "h-l1", use(at))
	wantIs(t, "a second use", err, errSpent)
	for name, usedAt := range map[string]time.Time{"undoes the use": {}, "moves it": at.Add(time.Second)} {
		_, err = s.UseLink(ctx, "h-l1", func(l identity.Link) (identity.Link, error) { l.UsedAt = usedAt; return l, nil })
		wantCode(t, "an update that "+name, err, apperr.EINVALID)
	}
	got, _ = linkOf(t, s, identity.LinkResetPassword, "l1")
	equal(t, "the link after them", got, want)
}

// Of many uses of one link at once, exactly one wins: the link is decided in the transaction.
func testConcurrentUseLinkOneWinner(t *testing.T, s Store) {
	create(t, s.CreateLink, link("l1", identity.LinkResetPassword))
	oneWinner(t, "use", 20, errSpent, func(_ int, slow func(func(identity.Link) (identity.Link, error)) func(identity.Link) (identity.Link, error)) error {
		_, err := s.UseLink(ctx, "h-l1", slow(use(t0)))
		return err
	})
}

func testDeleteLinks(t *testing.T, s Store) {
	old, live := link("l1", identity.LinkResetPassword), link("l2", identity.LinkInvitation)
	old.ExpiresAt = t0.Add(time.Minute)
	live.ExpiresAt = t0.Add(time.Hour)
	other := link("l3", identity.LinkInvitation)
	create(t, s.CreateLink, old, live, other)
	wantCode(t, "deleting no link", s.DeleteLink(ctx, "nothing"), apperr.ENOTFOUND)
	wantCode(t, "deleting by hash", s.DeleteLink(ctx, "h-l3"), apperr.ENOTFOUND)
	check(t, s.DeleteLink(ctx, "l3"))
	wantCode(t, "deleting it again", s.DeleteLink(ctx, "l3"), apperr.ENOTFOUND)
	_, err := s.UseLink(ctx, "h-l3", use(t0))
	wantCode(t, "a deleted link's hash", err, apperr.ENOTFOUND)
	// Its hash is free again; the id too.
	create(t, s.CreateLink, link("l3", identity.LinkVerifyEmail))

	n, err := s.DeleteDeadLinks(ctx, t0.Add(2*time.Minute))
	check(t, err)
	if n != 1 {
		t.Errorf("DeleteDeadLinks removed %d, want 1", n)
	}
	_, err = s.UseLink(ctx, "h-l1", use(t0))
	wantCode(t, "an expired link after the collector", err, apperr.ENOTFOUND)
	if _, ok := linkOf(t, s, identity.LinkInvitation, "l2"); !ok {
		t.Error("the live invitation was removed")
	}
}
