package identity

import (
	"context"
	"time"

	"jwtidp/shared/apperr"
)

// Group is a named set of users, kept by admins. A user's groups reach their tokens (the groups
// claim), /verify's Remote-Groups and the access rules' group: subjects, and a scope can be
// limited to the members of some groups.
type Group struct {
	Name      string // [a-z0-9._:-]{1,64}: it goes into headers and claims as it is
	CreatedAt time.Time
}

// MaxGroupNameBytes bounds a group's name.
const MaxGroupNameBytes = 64

// ValidateGroupName enforces API.md: 1–64 characters of [a-z0-9._:-]. Only lower case, so a
// name is compared as it is, by every store and every relying party alike; no comma, so
// Remote-Groups can list names separated by commas. EINVALID.
func ValidateGroupName(name string) error {
	if n := len(name); n < 1 || n > MaxGroupNameBytes {
		return apperr.Errorf(apperr.EINVALID, "Group name must be 1 to %d characters long", MaxGroupNameBytes)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return apperr.Errorf(apperr.EINVALID, "Group name may contain only lower-case letters, digits, '.', '_', ':' and '-'")
		}
	}
	return nil
}

// Validate checks a group's invariants before it is stored. EINVALID.
func (g Group) Validate() error { return ValidateGroupName(g.Name) }

var (
	// ErrNoGroup: there is no group by that name. ENOTFOUND.
	ErrNoGroup = apperr.Errorf(apperr.ENOTFOUND, "Group not found")
	// ErrGroupTaken refuses a group whose name another group has. ECONFLICT.
	ErrGroupTaken = apperr.Errorf(apperr.ECONFLICT, "A group with that name already exists")
	// ErrAlreadyMember refuses to add a member twice. ECONFLICT.
	ErrAlreadyMember = apperr.Errorf(apperr.ECONFLICT, "The user is already a member of the group")
	// ErrNotMember refuses to remove a user who is not a member. ENOTFOUND.
	ErrNotMember = apperr.Errorf(apperr.ENOTFOUND, "The user is not a member of the group")
)

// GroupStore keeps groups and who is a member of which. Deleting a user (UserStore.DeleteUser)
// removes their memberships in the same transaction.
type GroupStore interface {
	// CreateGroup stores g. EINVALID when g breaks Group.Validate; ErrGroupTaken (ECONFLICT)
	// when its name is taken.
	CreateGroup(ctx context.Context, g Group) error
	// GetGroup returns the group with this name. ErrNoGroup (ENOTFOUND) when there is none.
	GetGroup(ctx context.Context, name string) (Group, error)
	// ListGroups returns a page of groups ordered by name, byte by byte (names are lower case,
	// so ListOptions' normalization leaves them as they are): empty, never nil, past the last.
	// EINVALID when opt breaks ListOptions.Validate.
	ListGroups(ctx context.Context, opt ListOptions) ([]Group, error)
	// DeleteGroup removes the group and every membership of it, in one transaction.
	// ErrNoGroup (ENOTFOUND) when there is none.
	DeleteGroup(ctx context.Context, name string) error
	// AddMember makes the user a member of the group, both read in the same transaction.
	// ErrNoGroup (ENOTFOUND) when there is no such group, ENOTFOUND when there is no such user,
	// ErrAlreadyMember (ECONFLICT) when they are one.
	AddMember(ctx context.Context, group, userID string) error
	// RemoveMember ends the user's membership of the group. ErrNoGroup (ENOTFOUND) when there
	// is no such group, ErrNotMember (ENOTFOUND) when the user is not a member.
	RemoveMember(ctx context.Context, group, userID string) error
	// UserGroups returns the names of the groups the user is a member of, in byte order:
	// empty, never nil, for a user without any or a user who does not exist.
	UserGroups(ctx context.Context, userID string) ([]string, error)
}
