package auth

import (
	"context"
	"errors"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// AdminListUsers is a page of users for an admin, in the order of their normalized usernames:
// those starting with prefix, after after; next is the after of the following page, "" at the
// end. EINVALID for a limit outside 1..identity.MaxListLimit.
func (s *Admin) AdminListUsers(ctx context.Context, prefix, after string, limit int) ([]identity.User, string, error) {
	opt := identity.ListOptions{Prefix: prefix, After: after, Limit: limit}
	if err := opt.Validate(); err != nil {
		return nil, "", err
	}
	page, err := s.Users.ListUsers(ctx, opt)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(page) == limit {
		next = identity.NormalizeUsername(page[len(page)-1].Username)
	}
	return page, next, nil
}

// AdminUser is the user whose id (sub) is user. ENOTFOUND for none.
func (s *Admin) AdminUser(ctx context.Context, user string) (identity.User, error) {
	return s.findUser(ctx, user)
}

// AdminUserByName is the user with this username in any letter case, as a list of none or one
// (GET /admin/users?username=). A name no account can have finds none.
func (s *Admin) AdminUserByName(ctx context.Context, username string) ([]identity.User, error) {
	if identity.ValidateUsername(username) != nil {
		return []identity.User{}, nil
	}
	u, err := s.Users.GetUserByName(ctx, username)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return []identity.User{}, nil
	case err != nil:
		return nil, err
	}
	return []identity.User{u}, nil
}

// DisableUser is the admin's disable (user: the user's id): in one transaction the user
// is marked disabled and every session and refresh family of theirs ends, so refresh fails at
// once and forward-auth within the session cache's bound; from then on their sign-in gets the
// answer of a wrong password. Disabling a disabled user changes nothing. ENOTFOUND for no user.
func (s *Admin) DisableUser(ctx context.Context, user string) (identity.User, error) {
	return s.adminChange(ctx, user, true, identity.AuditUserDisabled, "sessions and refresh tokens ended",
		func(u identity.User) (identity.User, error) { return u.Disable() })
}

// EnableUser lets a disabled user sign in again. Enabling an enabled user changes nothing.
func (s *Admin) EnableUser(ctx context.Context, user string) (identity.User, error) {
	return s.adminChange(ctx, user, false, identity.AuditUserEnabled, "",
		func(u identity.User) (identity.User, error) { return u.Enable() })
}

// LogoutUser ends every session and refresh family of the user, in one transaction.
func (s *Admin) LogoutUser(ctx context.Context, user string) (identity.User, error) {
	return s.adminChange(ctx, user, true, identity.AuditUserLogout, "sessions and refresh tokens ended",
		func(u identity.User) (identity.User, error) { return u, nil })
}

// SetAdmin grants (true) or revokes (false) the user's admin flag: whether they may be granted
// the idp:admin scope. A revocation takes effect at the user's next admin request, since every
// one checks the flag as stored.
func (s *Admin) SetAdmin(ctx context.Context, user string, admin bool) (identity.User, error) {
	typ, detail := identity.AuditAdminGranted, "may be granted the idp:admin scope"
	if !admin {
		typ, detail = identity.AuditAdminRevoked, "may no longer use the idp:admin scope"
	}
	return s.adminChange(ctx, user, false, typ, detail,
		func(u identity.User) (identity.User, error) { return u.SetAdmin(admin) })
}

// adminChange runs fn on the user user names, through ChangeCredentials when credentials
// end (every session and family, in the same transaction), with its audit event. A change to
// nothing (identity.ErrUnchanged) is no error and records nothing.
func (s *core) adminChange(ctx context.Context, user string, endSessions bool, typ, detail string, fn func(identity.User) (identity.User, error)) (identity.User, error) {
	u, err := s.findUser(ctx, user)
	if err != nil {
		return identity.User{}, err
	}
	update := s.Users.UpdateUser
	if endSessions {
		update = func(ctx context.Context, id string, fn func(identity.User) (identity.User, error)) (identity.User, error) {
			return s.Users.ChangeCredentials(ctx, id, fn)
		}
	}
	var v identity.User
	err = s.audited(ctx, func(ctx context.Context) error {
		v, err = update(ctx, u.ID, fn)
		return err
	}, s.event(ctx, typ, u.ID, Success, detail))
	switch {
	case errors.Is(err, identity.ErrUnchanged):
		return s.Users.GetUser(ctx, u.ID)
	case err != nil:
		return identity.User{}, err
	}
	return v, nil
}

// DeleteUser removes the user with their sessions, refresh families, consents and codes, in one
// transaction; their id is never reused, and their username and email stay reserved until
// ReleaseUsername. ENOTFOUND for no user.
func (s *Admin) DeleteUser(ctx context.Context, user string) (identity.User, error) {
	u, err := s.findUser(ctx, user)
	if err != nil {
		return identity.User{}, err
	}
	err = s.audited(ctx, func(ctx context.Context) error { return s.Users.DeleteUser(ctx, u.ID) },
		s.event(ctx, identity.AuditUserDeleted, u.ID, Success, "username "+u.Username+" reserved until released"))
	if err != nil {
		return identity.User{}, err
	}
	return u, nil
}

// ReleaseUsername is the admin's release of a deleted user's username (any letter case) and the
// email reserved with it, so that someone new may sign up with them; it is audited. ENOTFOUND
// when no deleted user's name is reserved under it.
func (s *Admin) ReleaseUsername(ctx context.Context, username string) (identity.ReservedName, error) {
	var r identity.ReservedName
	if identity.ValidateUsername(username) != nil {
		// No account, so no reservation, can have that name; and it stays out of the trail.
		return r, apperr.Errorf(apperr.ENOTFOUND, "No deleted user's username is reserved under that name")
	}
	err := s.audited(ctx, func(ctx context.Context) error {
		var err error
		r, err = s.Users.ReleaseUsername(ctx, username)
		return err
	}, s.event(ctx, identity.AuditUsernameReleased, "", Success, "username "+identity.NormalizeUsername(username)+" and its email free again"))
	if err != nil {
		return identity.ReservedName{}, err
	}
	s.Logger.InfoContext(ctx, "reserved username released", "deleted_sub", r.UserID)
	return r, nil
}
