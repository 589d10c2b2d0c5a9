package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"jwtidp/idp/identity"
	"jwtidp/idp/seal"
	"jwtidp/shared/apperr"
)

// TOTP (RFC 6238) as authenticator apps read it: HMAC-SHA1, 6 digits, 30-second steps. A code
// of the step before or after the current one is accepted too (clock skew of up to 30 s either
// way), and every code once: a step not after the last accepted one is refused.
const (
	totpPeriod = 30
	totpSkew   = 1
	// RecoveryCodeCount codes are given when TOTP is confirmed; each works once.
	RecoveryCodeCount = 10
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// ErrOTPRequired is the answer to a right password without a valid second factor: no code, a
// wrong one, a replayed one. It is given only once the password was right, so it tells nothing
// a wrong password would not.
var ErrOTPRequired = apperr.Errorf(apperr.EUNAUTHORIZED, "One-time code required")

// ErrInvalidOTP refuses a code at enrolment, confirmation or disabling.
var ErrInvalidOTP = apperr.Errorf(apperr.EUNAUTHORIZED, "Invalid one-time code")

// AMR values (RFC 8176) of a sign-in with a password and a one-time code.
var amrPasswordOTP = []string{"pwd", "otp", "mfa"}

func totpAD(userID string) []byte { return []byte("totp:" + userID) }

// seal and open a TOTP seed, bound to its user (so a sealed seed moved to another user's row
// does not open), with the configured secrets key or none.
func (s *core) seal(seed []byte, userID string) ([]byte, error) {
	return seal.Or(s.Sealer).Seal(seed, totpAD(userID))
}

func (s *core) open(sealed []byte, userID string) ([]byte, error) {
	return seal.Or(s.Sealer).Open(sealed, totpAD(userID))
}

// Enrollment is a new TOTP secret, for the user's authenticator app.
type Enrollment struct {
	Secret string // base32, as apps take it typed in
	URI    string // otpauth://totp/…, as apps take it from a QR code
}

// EnrollTOTP makes a new TOTP secret for the user, stored (sealed) but not required until a
// first code confirms it; a second enrolment before that replaces the first. proof must show
// the owner asks (ErrWrongPassword or ErrNotFresh otherwise): a stale token must not be able to
// turn a factor on and lock the owner out. ErrTOTPEnabled (ECONFLICT) when TOTP is already on.
func (s *Account) EnrollTOTP(ctx context.Context, userID string, proof Reauth) (Enrollment, error) {
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return Enrollment{}, err
	}
	// The proof first: without it, not even whether TOTP is on is told.
	if err := s.reauthenticate(ctx, u, proof); err != nil {
		return Enrollment{}, err
	}
	if u.Factors.HasTOTP() {
		return Enrollment{}, identity.ErrTOTPEnabled
	}
	label := "jwtidp"
	if iu, err := url.Parse(s.Issuer.Issuer); err == nil && iu.Host != "" {
		label = iu.Host
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: label, AccountName: u.Username, Period: totpPeriod, Rand: s.Random})
	if err != nil {
		return Enrollment{}, fmt.Errorf("totp: %w", err)
	}
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key.Secret())
	if err != nil {
		return Enrollment{}, err
	}
	sealed, err := s.seal(seed, u.ID)
	if err != nil {
		return Enrollment{}, err
	}
	now := s.Now().UTC()
	if _, err := s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) { return cur.EnrollTOTP(sealed, now) }); err != nil {
		return Enrollment{}, err
	}
	s.Logger.InfoContext(ctx, "totp enrolment started", "sub", u.ID)
	return Enrollment{Secret: key.Secret(), URI: key.URL()}, nil
}

// totpStep finds the time step whose code is code, within the skew of now; false when none.
func totpStep(seed []byte, code string, now time.Time) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	cur := now.Unix() / totpPeriod
	found, step := false, int64(0)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix((cur+d)*totpPeriod, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !found {
			found, step = true, cur+d
		}
	}
	return step, found
}

// ConfirmTOTP checks a first code from the enrolled secret and turns TOTP on, returning the
// recovery codes (shown this once; stored as hashes). In the same transaction every other
// session and refresh family of the user ends, as at a password change: whatever signed in
// with the password alone before must prove the new factor now. keep is the session or family
// the user confirmed from ("" for none), which stays. Wrong codes count toward the account's
// one-time-code throttle.
func (s *Account) ConfirmTOTP(ctx context.Context, userID, code, keep string) ([]string, error) {
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	t := u.Factors.TOTP
	switch {
	case t != nil && t.Confirmed:
		return nil, identity.ErrTOTPEnabled
	case t == nil:
		return nil, identity.ErrTOTPNotEnrolled
	}
	at := otpAttempt(u.Username, remoteKey(ctx), "")
	if err := s.Throttle.Allow(ctx, at); err != nil {
		return nil, err
	}
	seed, err := s.open(t.Secret, u.ID)
	if err != nil {
		return nil, fmt.Errorf("open totp secret: %w", err)
	}
	step, ok := totpStep(seed, code, s.Now())
	if !ok {
		if err := s.Throttle.Failure(ctx, at); err != nil {
			return nil, err
		}
		s.record(ctx, s.event(ctx, identity.AuditSecondFactorFailure, u.ID, Failure, "wrong code confirming TOTP"))
		return nil, ErrInvalidOTP
	}
	codes, hashes, err := s.newRecoveryCodes()
	if err != nil {
		return nil, err
	}
	mctx := s.withNotice(ctx, u, NoticeSecondFactor)
	if err := s.audited(mctx, func(ctx context.Context) error {
		_, err := s.Users.ChangeCredentials(ctx, u.ID, func(cur identity.User) (identity.User, error) {
			return cur.ConfirmTOTP(t.Secret, step, hashes)
		}, keep)
		return err
	}, s.event(ctx, identity.AuditSecondFactorAdded, u.ID, Success, "totp; other sessions and refresh tokens ended")); err != nil {
		return nil, err
	}
	if err := s.Throttle.Success(ctx, at); err != nil {
		return nil, err
	}
	s.Logger.InfoContext(ctx, "totp enabled; other sessions ended", "sub", u.ID)
	s.mailQueued(mctx)
	return codes, nil
}

// newRecoveryCodes makes RecoveryCodeCount codes of 50 random bits each ("abcde-fghij",
// lower-case base32) and their hashes.
func (s *core) newRecoveryCodes() ([]string, []string, error) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	var codes, hashes []string
	for range RecoveryCodeCount {
		b := make([]byte, 7)
		if _, err := s.Random.Read(b); err != nil {
			return nil, nil, err
		}
		c := strings.ToLower(enc.EncodeToString(b))[:10]
		c = c[:5] + "-" + c[5:]
		codes, hashes = append(codes, c), append(hashes, hashRecoveryCode(c))
	}
	return codes, hashes, nil
}

// hashRecoveryCode is the form a recovery code is stored in; the dash and letter case do not
// matter when it is typed. 50 random bits and single use make a plain SHA-256 enough, with the
// throttle in front.
func hashRecoveryCode(c string) string {
	c = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(c), "-", ""))
	sum := sha256.Sum256([]byte("recovery:" + c))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// otpAttempt is a second-factor attempt's throttling key: the account's own counter for codes,
// apart from its password counter, with the same device-cookie exemption.
func otpAttempt(username, remoteKey, device string) Attempt {
	return Attempt{Account: "otp\x00" + username, Remote: remoteKey, Device: device}
}

// SecondFactor is the second step of a browser sign-in whose password step left the pre-session
// pre of user u (as Sessions.Pending returned them): it checks code — a current TOTP code or an
// unused recovery code — and spends it (in the transaction that records it: a step once, a
// recovery code once). device is the browser's device cookie for the account, if any: one still
// good for u keeps its holder out of the account-wide count. Failures count toward the
// account's one-time-code throttle: per client (ETHROTTLED when locked) and, without the
// account's device cookie, per account from every address (ThrottlePolicy.CodeFailures); a
// locked one is refused before any check. ErrOTPRequired for every other refusal — with a
// Retry-After while the account's code step is locked, the right code included.
//
// A refusal is recorded as a second-factor failure or a lockout; success is the Authentication
// for Complete (Target.Completes: pre's id), which records the sign-in.
func (s *SignIn) SecondFactor(ctx context.Context, pre identity.Session, u identity.User, code string, device Device) (Authentication, error) {
	if !pre.Pending || pre.UserID != u.ID {
		return Authentication{}, ErrNoSession // not this user's pre-session: nothing to complete
	}
	a, err := s.codeStep(ctx, u, code, device, pre.AuthTime)
	a.AMR, a.IDP = onTopOf(pre.AMR, a.AMR), pre.IDP
	return a, err
}

// onTopOf is the methods of a second factor (amr, which begins with "pwd") given on top of a
// first sign-in by first: an upstream sign-in's "fed" stands where the password would.
func onTopOf(first, amr []string) []string {
	if len(amr) == 0 || !slices.Contains(first, AMRFederated) || slices.Contains(first, "pwd") {
		return amr
	}
	out := slices.Clone(amr)
	if i := slices.Index(out, "pwd"); i >= 0 {
		out[i] = AMRFederated
	}
	return out
}

// codeStep checks and spends a one-time code of u as a sign-in's second step (SecondFactor's, or
// a step-up's), recording a refusal; success is the Authentication of a sign-in at authTime.
func (s *SignIn) codeStep(ctx context.Context, u identity.User, code string, device Device, authTime time.Time) (Authentication, error) {
	if !device.For(u) {
		device = Device{}
	}
	amr, err := s.secondFactor(ctx, u, code, Attempt{Remote: remoteKey(ctx), Device: device.ID})
	if err != nil {
		s.loginRefused(ctx, u.ID, strings.TrimSpace(code) != "", "password and one-time code", err)
		return Authentication{}, err
	}
	return Authentication{User: u, AMR: amr, AuthTime: authTime}, nil
}

// secondFactor is SecondFactor without the records: a step of a sign-in or of another check.
func (s *core) secondFactor(ctx context.Context, u identity.User, code string, at Attempt) ([]string, error) {
	oa := otpAttempt(identity.NormalizeUsername(u.Username), at.Remote, at.Device)
	if err := s.Throttle.Allow(ctx, oa); err != nil {
		return nil, err
	}
	// The account-wide count: a browser with the account's device cookie is the owner's and
	// keeps to its own pair, so guesses from elsewhere never lock the owner out. A missing
	// code is the prompt for one, not a guess: it is refused while locked but not counted.
	code = strings.TrimSpace(code)
	account := at.Device == ""
	if account {
		if err := s.beginCode(ctx, u.ID, code != ""); err != nil {
			return nil, err
		}
	}
	err := s.spendSecondFactor(ctx, u, code)
	if account && code != "" && (err == nil || errors.Is(err, ErrOTPRequired)) {
		if ferr := s.endCode(ctx, u.ID, err == nil); ferr != nil {
			return nil, ferr
		}
	}
	if errors.Is(err, ErrOTPRequired) {
		if ferr := s.Throttle.Failure(ctx, oa); ferr != nil {
			return nil, ferr
		}
		s.Logger.InfoContext(ctx, "second factor refused", "sub", u.ID)
		if s.OnSecondFactorFailure != nil && code != "" {
			s.OnSecondFactorFailure() // a code given and wrong; none given is the prompt for one
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if err := s.Throttle.Success(ctx, oa); err != nil {
		return nil, err
	}
	return amrPasswordOTP, nil
}

func (s *core) spendSecondFactor(ctx context.Context, u identity.User, code string) error {
	t := u.Factors.TOTP
	if code == "" || t == nil || !t.Confirmed {
		return ErrOTPRequired
	}
	seed, err := s.open(t.Secret, u.ID)
	if err != nil {
		return fmt.Errorf("open totp secret: %w", err)
	}
	var fn func(identity.User) (identity.User, error)
	if step, ok := totpStep(seed, code, s.Now()); ok {
		fn = func(cur identity.User) (identity.User, error) { return cur.UseTOTPStep(step) }
	} else {
		h := hashRecoveryCode(code)
		fn = func(cur identity.User) (identity.User, error) { return cur.UseRecoveryCode(h) }
	}
	_, err = s.Users.UpdateUser(ctx, u.ID, fn)
	switch {
	case errors.Is(err, identity.ErrCodeUsed), errors.Is(err, identity.ErrRecoveryCodeUsed), errors.Is(err, identity.ErrTOTPNotEnabled):
		return ErrOTPRequired
	case apperr.Code(err) == apperr.ENOTFOUND:
		return ErrInvalidCredentials
	}
	return err
}

// DisableTOTP turns TOTP off after checking the password and a code (TOTP or recovery), both
// throttled as at login.
func (s *Account) DisableTOTP(ctx context.Context, userID, pw, code string) error {
	u, err := s.Users.GetUser(ctx, userID)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return ErrInvalidCredentials
	}
	if err != nil {
		return err
	}
	if !u.Factors.HasTOTP() {
		return identity.ErrTOTPNotEnabled
	}
	if err := s.checkPassword(ctx, u, pw, Attempt{Account: u.Username, Remote: remoteKey(ctx)}); err != nil {
		return err
	}
	if _, err := s.secondFactor(ctx, u, code, Attempt{Remote: remoteKey(ctx)}); err != nil {
		s.loginRefused(ctx, u.ID, strings.TrimSpace(code) != "", "", err)
		return err
	}
	mctx := s.withNotice(ctx, u, NoticeSecondFactor)
	if err := s.audited(mctx, func(ctx context.Context) error {
		_, err := s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) { return cur.DisableTOTP() })
		return err
	}, s.event(ctx, identity.AuditSecondFactorRemoved, u.ID, Success, "totp")); err != nil {
		return err
	}
	s.Logger.InfoContext(ctx, "totp disabled", "sub", u.ID)
	s.mailQueued(mctx)
	return nil
}

// ResetSecondFactors is the admin's reset of a user's second factors (user: the user's id):
// TOTP and its recovery codes are removed and, in the same transaction, every
// session and refresh family of the user ends, since the reset is for an account whose factor
// was lost or stolen. A user without one is not an error.
func (s *Admin) ResetSecondFactors(ctx context.Context, user string) (identity.User, error) {
	u, err := s.findUser(ctx, user)
	if err != nil {
		return identity.User{}, err
	}
	var v identity.User
	mctx := s.withNotice(ctx, u, NoticeSecondFactor)
	err = s.audited(mctx, func(ctx context.Context) error {
		v, err = s.Users.ChangeCredentials(ctx, u.ID, func(cur identity.User) (identity.User, error) {
			cur.Factors = identity.SecondFactors{}
			return cur, nil
		})
		return err
	}, s.event(ctx, identity.AuditSecondFactorsReset, u.ID, Success, "second factors removed; sessions and refresh tokens ended"))
	if err != nil {
		return identity.User{}, err
	}
	s.Logger.InfoContext(ctx, "second factors reset by an admin; sessions ended", "sub", v.ID)
	s.mailQueued(mctx)
	return v, nil
}

// ResealTOTP seals again, with the current secrets key, every TOTP seed stored plain or under an
// older key — the TOTP half of rotating --secrets-key-file (the signing keys are the key
// manager's). Each user is updated in its own transaction, from the seed as stored then; it
// returns how many were resealed.
func (s *Admin) ResealTOTP(ctx context.Context) (int, error) {
	sl := seal.Or(s.Sealer)
	n, after := 0, ""
	for {
		page, err := s.Users.ListUsers(ctx, identity.ListOptions{After: after, Limit: identity.MaxListLimit})
		if err != nil {
			return n, err
		}
		for _, u := range page {
			if u.Factors.TOTP == nil || !sl.NeedsReseal(u.Factors.TOTP.Secret) {
				continue
			}
			_, err := s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) {
				t := cur.Factors.TOTP
				if t == nil {
					return cur, identity.ErrUnchanged
				}
				sealed, changed, err := seal.Reseal(sl, t.Secret, totpAD(cur.ID))
				switch {
				case err != nil:
					return cur, err
				case !changed:
					return cur, identity.ErrUnchanged
				}
				next := *t
				next.Secret = sealed
				cur.Factors.TOTP = &next
				return cur, nil
			})
			switch {
			case err == nil:
				n++
			case errors.Is(err, identity.ErrUnchanged), apperr.Code(err) == apperr.ENOTFOUND:
			default:
				return n, fmt.Errorf("reseal the TOTP seed of %s: %w", u.ID, err)
			}
		}
		if len(page) < identity.MaxListLimit {
			return n, nil
		}
		after = page[len(page)-1].Username
	}
}

// TOTPEnabled reports whether the user has TOTP on (a code is required at login).
func (s *Account) TOTPEnabled(ctx context.Context, userID string) (bool, error) {
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return false, err
	}
	return u.Factors.HasTOTP(), nil
}
