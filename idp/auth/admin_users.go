package auth

import (
	"context"

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
