package auth

import (
	"context"
	"slices"
	"strings"

	"jwtidp/idp/identity"
)

// Every sign-in ends in Complete, whatever proved who the user is — a password (Authenticate),
// a password and then a one-time code (SecondFactor), a passkey (FinishPasskeyLogin), and next an
// upstream provider or LDAP: they say who proved what (an Authentication), Complete turns that
// into what the caller asked for (a Target) and is the one place that
//   - checks the second-factor requirement: an account with TOTP is not signed in on a password
//     alone (a browser gets a pre-session for its second step, an API caller ErrOTPRequired);
//   - makes the session, pre-session or tokens — whose store write refuses a sign-in the user's
//     credentials changed under (the credential epoch, checked in that transaction);
//   - records the sign-in (last_login_at and its audit event, in one write) once what it made
//     exists, so a sign-in refused at that last step is not recorded as one.

// Target is what a proven sign-in is to become.
type Target struct {
	// Browser: a browser session (and, while a second factor is owed, a pre-session for the
	// second step). Otherwise tokens: the first-party client's with a refresh family, or with
	// Admin an admin credential.
	Browser   bool
	UserAgent string // the browser's, kept with its session
	Admin     bool
	// Completes is the pre-session this sign-in is the second step of: ended once the session
	// exists.
	Completes string
}

// Signed is what Complete made.
type Signed struct {
	Authentication
	// Pending: a second factor is owed and Secret is a pre-session's (Browser).
	Pending bool
	Secret  string           // the session cookie's value (Browser)
	Session identity.Session // the session made (Browser)
	Tokens  Tokens           // the tokens made (otherwise)
}

// Complete finishes a sign-in: see the top of this file. a is what an authenticator proved; a
// Pending one (a right password, a second factor owed) becomes a pre-session for a browser.
func (s *SignIn) Complete(ctx context.Context, a Authentication, t Target) (Signed, error) {
	out := Signed{Authentication: a}
	owed := a.Pending || (a.User.Factors.HasTOTP() && !slices.Contains(a.AMR, AMRMultiFactor))
	switch {
	case owed && t.Browser && t.Completes == "":
		secret, err := s.Browser.StartPending(ctx, a, t.UserAgent)
		out.Pending, out.Secret = true, secret
		return out, err
	case owed:
		s.Logger.WarnContext(ctx, "sign-in refused: a second factor is owed", "sub", a.User.ID)
		return Signed{}, ErrOTPRequired
	}
	var err error
	switch {
	case t.Browser:
		out.Secret, out.Session, err = s.Browser.Start(ctx, a, t.UserAgent)
	case t.Admin:
		if !a.User.Admin {
			s.record(ctx, s.event(ctx, identity.AuditLogin, a.User.ID, Failure, "idp:admin scope refused: not an administrator"))
			return Signed{}, ErrNotAdmin
		}
		admin := Client{ID: s.FirstParty.ID, Scope: AdminScope, Audience: []string{s.Issuer.Issuer}}
		out.Tokens, err = s.Issue(ctx, Grant{User: a.User, Client: admin, AMR: a.AMR, IDP: a.IDP})
	default:
		out.Tokens, err = s.Issue(ctx, Grant{User: a.User, Client: s.FirstParty, Refresh: true, AMR: a.AMR, IDP: a.IDP, AuthTime: a.AuthTime})
	}
	if err != nil {
		return Signed{}, err
	}
	s.recordLogin(ctx, a.User.ID, signInMethod(a.AMR))
	if t.Completes != "" {
		if err := s.Browser.EndPending(ctx, t.Completes); err != nil {
			s.Logger.WarnContext(ctx, "sign-in: pre-session not removed", "err", err)
		}
	}
	return out, nil
}

// AMRMultiFactor is RFC 8176's "mfa": the sign-in used more than one factor (a password and a
// one-time code; a passkey, something held and the user verified).
const AMRMultiFactor = "mfa"

// AMRFederated is RFC 8176's method of a sign-in at an upstream identity provider.
const AMRFederated = "fed"

// signInMethod is how the audit trail names a sign-in, from its amr.
func signInMethod(amr []string) string {
	var methods []string
	for _, m := range amr {
		switch m {
		case "pwd":
			methods = append(methods, "password")
		case "otp":
			methods = append(methods, "one-time code")
		case AMRFederated:
			methods = append(methods, "upstream provider")
		case "hwk", "swk":
			return "passkey"
		}
	}
	if len(methods) == 0 {
		return strings.Join(amr, " ")
	}
	return strings.Join(methods, " and ")
}
