package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Passkeys (WebAuthn Level 2) through go-webauthn. The relying party is the issuer: its host
// (without the port) is the RP id, its scheme://host[:port] the one accepted origin. Every
// ceremony requires user verification and, for registration, a discoverable credential, so a
// passkey alone signs a user in.
//
// A ceremony's state (its challenge, as the library's SessionData) is returned to the caller,
// which keeps it where the browser cannot change it (httpapi: a cookie MAC'd with the browser
// key, with an expiry) so any process can finish what another began. An assertion is accepted
// once: the transaction that records it refuses a sign counter that did not increase and a
// challenge already used (remembered on the passkey until its ceremony expires), so a replay is
// refused even from an authenticator whose counter stays at zero.

// PasskeyCeremonyTTL bounds a ceremony: its state is refused after this long.
const PasskeyCeremonyTTL = 5 * time.Minute

// ErrPasskeyRefused is every failure of a passkey assertion or registration the browser could
// cause: a bad signature, another origin, a replay, an unknown credential.
var ErrPasskeyRefused = apperr.Errorf(apperr.EUNAUTHORIZED, "Passkey not accepted")

// AMR values (RFC 8176) of a passkey sign-in: a hardware-bound key ("hwk") or, when the
// authenticator says the key may be synced to other devices (backup eligible), a software one
// ("swk"); user verification was required ("user"). A key the user holds and unlocks by PIN or
// biometrics is two factors ("mfa"), so a route that demands a second factor
// (jwtauth.RequireAMR "mfa") takes a passkey sign-in as it takes a password and a code.
func passkeyAMR(p identity.Passkey) []string {
	if p.BackupEligible {
		return []string{"swk", "user", "mfa"}
	}
	return []string{"hwk", "user", "mfa"}
}

// waUser is a user as go-webauthn sees it: the user handle is the user's id.
type waUser struct{ u identity.User }

func (w waUser) WebAuthnID() []byte          { return []byte(w.u.ID) }
func (w waUser) WebAuthnName() string        { return w.u.Username }
func (w waUser) WebAuthnDisplayName() string { return w.u.Username }
func (w waUser) WebAuthnCredentials() []webauthn.Credential {
	cs := make([]webauthn.Credential, 0, len(w.u.Factors.Passkeys))
	for _, p := range w.u.Factors.Passkeys {
		ts := make([]protocol.AuthenticatorTransport, len(p.Transports))
		for i, t := range p.Transports {
			ts[i] = protocol.AuthenticatorTransport(t)
		}
		cs = append(cs, webauthn.Credential{
			ID: p.ID, PublicKey: p.PublicKey, AttestationFormat: p.AttestationFormat, Transport: ts,
			Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: true, BackupEligible: p.BackupEligible, BackupState: p.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
		})
	}
	return cs
}

// relyingParty is the WebAuthn relying party of the issuer.
func (s *core) relyingParty() (*webauthn.WebAuthn, error) {
	iu, err := url.Parse(s.Issuer.Issuer)
	if err != nil || iu.Host == "" {
		return nil, fmt.Errorf("passkeys: issuer %q is not a URL", s.Issuer.Issuer)
	}
	return webauthn.New(&webauthn.Config{
		RPID:          iu.Hostname(),
		RPDisplayName: iu.Hostname(),
		RPOrigins:     []string{iu.Scheme + "://" + iu.Host},
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		},
		AttestationPreference: protocol.PreferNoAttestation,
	})
}

// PasskeyCeremony is a begun ceremony: Options go to the browser's navigator.credentials call,
// State must come back unchanged with its answer, until Expires.
type PasskeyCeremony struct {
	Options json.RawMessage
	State   []byte
	Expires time.Time
}

func (s *core) ceremony(options any, sd *webauthn.SessionData) (PasskeyCeremony, error) {
	sd.Expires = s.Now().Add(PasskeyCeremonyTTL).UTC()
	opts, err := json.Marshal(options)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	state, err := json.Marshal(sd)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	return PasskeyCeremony{Options: opts, State: state, Expires: sd.Expires}, nil
}

// readCeremony decodes a ceremony's state, refusing an expired one.
func (s *core) readCeremony(state []byte) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if err := json.Unmarshal(state, &sd); err != nil || sd.Challenge == "" {
		return sd, ErrPasskeyRefused
	}
	if !s.Now().Before(sd.Expires) {
		return sd, apperr.Errorf(apperr.EUNAUTHORIZED, "The passkey request expired; please try again")
	}
	return sd, nil
}

// BeginPasskeyRegistration starts registering a passkey for the user: a discoverable credential
// with user verification, none of the user's registered ones.
func (s *Account) BeginPasskeyRegistration(ctx context.Context, userID string) (PasskeyCeremony, error) {
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	if len(u.Factors.Passkeys) >= identity.MaxPasskeys {
		return PasskeyCeremony{}, identity.ErrTooManyPasskeys
	}
	rp, err := s.relyingParty()
	if err != nil {
		return PasskeyCeremony{}, err
	}
	wu := waUser{u}
	creation, sd, err := rp.BeginRegistration(wu, webauthn.WithExclusions(webauthn.Credentials(wu.WebAuthnCredentials()).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("passkey registration: %w", err)
	}
	return s.ceremony(creation, sd)
}

// MaxPasskeyNameLen bounds a passkey's name.
const MaxPasskeyNameLen = 64

// FinishPasskeyRegistration checks the browser's answer (body: the PublicKeyCredential as
// JSON) against the ceremony's state and stores the new passkey under name.
func (s *Account) FinishPasskeyRegistration(ctx context.Context, userID string, state, body []byte, name string) (identity.Passkey, error) {
	sd, err := s.readCeremony(state)
	if err != nil {
		return identity.Passkey{}, err
	}
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return identity.Passkey{}, err
	}
	rp, err := s.relyingParty()
	if err != nil {
		return identity.Passkey{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		s.Logger.InfoContext(ctx, "passkey registration refused", "sub", u.ID, "err", webauthnDetail(err))
		return identity.Passkey{}, ErrPasskeyRefused
	}
	cred, err := rp.CreateCredential(waUser{u}, sd, parsed)
	if err != nil {
		s.Logger.InfoContext(ctx, "passkey registration refused", "sub", u.ID, "err", webauthnDetail(err))
		return identity.Passkey{}, ErrPasskeyRefused
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "Passkey"
	}
	if r := []rune(name); len(r) > MaxPasskeyNameLen {
		name = string(r[:MaxPasskeyNameLen])
	}
	now := s.Now().UTC()
	p := identity.Passkey{
		ID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID,
		AttestationFormat: cred.AttestationFormat, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Name: name, CreatedAt: now,
	}
	for _, t := range cred.Transport {
		p.Transports = append(p.Transports, string(t))
	}
	mctx := s.withNotice(ctx, u, NoticeSecondFactor)
	if err := s.audited(mctx, func(ctx context.Context) error {
		_, err := s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) { return cur.AddPasskey(p) })
		return err
	}, s.event(ctx, identity.AuditSecondFactorAdded, u.ID, Success, "passkey "+strconv.Quote(name))); err != nil {
		return identity.Passkey{}, err
	}
	s.Logger.InfoContext(ctx, "passkey registered", "sub", u.ID)
	s.mailQueued(mctx)
	return p, nil
}

// BeginPasskeyLogin starts a sign-in with a discoverable passkey: no user is named; the
// authenticator offers the passkeys it holds for the RP id, and must verify the user.
func (s *SignIn) BeginPasskeyLogin(ctx context.Context) (PasskeyCeremony, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return PasskeyCeremony{}, err
	}
	assertion, sd, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("passkey login: %w", err)
	}
	return s.ceremony(assertion, sd)
}

// FinishPasskeyLogin checks the browser's assertion (body: the PublicKeyCredential as JSON)
// against the ceremony's state: a passkey of the user its user handle names, signed for this
// origin and RP id, the user verified; then spends it (counter and challenge, in the
// transaction that records them). ErrPasskeyRefused for every refusal. The Authentication is
// for Complete, which records the sign-in.
func (s *SignIn) FinishPasskeyLogin(ctx context.Context, state, body []byte) (Authentication, error) {
	a, err := s.finishPasskeyLogin(ctx, state, body)
	s.countLogin(err)
	if err != nil {
		s.loginRefused(ctx, "", false, "passkey", err)
	}
	return a, err
}

func (s *core) finishPasskeyLogin(ctx context.Context, state, body []byte) (Authentication, error) {
	sd, err := s.readCeremony(state)
	if err != nil {
		return Authentication{}, err
	}
	rp, err := s.relyingParty()
	if err != nil {
		return Authentication{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		s.Logger.InfoContext(ctx, "passkey sign-in refused", "err", webauthnDetail(err))
		return Authentication{}, ErrPasskeyRefused
	}
	var storeErr error
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		u, err := s.Users.GetUser(ctx, string(userHandle))
		if err != nil {
			if apperr.Code(err) != apperr.ENOTFOUND {
				storeErr = err
			}
			return nil, err
		}
		return waUser{u}, nil
	}
	wu, cred, err := rp.ValidatePasskeyLogin(handler, sd, parsed)
	if storeErr != nil {
		return Authentication{}, storeErr
	}
	if err != nil {
		s.Logger.InfoContext(ctx, "passkey sign-in refused", "err", webauthnDetail(err))
		return Authentication{}, ErrPasskeyRefused
	}
	u := wu.(waUser).u
	sum := sha256.Sum256([]byte("passkey-challenge:" + sd.Challenge))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	now := s.Now().UTC()
	// The assertion is spent in a transaction that refuses a disabled user's passkey; the
	// sign-in is recorded by Complete, once its session exists.
	v, err := s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) {
		if cur.Disabled {
			return cur, errUserDisabled
		}
		return cur.UsePasskey(cred.ID, parsed.Response.AuthenticatorData.Counter, challenge, sd.Expires, now)
	})
	switch {
	case errors.Is(err, errUserDisabled):
		s.Logger.InfoContext(ctx, "passkey sign-in refused: user disabled", "sub", u.ID)
		return Authentication{}, ErrPasskeyRefused
	case errors.Is(err, identity.ErrPasskeyReplayed), errors.Is(err, identity.ErrPasskeyNotFound), apperr.Code(err) == apperr.ENOTFOUND:
		s.Logger.WarnContext(ctx, "passkey sign-in refused: counter or challenge reused (replay or cloned authenticator)", "sub", u.ID, "err", err)
		return Authentication{}, ErrPasskeyRefused
	case err != nil:
		return Authentication{}, err
	}
	p := v.Factors.Passkeys[v.Factors.PasskeyIndex(cred.ID)]
	return Authentication{User: v, AMR: passkeyAMR(p), AuthTime: now}, nil
}

// errUserDisabled refuses a disabled user's sign-in inside the transaction; callers answer
// with the refusal every other failure gets.
var errUserDisabled = errors.New("user disabled")

// webauthnDetail is what the log says of a library error: its details, for the operator.
func webauthnDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return strings.TrimSpace(pe.Type + ": " + pe.Details + " " + pe.DevInfo)
	}
	return err.Error()
}

// Passkeys lists the user's passkeys.
func (s *Account) Passkeys(ctx context.Context, userID string) ([]identity.Passkey, error) {
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	return u.Factors.Passkeys, nil
}

// RemovePasskey removes one of the user's passkeys. ENOTFOUND when the user has none with id.
func (s *Account) RemovePasskey(ctx context.Context, userID string, id []byte) error {
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	mctx := s.withNotice(ctx, u, NoticeSecondFactor)
	if err := s.audited(mctx, func(ctx context.Context) error {
		_, err := s.Users.UpdateUser(ctx, userID, func(cur identity.User) (identity.User, error) { return cur.RemovePasskey(id) })
		return err
	}, s.event(ctx, identity.AuditSecondFactorRemoved, userID, Success, "passkey")); err != nil {
		return err
	}
	s.Logger.InfoContext(ctx, "passkey removed", "sub", userID)
	s.mailQueued(mctx)
	return nil
}
