package auth

import (
	"context"
	"errors"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Reauth is how a signed-in user proves again that they are the account's owner before a change
// that could take the account over — a second factor, the email others key the user by — and
// not someone holding an old token or a session left open: the current password (checked and
// throttled as a login), or else a browser sign-in no older than FreshSignIn.
type Reauth struct {
	Password string
	AuthTime time.Time // the browser session's sign-in; weighed only when Password is ""
}

// FreshSignIn is how recent a browser's sign-in must be to stand in for the password: a session
// stolen or left open earlier cannot add a factor that would outlive a password change.
const FreshSignIn = 10 * time.Minute

var (
	// ErrWrongPassword refuses a change whose current password is wrong. It is 403, not 401:
	// the caller's token is good, the proof is not.
	ErrWrongPassword = apperr.Errorf(apperr.EFORBIDDEN, "Current password is not right")
	// ErrNotFresh refuses a change from a browser that signed in too long ago without the password.
	ErrNotFresh = apperr.Errorf(apperr.EFORBIDDEN, "Sign in again to change your second factors or email")
)

// Fresh reports whether a sign-in at authTime may still stand in for the password.
func (s *core) Fresh(authTime time.Time) bool {
	return !authTime.IsZero() && s.Now().Sub(authTime) <= FreshSignIn
}

// reauthenticate checks r for u: nil, ErrWrongPassword (counted by the throttle as a failed
// login), ErrNotFresh, or the throttle's refusal.
func (s *core) reauthenticate(ctx context.Context, u identity.User, r Reauth) error {
	if r.Password == "" {
		if s.Fresh(r.AuthTime) {
			return nil
		}
		return ErrNotFresh
	}
	err := s.checkPassword(ctx, u, r.Password, Attempt{Account: u.Username, Remote: remoteKey(ctx)})
	if errors.Is(err, ErrInvalidCredentials) {
		return ErrWrongPassword
	}
	return err
}
