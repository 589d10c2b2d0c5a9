package auth

import (
	"context"

	"jwtidp/shared/apperr"
)

// StepUp adds a second factor to a signed-in browser's one-factor session s, for an access
// rule that asks for two (/verify's two_factor): code is a current TOTP code or an unused
// recovery code, checked, spent and throttled as at the login's second step (SecondFactor,
// whose records it makes). The Authentication it returns keeps the session's auth_time and
// absolute end and is for Complete, which makes the session with two factors; the caller ends s.
// ErrInvalidCredentials when the user is gone or their credentials changed since s began.
func (s *SignIn) StepUp(ctx context.Context, sess Resolved, code string, device Device) (Authentication, error) {
	u, err := s.Users.GetUser(ctx, sess.UserID)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return Authentication{}, ErrInvalidCredentials
	case err != nil:
		return Authentication{}, err
	case u.Epoch != sess.Epoch:
		return Authentication{}, ErrInvalidCredentials
	}
	a, err := s.codeStep(ctx, u, code, device, sess.AuthTime)
	a.NotAfter, a.IDP, a.AMR = sess.ExpiresAt, sess.IDP, onTopOf(sess.AMR, a.AMR)
	return a, err
}
