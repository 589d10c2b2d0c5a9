package auth

import (
	"context"
	"slices"
	"strings"

	"jwtidp/idp/identity"
)

// Groups: who is in which, what a membership grants (the scopes limited to groups, Config.Scopes)
// and what it tells (the groups claim, /verify's Remote-Groups).

// ScopeGroups is the OpenID Connect scope of the groups claim, in ID tokens and at /userinfo.
const ScopeGroups = "groups"

// GroupReader is what the grants and the edge need of the group store.
type GroupReader interface {
	UserGroups(ctx context.Context, userID string) ([]string, error)
}

// groupsOf is the user's groups as stored now: none when no group store is wired.
func groupsOf(ctx context.Context, r GroupReader, userID string) ([]string, error) {
	if r == nil || userID == "" {
		return []string{}, nil
	}
	return r.UserGroups(ctx, userID)
}

// Allows reports whether a user in groups may be granted the scope the rule limits: they are
// in one of its groups. A rule naming no group limits nothing.
func (r ScopeRule) Allows(groups []string) bool {
	if len(r.Groups) == 0 {
		return true
	}
	for _, g := range groups {
		if slices.Contains(r.Groups, g) {
			return true
		}
	}
	return false
}

// limitScope is scope without the scopes limited to groups that groups (the user's, read now)
// has none of. Every grant goes through it — Issue (the code exchange, /auth, the browser's
// first-party tokens) and every refresh — so a scope reaches a token only while its holder is a
// member, whoever asked for it.
func (s *core) limitScope(scope string, groups []string) string {
	if s.Scopes == nil {
		return scope
	}
	rules := s.Scopes()
	if len(rules) == 0 {
		return scope
	}
	kept := strings.Fields(scope)
	kept = slices.DeleteFunc(kept, func(sc string) bool {
		r, limited := rules[sc]
		return limited && !r.Allows(groups)
	})
	return strings.Join(kept, " ")
}

// grantGroups reads the groups of g's user for its tokens: none for a client's own token, which
// names no user.
func (s *core) grantGroups(ctx context.Context, g Grant) ([]string, error) {
	if g.User.ID == g.Client.ID {
		return []string{}, nil
	}
	return groupsOf(ctx, s.Groups, g.User.ID)
}

// groupsFor is what of groups a client's access token carries: all of them on the first-party
// client's, none on a relying party's (it asks with scope groups, for its ID token and
// /userinfo).
func groupsFor(groups []string, clientID string) []string {
	if clientID != identity.FirstPartyClientID {
		return nil
	}
	return groups
}

// Grantable is scopes without those limited to groups that groups has none of: what a user in
// groups would be granted of them now. The consent page asks only for these, and remembers
// only these, so a non-member is neither shown a role they will not get nor asked again for it
// at every sign-in; the grants themselves filter again when they issue (limitScope).
func (s *Grants) Grantable(scopes []string, groups []string) []string {
	return strings.Fields(s.limitScope(strings.Join(scopes, " "), groups))
}
