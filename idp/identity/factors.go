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
	// Passkeys are the user's WebAuthn credentials: each signs the user in without a password.
	Passkeys []Passkey `json:",omitempty"`
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
	u.Factors.TOTP, u.Factors.RecoveryCodes = nil, nil // passkeys stay
	return u, nil
}

// Passkey is a WebAuthn credential (a passkey) the user registered: signing in with it needs no
// password. Its public key verifies assertions; the sign counter and the challenges of recent
// assertions let each assertion be accepted once.
type Passkey struct {
	ID         []byte // the credential id, as the authenticator gave it
	PublicKey  []byte // COSE_Key
	SignCount  uint32 // the authenticator's counter as of the last accepted assertion
	AAGUID     []byte
	Transports []string `json:",omitempty"`
	// AttestationFormat is the registration's attestation statement format ("none", "packed", …).
	AttestationFormat string `json:",omitempty"`
	// BackupEligible: the authenticator may sync the key to other devices (a synced passkey);
	// it may not change between assertions. BackupState: it is backed up now.
	BackupEligible bool `json:",omitempty"`
	BackupState    bool `json:",omitempty"`
	Name           string
	CreatedAt      time.Time
	LastUsedAt     time.Time `json:",omitzero"`
	// UsedChallenges are the challenges of accepted assertions that could still be presented
	// (their ceremony not yet expired): an assertion is accepted once even from an authenticator
	// whose counter stays at zero.
	UsedChallenges []UsedChallenge `json:",omitempty"`
}

// UsedChallenge is a hash of an accepted assertion's challenge and when its ceremony expires.
type UsedChallenge struct {
	Hash  string
	Until time.Time
}

// MaxPasskeys bounds the passkeys of a user; maxUsedChallenges the remembered challenges of one.
const (
	MaxPasskeys       = 20
	maxUsedChallenges = 64
)

// Errors of the passkey updaters.
var (
	ErrPasskeyExists   = apperr.Errorf(apperr.ECONFLICT, "This passkey is already registered")
	ErrTooManyPasskeys = apperr.Errorf(apperr.ECONFLICT, "Too many passkeys; remove one first")
	ErrPasskeyNotFound = apperr.Errorf(apperr.ENOTFOUND, "No such passkey")
	// ErrPasskeyReplayed: the assertion's counter did not increase (a cloned authenticator or a
	// replay) or its challenge was already used.
	ErrPasskeyReplayed = apperr.Errorf(apperr.EUNAUTHORIZED, "Passkey assertion refused")
)

// PasskeyIndex is the index of the passkey with credential id, -1 when there is none.
func (f SecondFactors) PasskeyIndex(id []byte) int {
	return slices.IndexFunc(f.Passkeys, func(p Passkey) bool { return string(p.ID) == string(id) })
}

// AddPasskey is the updater that registers p. ErrPasskeyExists when its id is the user's
// already, ErrTooManyPasskeys past MaxPasskeys.
func (u User) AddPasskey(p Passkey) (User, error) {
	switch {
	case len(p.ID) == 0 || len(p.PublicKey) == 0:
		return u, apperr.Errorf(apperr.EINVALID, "A passkey needs an id and a public key")
	case u.Factors.PasskeyIndex(p.ID) >= 0:
		return u, ErrPasskeyExists
	case len(u.Factors.Passkeys) >= MaxPasskeys:
		return u, ErrTooManyPasskeys
	}
	p.ID, p.PublicKey, p.AAGUID = slices.Clone(p.ID), slices.Clone(p.PublicKey), slices.Clone(p.AAGUID)
	p.Transports, p.UsedChallenges = slices.Clone(p.Transports), nil
	u.Factors.Passkeys = append(slices.Clone(u.Factors.Passkeys), p)
	return u, nil
}

// UsePasskey is the updater of an accepted assertion of passkey id: its counter must be above
// the stored one when either is non-zero (WebAuthn §6.1.1: else the authenticator may be
// cloned), and its challenge (by hash, good until) not used before; both else
// ErrPasskeyReplayed. It records the counter, the challenge and the time of use.
func (u User) UsePasskey(id []byte, count uint32, challengeHash string, until, at time.Time) (User, error) {
	i := u.Factors.PasskeyIndex(id)
	if i < 0 {
		return u, ErrPasskeyNotFound
	}
	p := u.Factors.Passkeys[i]
	if (count != 0 || p.SignCount != 0) && count <= p.SignCount {
		return u, ErrPasskeyReplayed
	}
	used := make([]UsedChallenge, 0, len(p.UsedChallenges)+1)
	for _, c := range p.UsedChallenges {
		if c.Hash == challengeHash {
			return u, ErrPasskeyReplayed
		}
		if c.Until.After(at) {
			used = append(used, c)
		}
	}
	if len(used) >= maxUsedChallenges {
		return u, apperr.Errorf(apperr.ETHROTTLED, "Too many passkey sign-ins; please wait a few minutes")
	}
	p.SignCount, p.LastUsedAt = count, at
	p.UsedChallenges = append(used, UsedChallenge{Hash: challengeHash, Until: until})
	u.Factors.Passkeys = slices.Clone(u.Factors.Passkeys)
	u.Factors.Passkeys[i] = p
	return u, nil
}

// RemovePasskey is the updater that removes passkey id. ErrPasskeyNotFound when there is none.
func (u User) RemovePasskey(id []byte) (User, error) {
	i := u.Factors.PasskeyIndex(id)
	if i < 0 {
		return u, ErrPasskeyNotFound
	}
	u.Factors.Passkeys = slices.Delete(slices.Clone(u.Factors.Passkeys), i, i+1)
	return u, nil
}
