package storetest

import (
	"strings"
	"sync"
	"testing"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

func group(name string) identity.Group { return identity.Group{Name: name, CreatedAt: t0} }

func userGroups(t *testing.T, s Store, userID string) []string {
	t.Helper()
	return listed(t, s.UserGroups, userID)
}

// A group reads back as stored, in UTC; a bad name is EINVALID, a taken one ErrGroupTaken, and
// neither stores anything; the list pages by name as the users list does.
func testGroupRoundTrip(t *testing.T, s Store) {
	check(t, s.CreateGroup(ctx, identity.Group{Name: "ops", CreatedAt: t0.In(zone)}))
	got, err := s.GetGroup(ctx, "ops")
	check(t, err)
	equal(t, "the group read back", got, group("ops"))

	for _, name := range []string{"", "Ops", "a b", "a,b", "é", "a\x00", strings.Repeat("a", 65), "\xff"} {
		wantCode(t, "CreateGroup "+name, s.CreateGroup(ctx, group(name)), apperr.EINVALID)
		_, err := s.GetGroup(ctx, name)
		wantCode(t, "GetGroup "+name, err, apperr.ENOTFOUND)
	}
	check(t, s.CreateGroup(ctx, group(strings.Repeat("a", 64))))
	taken := group("ops")
	taken.CreatedAt = t0.Add(1)
	wantIs(t, "CreateGroup of a taken name", s.CreateGroup(ctx, taken), identity.ErrGroupTaken)
	got, err = s.GetGroup(ctx, "ops")
	check(t, err)
	equal(t, "the group after the refusal", got, group("ops"))
	_, err = s.GetGroup(ctx, "nobody")
	wantIs(t, "GetGroup of no group", err, identity.ErrNoGroup)

	for _, n := range []string{"k8s:admins", "dev", "ops.eu", "ops-us", "a_b"} {
		check(t, s.CreateGroup(ctx, group(n)))
	}
	names := func(opt identity.ListOptions) []string {
		var out []string
		for _, g := range listed(t, s.ListGroups, opt) {
			out = append(out, g.Name)
		}
		return out
	}
	equal(t, "every group", names(identity.ListOptions{Limit: 100}),
		[]string{"a_b", strings.Repeat("a", 64), "dev", "k8s:admins", "ops", "ops-us", "ops.eu"})
	equal(t, "a page", names(identity.ListOptions{After: "dev", Limit: 2}), []string{"k8s:admins", "ops"})
	equal(t, "a prefix", names(identity.ListOptions{Prefix: "OPS", After: "ops", Limit: 10}), []string{"ops-us", "ops.eu"})
	equal(t, "a '_' prefix is no wildcard", names(identity.ListOptions{Prefix: "a_", Limit: 10}), []string{"a_b"})
	equal(t, "past the last", listed(t, s.ListGroups, identity.ListOptions{After: "z", Limit: 10}), []identity.Group{})
	equal(t, "a prefix no key holds", listed(t, s.ListGroups, identity.ListOptions{Prefix: "\x00", Limit: 10}), []identity.Group{})
	for _, limit := range []int{0, -1, identity.MaxListLimit + 1} {
		_, err := s.ListGroups(ctx, identity.ListOptions{Limit: limit})
		wantCode(t, "ListGroups with a bad limit", err, apperr.EINVALID)
	}
}

// Memberships: each refusal has its error and changes nothing; a user's groups come in byte
// order; deleting a group or a user removes their memberships, and a group made again under
// the old name starts empty.
func testMemberships(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateGroup, group("ops"), group("dev"), group("admins"))
	equal(t, "a user without groups", userGroups(t, s, "u1"), []string{})
	equal(t, "no such user", userGroups(t, s, "nobody"), []string{})
	equal(t, "an id no key holds", userGroups(t, s, "\x00"), []string{})

	check(t, s.AddMember(ctx, "ops", "u1"))
	check(t, s.AddMember(ctx, "admins", "u1"))
	check(t, s.AddMember(ctx, "ops", "u2"))
	wantIs(t, "AddMember twice", s.AddMember(ctx, "ops", "u1"), identity.ErrAlreadyMember)
	wantIs(t, "AddMember to no group", s.AddMember(ctx, "nogroup", "u1"), identity.ErrNoGroup)
	wantIs(t, "AddMember to a name no key holds", s.AddMember(ctx, "a\x00", "u1"), identity.ErrNoGroup)
	wantCode(t, "AddMember of no user", s.AddMember(ctx, "dev", "nobody"), apperr.ENOTFOUND)
	wantCode(t, "AddMember of an id no key holds", s.AddMember(ctx, "dev", "\xff"), apperr.ENOTFOUND)
	equal(t, "u1's groups", userGroups(t, s, "u1"), []string{"admins", "ops"})
	equal(t, "u2's groups", userGroups(t, s, "u2"), []string{"ops"})

	wantIs(t, "RemoveMember of a non-member", s.RemoveMember(ctx, "dev", "u1"), identity.ErrNotMember)
	wantIs(t, "RemoveMember of no user", s.RemoveMember(ctx, "dev", "\x00"), identity.ErrNotMember)
	wantIs(t, "RemoveMember from no group", s.RemoveMember(ctx, "nogroup", "u1"), identity.ErrNoGroup)
	check(t, s.RemoveMember(ctx, "admins", "u1"))
	wantIs(t, "RemoveMember twice", s.RemoveMember(ctx, "admins", "u1"), identity.ErrNotMember)
	equal(t, "u1's groups after the removal", userGroups(t, s, "u1"), []string{"ops"})
	check(t, s.AddMember(ctx, "admins", "u1"))

	check(t, s.DeleteGroup(ctx, "ops"))
	wantIs(t, "DeleteGroup twice", s.DeleteGroup(ctx, "ops"), identity.ErrNoGroup)
	wantIs(t, "DeleteGroup of a name no key holds", s.DeleteGroup(ctx, "\x00"), identity.ErrNoGroup)
	equal(t, "u1's groups after the delete", userGroups(t, s, "u1"), []string{"admins"})
	equal(t, "u2's groups after the delete", userGroups(t, s, "u2"), []string{})
	check(t, s.CreateGroup(ctx, group("ops")))
	check(t, s.AddMember(ctx, "ops", "u2")) // not ErrAlreadyMember: the old membership is gone
	equal(t, "u1's groups with ops made again", userGroups(t, s, "u1"), []string{"admins"})

	check(t, s.DeleteUser(ctx, "u1"))
	equal(t, "a deleted user's groups", userGroups(t, s, "u1"), []string{})
	wantCode(t, "AddMember of a deleted user", s.AddMember(ctx, "admins", "u1"), apperr.ENOTFOUND)
	wantIs(t, "RemoveMember of a deleted user", s.RemoveMember(ctx, "admins", "u1"), identity.ErrNotMember)
	check(t, s.DeleteGroup(ctx, "admins")) // its set of members holds nothing stale
	equal(t, "u2's groups at the end", userGroups(t, s, "u2"), []string{"ops"})
}

// Many processes adding one member at once: one wins, every other is told it is a member.
func testConcurrentAddMember(t *testing.T, s Store) {
	users(t, s, "u1")
	create(t, s.CreateGroup, group("ops"))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.AddMember(ctx, "ops", "u1")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantIs(t, "a losing AddMember", err, identity.ErrAlreadyMember)
		}
	}
	equal(t, "winners", won, 1)
	equal(t, "u1's groups", userGroups(t, s, "u1"), []string{"ops"})
}
