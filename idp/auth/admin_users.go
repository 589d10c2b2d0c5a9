package auth

import (
	"context"
	"errors"

	"jwtidp/idp/identity"
)

// AdminListUsers is a page of users for an admin, in the order of their normalized usernames:
// those starting with prefix, after after; next is the after of the following page, "" at the
// end. EINVALID for a limit outside 1..identity.MaxListLimit.
func (s *Service) AdminListUsers(ctx context.Context, prefix, after string, limit int) ([]identity.User, string, error) {
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

// AdminUser is the user whose sub or, failing that, username is user. ENOTFOUND for neither.
func (s *Service) AdminUser(ctx context.Context, user string) (identity.User, error) {
	return s.findUser(ctx, user)
}

// DisableUser is the admin's disable (user: a sub or a username): in one transaction the user
// is marked disabled and every session and refresh family of theirs ends, so refresh fails at
// once and forward-auth within the session cache's bound; from then on their sign-in gets the
// answer of a wrong password. Disabling a disabled user changes nothing. ENOTFOUND for no user.
func (s *Service) DisableUser(ctx context.Context, user string) (identity.User, error) {
	return s.adminChange(ctx, user, true, identity.AuditUserDisabled, "sessions and refresh tokens ended",
		func(u identity.User) (identity.User, error) { return u.Disable() })
}

// EnableUser lets a disabled user sign in again. Enabling an enabled user changes nothing.
func (s *Service) EnableUser(ctx context.Context, user string) (identity.User, error) {
	return s.adminChange(ctx, user, false, identity.AuditUserEnabled, "",
		func(u identity.User) (identity.User, error) { return u.Enable() })
}

// LogoutUser ends every session and refresh family of the user, in one transaction.
func (s *Service) LogoutUser(ctx context.Context, user string) (identity.User, error) {
	return s.adminChange(ctx, user, true, identity.AuditUserLogout, "sessions and refresh tokens ended",
		func(u identity.User) (identity.User, error) { return u, nil })
}

// SetAdmin grants (true) or revokes (false) the user's admin flag: whether they may be granted
// the idp:admin scope. A revocation takes effect at the user's next admin request, since every
// one checks the flag as stored.
func (s *Service) SetAdmin(ctx context.Context, user string, admin bool) (identity.User, error) {
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
func (s *Service) adminChange(ctx context.Context, user string, endSessions bool, typ, detail string, fn func(identity.User) (identity.User, error)) (identity.User, error) {
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
// transaction; their username is free again, their id never reused. ENOTFOUND for no user.
func (s *Service) DeleteUser(ctx context.Context, user string) (identity.User, error) {
	u, err := s.findUser(ctx, user)
	if err != nil {
		return identity.User{}, err
	}
	err = s.audited(ctx, func(ctx context.Context) error { return s.Users.DeleteUser(ctx, u.ID) },
		s.event(ctx, identity.AuditUserDeleted, u.ID, Success, "username "+u.Username+" is free again"))
	if err != nil {
		return identity.User{}, err
	}
	return u, nil
}
