package auth

import (
	"context"
	"errors"
	"strings"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// ErrVerifyLink: a verification link that is unknown, used, expired, or whose address is no
// longer the account's — one answer for all.
var ErrVerifyLink = apperr.Errorf(apperr.EINVALID, "This confirmation link is not valid (any more): change your address again for a new one")

// sendVerification stores a link confirming address, u's new email, and mails it there in the
// same transaction; nothing when mail is off. A failure is logged: the address change it
// follows stands (an admin can still verify the address).
func (s *core) sendVerification(ctx context.Context, u identity.User, address string) {
	if s.Mail == nil || s.Links == nil || address == "" {
		return
	}
	err := func() error {
		tok, id, err := s.newLinkToken("")
		if err != nil {
			return err
		}
		now := s.Now().UTC()
		link := strings.TrimSuffix(s.Issuer.Issuer, "/") + "/email/verify?token=" + tok
		m, err := s.Mail.VerifyEmail(u, address, link, identity.VerifyEmailTTL)
		if err != nil {
			return err
		}
		l := identity.Link{ID: id, Hash: HashSecret(tok), Kind: identity.LinkVerifyEmail, UserID: u.ID, Email: address,
			CreatedAt: now, ExpiresAt: now.Add(identity.VerifyEmailTTL)}
		return s.Links.CreateLink(identity.WithMail(ctx, m), l)
	}()
	if err != nil {
		s.Logger.ErrorContext(ctx, "mail: confirmation link not sent", "err", err, "sub", u.ID)
		return
	}
	s.Mail.Queued()
}

// VerifyEmailLink confirms the address a mailed link names: the link must be live and the
// address still the account's (any letter case), which is then verified — that exact address,
// so a link for an old address verifies nothing after a change. The link is spent.
// ErrVerifyLink otherwise, and nothing changes.
func (s *Account) VerifyEmailLink(ctx context.Context, tok string) (identity.User, error) {
	l, hash, err := s.peekLink(ctx, tok, identity.LinkVerifyEmail, ErrVerifyLink)
	if err != nil {
		return identity.User{}, err
	}
	u, err := s.Users.GetUser(ctx, l.UserID)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return identity.User{}, ErrVerifyLink
	case err != nil:
		return identity.User{}, err
	case identity.NormalizeEmail(u.Email) != identity.NormalizeEmail(l.Email):
		return identity.User{}, ErrVerifyLink
	}
	if err := s.spendLink(ctx, hash, ErrVerifyLink); err != nil {
		return identity.User{}, err
	}
	var v identity.User
	err = s.audited(ctx, func(ctx context.Context) error {
		var err error
		v, err = s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) { return cur.VerifyEmailAddress(l.Email) })
		return err
	}, s.event(ctx, identity.AuditEmailVerified, u.ID, Success, "through a mailed link"))
	switch {
	case errors.Is(err, identity.ErrUnchanged):
		return s.Users.GetUser(ctx, u.ID)
	case errors.Is(err, identity.ErrEmailNotCurrent):
		return identity.User{}, ErrVerifyLink
	case err != nil:
		return identity.User{}, err
	}
	s.Logger.InfoContext(ctx, "email verified through a mailed link", "sub", u.ID)
	return v, nil
}
