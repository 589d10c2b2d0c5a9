package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/password"
	"jwtidp/shared/apperr"
)

// The sign-up modes.
const (
	SignupOpen   = "open"   // anyone (SignupDomains may limit the addresses)
	SignupInvite = "invite" // only with an invitation
	SignupClosed = "closed" // nobody but with an invitation
)

// ErrInvitation: an invitation that is unknown, used or expired — one answer for all.
var ErrInvitation = apperr.Errorf(apperr.EINVALID, "This invitation is not valid (any more): ask for a new one")

// signupAllowed checks the sign-up mode for a sign-up without an invitation. EFORBIDDEN.
func (s *core) signupAllowed(email string) error {
	switch s.SignupMode {
	case SignupInvite:
		return apperr.Errorf(apperr.EFORBIDDEN, "Sign-up here needs an invitation")
	case SignupClosed:
		return apperr.Errorf(apperr.EFORBIDDEN, "Sign-up is closed here")
	}
	if len(s.SignupDomains) == 0 {
		return nil
	}
	at := strings.LastIndexByte(email, '@')
	if email == "" || at < 0 || !slices.Contains(s.SignupDomains, strings.ToLower(email[at+1:])) {
		return apperr.Errorf(apperr.EFORBIDDEN, "Sign-up here needs an email address at %s", strings.Join(s.SignupDomains, ", "))
	}
	return nil
}

// Invitation is an invitation as an admin sees it.
type Invitation struct {
	ID        string
	Email     string
	Groups    []string
	CreatedAt time.Time
	ExpiresAt time.Time
	Used      bool
	Link      string // only when just made and printed
}

func invitationOf(l identity.Link) Invitation {
	return Invitation{ID: l.ID, Email: l.Email, Groups: l.Groups, CreatedAt: l.CreatedAt, ExpiresAt: l.ExpiresAt, Used: !l.UsedAt.IsZero()}
}

// Invite makes an invitation for email into groups (each must exist): mailed there, or, with
// print, its link returned instead. It works once, for identity.InvitationTTL, in every sign-up
// mode; the user it makes has that address, verified, and joins the groups.
func (s *Admin) Invite(ctx context.Context, email string, groups []string, print bool) (Invitation, error) {
	if s.Links == nil {
		return Invitation{}, apperr.Errorf(apperr.EUNAVAILABLE, "Invitations are not available here")
	}
	if email == "" {
		return Invitation{}, apperr.Errorf(apperr.EINVALID, "Field \"email\" is required: where the invitation goes")
	}
	if err := identity.ValidateEmail(email); err != nil {
		return Invitation{}, err
	}
	if !print && s.Mail == nil {
		return Invitation{}, apperr.Errorf(apperr.EUNAVAILABLE, "Mail is not set up here: print the link instead (--print-link)")
	}
	for _, g := range groups {
		if err := identity.ValidateGroupName(g); err != nil {
			return Invitation{}, err
		}
		if s.Groups == nil {
			return Invitation{}, apperr.Errorf(apperr.EINVALID, "No group %q", g)
		}
		if _, err := s.Groups.GetGroup(ctx, g); apperr.Code(err) == apperr.ENOTFOUND {
			return Invitation{}, apperr.Errorf(apperr.EINVALID, "No group %q", g)
		} else if err != nil {
			return Invitation{}, err
		}
	}
	tok, id, err := s.newLinkToken("")
	if err != nil {
		return Invitation{}, err
	}
	now := s.Now().UTC()
	link := strings.TrimSuffix(s.Issuer.Issuer, "/") + "/signup?invitation=" + tok
	l := identity.Link{ID: id, Hash: HashSecret(tok), Kind: identity.LinkInvitation, Email: email, Groups: slices.Clone(groups),
		CreatedAt: now, ExpiresAt: now.Add(identity.InvitationTTL)}
	wctx, detail := ctx, "printed for the admin"
	if !print {
		m, err := s.Mail.Invitation(email, link, identity.InvitationTTL)
		if err != nil {
			return Invitation{}, err
		}
		wctx, detail = identity.WithMail(ctx, m), "mailed"
	}
	if err := s.audited(wctx, func(ctx context.Context) error { return s.Links.CreateLink(ctx, l) },
		s.event(ctx, identity.AuditInvitationCreated, "", Success, detail+"; groups: "+strings.Join(groups, ","))); err != nil {
		return Invitation{}, err
	}
	if !print {
		s.Mail.Queued()
	}
	inv := invitationOf(l)
	if print {
		inv.Link = link
	}
	return inv, nil
}

// Invitations lists the invitations, oldest first, used ones included until they expire.
func (s *Admin) Invitations(ctx context.Context) ([]Invitation, error) {
	if s.Links == nil {
		return []Invitation{}, nil
	}
	ls, err := s.Links.ListLinks(ctx, identity.LinkInvitation)
	if err != nil {
		return nil, err
	}
	out := make([]Invitation, 0, len(ls))
	for _, l := range ls {
		out = append(out, invitationOf(l))
	}
	return out, nil
}

// DeleteInvitation withdraws an invitation. ENOTFOUND for none with that id.
func (s *Admin) DeleteInvitation(ctx context.Context, id string) error {
	missing := apperr.Errorf(apperr.ENOTFOUND, "No such invitation")
	if s.Links == nil {
		return missing
	}
	ls, err := s.Links.ListLinks(ctx, identity.LinkInvitation)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(ls, func(l identity.Link) bool { return l.ID == id }) {
		return missing
	}
	err = s.audited(ctx, func(ctx context.Context) error { return s.Links.DeleteLink(ctx, id) },
		s.event(ctx, identity.AuditInvitationDeleted, "", Success, ""))
	if apperr.Code(err) == apperr.ENOTFOUND {
		return missing
	}
	return err
}

// SignupInvited makes the account an invitation (its token) allows, in any sign-up mode: the
// invitation's address, verified, and its groups. The username and password follow the sign-up
// rules. The invitation is spent when the username is known to be free; ErrInvitation for one
// that cannot be used, ECONFLICT for a taken username (the invitation stays live).
func (s *SignIn) SignupInvited(ctx context.Context, invitation, username, pw string) error {
	if err := identity.ValidateUsername(username); err != nil {
		return err
	}
	if err := password.CheckPolicy(username, pw); err != nil {
		return err
	}
	l, hash, err := s.peekLink(ctx, invitation, identity.LinkInvitation, ErrInvitation)
	if err != nil {
		return err
	}
	if _, err := s.Users.GetUserByName(ctx, username); err == nil {
		return identity.ErrUsernameTaken
	} else if apperr.Code(err) != apperr.ENOTFOUND {
		return err
	}
	u, err := s.newAccount(ctx, username, pw)
	if err != nil {
		return err
	}
	if err := s.spendLink(ctx, hash, ErrInvitation); err != nil {
		return err
	}
	id := u.ID
	u.Email, u.EmailVerified = l.Email, true
	err = s.audited(ctx, func(ctx context.Context) error { return s.Users.CreateUser(ctx, u) },
		s.event(ctx, identity.AuditSignup, id, Success, "by invitation"))
	if errors.Is(err, identity.ErrEmailTaken) {
		u.Email, u.EmailVerified = "", false
		err = s.audited(ctx, func(ctx context.Context) error { return s.Users.CreateUser(ctx, u) },
			s.event(ctx, identity.AuditSignup, id, Success, "by invitation; its address is another user's: not attached"))
	}
	if err != nil {
		return err
	}
	for _, g := range l.Groups {
		if s.Groups == nil {
			break
		}
		if err := s.Groups.AddMember(identity.WithAuditEvents(ctx, s.event(ctx, identity.AuditGroupMemberAdded, id, Success, g+" (invitation)")), g, id); err != nil {
			s.Logger.WarnContext(ctx, "invited user not added to a group", "sub", id, "group", g, "err", err)
		}
	}
	s.Logger.InfoContext(ctx, "user created by invitation", "sub", id)
	return nil
}
