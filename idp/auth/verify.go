package auth

import (
	"context"
	"errors"
	"strings"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
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
		tok, err := token.RandomString(s.Random, 32)
		if err != nil {
			return err
		}
		id, err := token.RandomString(s.Random, 16)
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
	if s.Links == nil || tok == "" || len(tok) > 100 {
		return identity.User{}, ErrVerifyLink
	}
	hash := HashSecret(tok)
	var l identity.Link
	_, err := s.Links.UseLink(ctx, hash, func(x identity.Link) (identity.Link, error) { l = x; return x, errPeek })
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return identity.User{}, ErrVerifyLink
	case !errors.Is(err, errPeek):
		return identity.User{}, err
	case l.Kind != identity.LinkVerifyEmail || !l.Live(s.Now()):
		return identity.User{}, ErrVerifyLink
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
	now := s.Now().UTC()
	if _, err := s.Links.UseLink(ctx, hash, func(x identity.Link) (identity.Link, error) {
		if !x.Live(now) {
			return identity.Link{}, ErrVerifyLink
		}
		x.UsedAt = now
		return x, nil
	}); err != nil {
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
