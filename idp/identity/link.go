package identity

import (
	"context"
	"slices"
	"time"

	"jwtidp/shared/apperr"
)

// LinkKind is what a mailed link does.
type LinkKind string

const (
	LinkVerifyEmail   LinkKind = "verify-email"   // verifies one exact address of one user
	LinkResetPassword LinkKind = "reset-password" // lets one user choose a new password
	LinkInvitation    LinkKind = "invitation"     // lets its holder sign up, into groups
)

// Link is a link the IdP mails (or prints for an admin) as the IdP keeps it: only the SHA-256
// of the random token the link carries, so the store's content opens nothing. A link is
// single-use — using it records UsedAt, and it stays stored, used, until it expires — and
// every use decides from the link as stored in the same transaction.
type Link struct {
	ID        string   // random; what an admin lists and deletes an invitation by
	Hash      string   // SHA-256 of the link's token
	Kind      LinkKind //
	UserID    string   // the user it acts for; "" for an invitation
	Email     string   // verify-email: the exact address it verifies; invitation: where it went
	Groups    []string // invitation: the groups its user joins
	Epoch     int64    // reset-password: the user's credential epoch when it was made
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until used
}

// The links' lifetimes (API.md): a verification a day, a reset half an hour.
const (
	VerifyEmailTTL   = 24 * time.Hour
	ResetPasswordTTL = 30 * time.Minute
	InvitationTTL    = 7 * 24 * time.Hour
)

// Validate checks a link's invariants before it is stored. EINVALID.
func (l Link) Validate() error {
	if l.ID == "" || l.Hash == "" || l.ExpiresAt.IsZero() || l.CreatedAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "Link: id, hash, creation and expiry are required")
	}
	switch l.Kind {
	case LinkVerifyEmail:
		if l.UserID == "" || l.Email == "" {
			return apperr.Errorf(apperr.EINVALID, "Link: a verification names its user and address")
		}
	case LinkResetPassword:
		if l.UserID == "" {
			return apperr.Errorf(apperr.EINVALID, "Link: a password reset names its user")
		}
	case LinkInvitation:
		if l.UserID != "" || l.Email == "" {
			return apperr.Errorf(apperr.EINVALID, "Link: an invitation names its address and no user")
		}
		for _, g := range l.Groups {
			if err := ValidateGroupName(g); err != nil {
				return err
			}
		}
	default:
		return apperr.Errorf(apperr.EINVALID, "Link: unknown kind %q", l.Kind)
	}
	if l.Kind != LinkInvitation && len(l.Groups) > 0 {
		return apperr.Errorf(apperr.EINVALID, "Link: only an invitation names groups")
	}
	return nil
}

// Live reports whether the link may still be used at now: unused and unexpired.
func (l Link) Live(now time.Time) bool { return l.UsedAt.IsZero() && now.Before(l.ExpiresAt) }

// CheckUpdate refuses next as the update of l when it changes anything but UsedAt, un-uses a
// used link or uses it again: an update only records the one use.
func (l Link) CheckUpdate(next Link) error {
	bound := next
	bound.UsedAt = l.UsedAt
	if !bound.equal(l) || !l.UsedAt.IsZero() && !next.UsedAt.Equal(l.UsedAt) {
		return apperr.Errorf(apperr.EINVALID, "An update may only record a link's one use")
	}
	return next.Validate()
}

func (l Link) equal(o Link) bool {
	return l.ID == o.ID && l.Hash == o.Hash && l.Kind == o.Kind && l.UserID == o.UserID && l.Email == o.Email &&
		slices.Equal(l.Groups, o.Groups) && l.Epoch == o.Epoch && l.CreatedAt.Equal(o.CreatedAt) &&
		l.ExpiresAt.Equal(o.ExpiresAt) && l.UsedAt.Equal(o.UsedAt)
}

// ApplyUpdate runs fn, the updater of UseLink, on l (as stored now), given a copy of its own
// groups, and checks its result with CheckUpdate. Nothing is stored when the error is not nil:
// fn's own error is returned as it is.
func (l Link) ApplyUpdate(fn func(Link) (Link, error)) (Link, error) {
	given := l
	given.Groups = slices.Clone(l.Groups)
	return Apply(l, func(Link) (Link, error) { return fn(given) })
}

// LinkStore keeps mailed links, by id and by the hash of their token.
type LinkStore interface {
	// CreateLink stores l. EINVALID when l breaks Link.Validate; ECONFLICT when its id or its
	// hash is taken.
	CreateLink(ctx context.Context, l Link) error
	// UseLink runs fn on the link whose token hashes to hash and stores its result, in one
	// transaction, and returns what it stored; fn may run more than once. When fn returns an
	// error nothing changes and that error is returned. ENOTFOUND when there is no such link
	// (fn is not called); EINVALID when fn's result breaks Link.CheckUpdate.
	UseLink(ctx context.Context, hash string, fn func(Link) (Link, error)) (Link, error)
	// ListLinks returns the links of kind, used or not, oldest first (by CreatedAt, then ID);
	// empty, never nil, when there is none.
	ListLinks(ctx context.Context, kind LinkKind) ([]Link, error)
	// DeleteLink removes the link with this id. ENOTFOUND when there is none.
	DeleteLink(ctx context.Context, id string) error
	// DeleteDeadLinks removes the links that expired before before and returns how many.
	DeleteDeadLinks(ctx context.Context, before time.Time) (int, error)
}
