package auth

import (
	"context"
	"time"

	"jwtidp/idp/identity"
)

// CreateGroup is the admin's new group, audited. EINVALID for a name outside
// [a-z0-9._:-]{1,64}; identity.ErrGroupTaken (ECONFLICT) when there is one by that name.
func (s *Admin) CreateGroup(ctx context.Context, name string) (identity.Group, error) {
	g := identity.Group{Name: name, CreatedAt: s.Now().UTC().Truncate(time.Microsecond)}
	if err := g.Validate(); err != nil {
		return identity.Group{}, err
	}
	err := s.audited(ctx, func(ctx context.Context) error { return s.Groups.CreateGroup(ctx, g) },
		s.event(ctx, identity.AuditGroupCreated, "", Success, "group "+name))
	if err != nil {
		return identity.Group{}, err
	}
	return g, nil
}

// ListGroups is a page of groups for an admin, by name: those starting with prefix, after
// after; next is the after of the following page, "" at the end. EINVALID for a limit outside
// 1..identity.MaxListLimit.
func (s *Admin) ListGroups(ctx context.Context, prefix, after string, limit int) ([]identity.Group, string, error) {
	page, err := s.Groups.ListGroups(ctx, identity.ListOptions{Prefix: prefix, After: after, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(page) == limit {
		next = page[len(page)-1].Name
	}
	return page, next, nil
}

// DeleteGroup removes the group and every membership of it, audited. Its members' next
// refresh no longer carries the scopes it granted them. identity.ErrNoGroup (ENOTFOUND) for
// none.
func (s *Admin) DeleteGroup(ctx context.Context, name string) error {
	if identity.ValidateGroupName(name) != nil {
		return identity.ErrNoGroup // no group can have that name; and it stays out of the trail
	}
	return s.audited(ctx, func(ctx context.Context) error { return s.Groups.DeleteGroup(ctx, name) },
		s.event(ctx, identity.AuditGroupDeleted, "", Success, "group "+name+" and its memberships"))
}

// AddMember makes the user (their id) a member of the group, audited, and returns them.
// ENOTFOUND for no such user or group (identity.ErrNoGroup); identity.ErrAlreadyMember
// (ECONFLICT) when they are one.
func (s *Admin) AddMember(ctx context.Context, group, user string) (identity.User, error) {
	return s.membership(ctx, group, user, identity.AuditGroupMemberAdded, "added to group ", s.Groups.AddMember)
}

// RemoveMember ends the user's (their id) membership of the group, audited, and returns them:
// their next refresh no longer carries the scopes it granted. ENOTFOUND for no such user or
// group (identity.ErrNoGroup), or when they are not a member (identity.ErrNotMember).
func (s *Admin) RemoveMember(ctx context.Context, group, user string) (identity.User, error) {
	return s.membership(ctx, group, user, identity.AuditGroupMemberRemoved, "removed from group ", s.Groups.RemoveMember)
}

// membership runs change (the store's AddMember or RemoveMember) on the group and the user user
// names, with its audit event.
func (s *Admin) membership(ctx context.Context, group, user, typ, detail string, change func(ctx context.Context, group, userID string) error) (identity.User, error) {
	if identity.ValidateGroupName(group) != nil {
		return identity.User{}, identity.ErrNoGroup
	}
	u, err := s.findUser(ctx, user)
	if err != nil {
		return identity.User{}, err
	}
	err = s.audited(ctx, func(ctx context.Context) error { return change(ctx, group, u.ID) },
		s.event(ctx, typ, u.ID, Success, detail+group))
	if err != nil {
		return identity.User{}, err
	}
	return u, nil
}
