package auth

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"jwtidp/idp/identity"
	"jwtidp/idp/password"
	"jwtidp/shared/apperr"
)

// The refusals of a password reset.
var (
	// ErrMailOff: asking for a reset by mail where no mail server is configured.
	ErrMailOff = apperr.Errorf(apperr.EUNAVAILABLE, "Password reset by mail is not available here: ask an administrator")
	// ErrResetLink: a reset link that is unknown, used, expired, or for an account that
	// changed or is gone since — one answer for all, so the link tells nothing.
	ErrResetLink = apperr.Errorf(apperr.EINVALID, "This password reset link is not valid (any more): ask for a new one")
)

// maxLogin bounds what /password/forgot takes: a username or an email address.
const maxLogin = 320

// resetsPerHour bounds the reset links one account is mailed in an hour.
const resetsPerHour = 3

// resetSlots bounds the resets being looked up and written at once in the background; past
// it, a request is answered as every other and dropped (logged).
const resetSlots = 8

// ForgotPassword asks for a password reset of the account whose username or email is login.
// It answers the same at once whether or not the account exists: the look-up, the link and its
// mail (to a verified address only) happen afterwards, in the background, so the answer's
// timing tells nothing either. Throttled per account (the brute-force throttle, on its own
// counters) beside the route's per-address limit. ErrMailOff without mail; EINVALID for input
// no account can have.
func (s *SignIn) ForgotPassword(ctx context.Context, login string) error {
	login = strings.TrimSpace(login)
	if login == "" || len(login) > maxLogin || strings.ContainsFunc(login, unicode.IsControl) {
		return apperr.Errorf(apperr.EINVALID, "Field \"login\" is required: your username or email address")
	}
	if s.Mail == nil || s.Links == nil {
		return ErrMailOff
	}
	select {
	case s.resets <- struct{}{}:
	default:
		s.Logger.WarnContext(ctx, "password reset dropped: too many at once")
		return nil
	}
	go func() {
		defer func() { <-s.resets }()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.forgot(ctx, login); err != nil {
			s.Logger.ErrorContext(ctx, "password reset not sent", "err", err)
		}
	}()
	return nil
}

func (s *SignIn) forgot(ctx context.Context, login string) error {
	var u identity.User
	var err error
	if strings.Contains(login, "@") {
		u, err = s.Users.GetUserByEmail(ctx, login)
	} else {
		u, err = s.Users.GetUserByName(ctx, login)
	}
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		s.Logger.InfoContext(ctx, "password reset asked for no account")
		return nil
	case err != nil:
		return err
	case u.Disabled || u.Email == "" || !u.EmailVerified:
		s.Logger.InfoContext(ctx, "password reset asked for an account it cannot go to", "sub", u.ID)
		return nil
	}
	// At most resetsPerHour links per account in a clock hour, from anywhere, so its owner's
	// mailbox cannot be flooded. The store decides: the links of an hour have the ids of its
	// slots, and a taken id is a conflict, so requests at once on any number of replicas cannot
	// all pass. Not the login throttle's counters, which an address shares with its logins: a
	// reset for an account that exists must move no counter that one for no account leaves alone.
	hour := s.Now().Unix() / 3600
	for n := range resetsPerHour {
		_, err := s.makeResetLink(ctx, u, true, fmt.Sprintf("reset-%s-%d-%d", u.ID, hour, n))
		if apperr.Code(err) != apperr.ECONFLICT {
			return err
		}
	}
	s.Logger.WarnContext(ctx, "password reset refused: too many links this hour", "sub", u.ID)
	return nil
}

// makeResetLink stores a reset link for u with id ("": a random one) and, when mail is true,
// its mail in the same transaction; it returns the link's URL. ECONFLICT when id is taken.
func (s *core) makeResetLink(ctx context.Context, u identity.User, mail bool, id string) (string, error) {
	tok, id, err := s.newLinkToken(id)
	if err != nil {
		return "", err
	}
	now := s.Now().UTC()
	link := strings.TrimSuffix(s.Issuer.Issuer, "/") + "/password/reset?token=" + tok
	// Bound to the address it went to as well as the credential epoch: a change of address,
	// which moves no epoch, ends the links the old mailbox holds.
	l := identity.Link{ID: id, Hash: HashSecret(tok), Kind: identity.LinkResetPassword, UserID: u.ID, Epoch: u.Epoch,
		Email: u.Email, CreatedAt: now, ExpiresAt: now.Add(identity.ResetPasswordTTL)}
	detail := "printed for an admin"
	if mail {
		m, err := s.Mail.ResetPassword(u, link, identity.ResetPasswordTTL)
		if err != nil {
			return "", err
		}
		ctx, detail = identity.WithMail(ctx, m), "mailed"
	}
	if err := s.audited(ctx, func(ctx context.Context) error { return s.Links.CreateLink(ctx, l) },
		s.event(ctx, identity.AuditPasswordResetAsked, u.ID, Success, detail)); err != nil {
		return "", err
	}
	if mail {
		s.Mail.Queued()
	}
	return link, nil
}

// ResetPassword sets the password of the account a reset link names: the link must be live
// and the account unchanged since it was made (the same credential epoch, not disabled); the
// new password passes the signup policy; a TOTP user gives a current code or a recovery code
// too (a reset does not get around the second factor). The link is spent, then the password
// set and, in the same transaction, every session and refresh family of the user ended; the
// owner is told by mail. ErrResetLink for a link that cannot be used, and nothing changes; a
// refused password or code leaves the link live. The Authentication is of the user with the new
// password (and code), for a browser that is to be signed in (Complete).
func (s *SignIn) ResetPassword(ctx context.Context, tok, newPassword, otp string) (Authentication, error) {
	l, hash, err := s.peekLink(ctx, tok, identity.LinkResetPassword, ErrResetLink)
	if err != nil {
		return Authentication{}, err
	}
	u, err := s.Users.GetUser(ctx, l.UserID)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return Authentication{}, ErrResetLink
	case err != nil:
		return Authentication{}, err
	case u.Disabled || u.Epoch != l.Epoch || identity.NormalizeEmail(u.Email) != identity.NormalizeEmail(l.Email):
		return Authentication{}, ErrResetLink
	}
	if err := password.CheckPolicy(u.Username, newPassword); err != nil {
		return Authentication{}, err
	}
	amr := []string{"pwd"}
	if u.Factors.HasTOTP() {
		if amr, err = s.secondFactor(ctx, u, otp, Attempt{Remote: remoteKey(ctx)}); err != nil {
			s.loginRefused(ctx, u.ID, strings.TrimSpace(otp) != "", "one-time code at a password reset", err)
			return Authentication{}, err
		}
	}
	newHash, err := s.Hasher.Hash(ctx, newPassword)
	if err != nil {
		return Authentication{}, err
	}
	if err := s.spendLink(ctx, hash, ErrResetLink); err != nil {
		return Authentication{}, err
	}
	mctx := s.withNotice(ctx, u, NoticePassword)
	var changed identity.User
	err = s.audited(mctx, func(ctx context.Context) error {
		var err error
		changed, err = s.Users.ChangeCredentials(ctx, u.ID, func(cur identity.User) (identity.User, error) {
			if cur.Epoch != l.Epoch || cur.Disabled || identity.NormalizeEmail(cur.Email) != identity.NormalizeEmail(l.Email) {
				return cur, ErrResetLink
			}
			cur.PasswordHash = newHash
			return cur, nil
		})
		return err
	}, s.event(ctx, identity.AuditPasswordReset, u.ID, Success, "through a mailed link; sessions and refresh tokens ended"))
	if err != nil {
		return Authentication{}, err
	}
	s.Logger.InfoContext(ctx, "password reset; sessions ended", "sub", u.ID)
	s.mailQueued(mctx)
	return Authentication{User: changed, AMR: amr, AuthTime: s.Now().UTC()}, nil
}

// ResetPasswordLink is the admin's reset of a user's password (user: the user's id): a link
// mailed to the user's verified address, or, with print, returned instead for the admin to
// hand over (deployments without mail). ErrMailOff to mail without a server; EINVALID to mail
// a user without a verified address.
func (s *Admin) ResetPasswordLink(ctx context.Context, user string, print bool) (string, error) {
	if s.Links == nil {
		return "", ErrMailOff
	}
	u, err := s.findUser(ctx, user)
	if err != nil {
		return "", err
	}
	if u.Disabled {
		return "", apperr.Errorf(apperr.ECONFLICT, "The user is disabled: enable them first, or the link cannot be used")
	}
	if !print {
		switch {
		case s.Mail == nil:
			return "", apperr.Errorf(apperr.EUNAVAILABLE, "Mail is not set up here: print the link instead (--print-link)")
		case u.Email == "" || !u.EmailVerified:
			return "", apperr.Errorf(apperr.EINVALID, "The user has no verified email address: print the link instead (--print-link)")
		}
	}
	link, err := s.makeResetLink(ctx, u, !print, "")
	if err != nil {
		return "", err
	}
	if !print {
		return "", nil
	}
	return link, nil
}
