package identity

import (
	"slices"
	"time"

	"jwtidp/shared/apperr"
)

// SecondFactors are what a user proves besides their password: a TOTP authenticator (RFC 6238)
// with its recovery codes. Stored with the user and changed through UpdateUser, so each
// decision (a code's step not used before, a recovery code still unused) is made in the
// transaction that records it.
type SecondFactors struct {
	TOTP *TOTP `json:",omitempty"`
	// RecoveryCodes are the hashes of the single-use codes given when TOTP was confirmed; a used
	// one is removed.
	RecoveryCodes []string `json:",omitempty"`
}

// TOTP is an authenticator's shared secret and its state.
type TOTP struct {
	// Secret is the seed as the store keeps it: sealed (encrypted) when a secrets key is
	// configured, with the sealer's own prefix saying which; the store never sees it in clear then.
	Secret     []byte
	Confirmed  bool      // a first code proved the app has it: from then on it is required
	LastStep   int64     // the time step of the last accepted code: that one and earlier are refused
	EnrolledAt time.Time //
}

// HasTOTP reports whether the user must give a one-time code at login.
func (f SecondFactors) HasTOTP() bool { return f.TOTP != nil && f.TOTP.Confirmed }

// Errors of the second-factor updaters. EINVALID or ECONFLICT, with messages for the user.
var (
	ErrTOTPEnabled     = apperr.Errorf(apperr.ECONFLICT, "TOTP is already enabled; disable it first")
	ErrTOTPNotEnrolled = apperr.Errorf(apperr.EINVALID, "No TOTP enrolment to confirm; start with POST /account/totp")
	ErrTOTPNotEnabled  = apperr.Errorf(apperr.EINVALID, "TOTP is not enabled")
	// ErrCodeUsed: the code's time step is not after the last accepted one (a replay, or an
	// older code than one already used).
	ErrCodeUsed = apperr.Errorf(apperr.EUNAUTHORIZED, "One-time code already used")
	// ErrRecoveryCodeUsed: the recovery code is not (any more) among the user's.
	ErrRecoveryCodeUsed = apperr.Errorf(apperr.EUNAUTHORIZED, "Recovery code already used")
)

// EnrollTOTP is the updater that stores a new, unconfirmed TOTP secret, replacing an earlier
// unconfirmed one. ErrTOTPEnabled when TOTP is already confirmed.
func (u User) EnrollTOTP(sealed []byte, at time.Time) (User, error) {
	if u.Factors.HasTOTP() {
		return u, ErrTOTPEnabled
	}
	u.Factors.TOTP = &TOTP{Secret: slices.Clone(sealed), EnrolledAt: at}
	return u, nil
}

// ConfirmTOTP is the updater that makes the enrolment required, recording the step of the code
// that confirmed it and the hashes of the new recovery codes. secret is the sealed secret the
// caller checked the code against: an enrolment replaced meanwhile is not confirmed.
func (u User) ConfirmTOTP(secret []byte, step int64, recoveryHashes []string) (User, error) {
	t := u.Factors.TOTP
	switch {
	case t != nil && t.Confirmed:
		return u, ErrTOTPEnabled
	case t == nil || !slices.Equal(t.Secret, secret):
		return u, ErrTOTPNotEnrolled
	}
	next := *t
	next.Confirmed, next.LastStep = true, step
	u.Factors.TOTP = &next
	u.Factors.RecoveryCodes = slices.Clone(recoveryHashes)
	return u, nil
}

// UseTOTPStep is the updater of an accepted code: its step must be after the last accepted one
// (RFC 6238 §5.2: a code is accepted once), else ErrCodeUsed.
func (u User) UseTOTPStep(step int64) (User, error) {
	t := u.Factors.TOTP
	if t == nil || !t.Confirmed {
		return u, ErrTOTPNotEnabled
	}
	if step <= t.LastStep {
		return u, ErrCodeUsed
	}
	next := *t
	next.LastStep = step
	u.Factors.TOTP = &next
	return u, nil
}

// UseRecoveryCode is the updater of an accepted recovery code: removes its hash, which must
// still be there, else ErrRecoveryCodeUsed.
func (u User) UseRecoveryCode(hash string) (User, error) {
	i := slices.Index(u.Factors.RecoveryCodes, hash)
	if i < 0 || !u.Factors.HasTOTP() {
		return u, ErrRecoveryCodeUsed
	}
	u.Factors.RecoveryCodes = slices.Delete(slices.Clone(u.Factors.RecoveryCodes), i, i+1)
	return u, nil
}

// DisableTOTP is the updater that removes TOTP and its recovery codes. ErrTOTPNotEnabled when
// there is none (an unconfirmed enrolment is removed too).
func (u User) DisableTOTP() (User, error) {
	if u.Factors.TOTP == nil {
		return u, ErrTOTPNotEnabled
	}
	u.Factors = SecondFactors{}
	return u, nil
}
