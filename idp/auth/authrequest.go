package auth

import (
	"context"

	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// The stored authorization request's use cases: the authorization endpoint keeps a checked
// request while the browser is on the login, second-factor or consent page (which carry only
// its id), and answers it once. What happens next is oidc.Next's to decide; these give it its
// inputs and keep the request.

// ErrNoAuthRequest is every authorization request id that cannot continue: unknown, expired, or
// already answered. The browser has to start again at its application.
var ErrNoAuthRequest = apperr.Errorf(apperr.ENOTFOUND, "This sign-in request is unknown, has expired or was already answered")

// StartAuthRequest stores r, checked by the authorization endpoint, under a new random id (256
// bits, unguessable) and returns it with that id. EINVALID when r breaks
// identity.AuthRequest.Validate (its free text is too long to keep).
func (s *Grants) StartAuthRequest(ctx context.Context, r identity.AuthRequest) (identity.AuthRequest, error) {
	id, err := token.RandomString(s.Random, 32)
	if err != nil {
		return identity.AuthRequest{}, err
	}
	r.ID = id
	if err := s.AuthRequests.CreateAuthRequest(ctx, r); err != nil {
		return identity.AuthRequest{}, err
	}
	return r, nil
}

// AuthRequest returns the request stored under id while it may continue: ErrNoAuthRequest when
// it is unknown, expired or answered.
func (s *Grants) AuthRequest(ctx context.Context, id string) (identity.AuthRequest, error) {
	r, err := s.AuthRequests.GetAuthRequest(ctx, id)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return identity.AuthRequest{}, ErrNoAuthRequest
	case err != nil:
		return identity.AuthRequest{}, err
	case r.Answered || !s.Now().Before(r.ExpiresAt):
		return identity.AuthRequest{}, ErrNoAuthRequest
	}
	return r, nil
}

// AskSignIn records that the request id sends the browser to sign in now, unless it already
// has: a sign-in from then on satisfies what asked for one (oidc.Next). ErrNoAuthRequest as
// AuthRequest.
func (s *Grants) AskSignIn(ctx context.Context, id string) (identity.AuthRequest, error) {
	return s.updateAuthRequest(ctx, id, func(r identity.AuthRequest) identity.AuthRequest {
		if r.SignInAfter.IsZero() {
			r.SignInAfter = s.Now().UTC()
		}
		return r
	})
}

// AnswerAuthRequest marks the request id answered — once, decided in the transaction that
// marks it, so of a consent posted twice, or from two processes, one alone goes on to answer
// the client. ErrNoAuthRequest as AuthRequest.
func (s *Grants) AnswerAuthRequest(ctx context.Context, id string) (identity.AuthRequest, error) {
	return s.updateAuthRequest(ctx, id, func(r identity.AuthRequest) identity.AuthRequest {
		r.Answered = true
		return r
	})
}

// updateAuthRequest applies change to a request that may continue, in one transaction.
func (s *Grants) updateAuthRequest(ctx context.Context, id string, change func(identity.AuthRequest) identity.AuthRequest) (identity.AuthRequest, error) {
	now := s.Now()
	r, err := s.AuthRequests.UpdateAuthRequest(ctx, id, func(r identity.AuthRequest) (identity.AuthRequest, error) {
		if r.Answered || !now.Before(r.ExpiresAt) {
			return r, ErrNoAuthRequest
		}
		return change(r), nil
	})
	if apperr.Code(err) == apperr.ENOTFOUND {
		return identity.AuthRequest{}, ErrNoAuthRequest
	}
	return r, err
}

// ConsentOf is what oidc.Next needs to know of the consent of user userID to client c: whether
// c is first-party (its users are never asked; nothing is read) and the scopes the user
// allowed it before.
func (s *Grants) ConsentOf(ctx context.Context, userID string, c identity.Client) (oidc.Consent, error) {
	if c.FirstParty {
		return oidc.Consent{FirstParty: true}, nil
	}
	got, err := s.Consents.GetConsent(ctx, userID, c.ID)
	switch apperr.Code(err) {
	case "":
		return oidc.Consent{Remembered: got.Scopes}, nil
	case apperr.ENOTFOUND:
		return oidc.Consent{}, nil
	default:
		return oidc.Consent{}, err
	}
}

// HasSecondFactor reports whether the user has a second factor to sign in with: TOTP, or a
// passkey. A user gone has none.
func (s *Grants) HasSecondFactor(ctx context.Context, userID string) (bool, error) {
	u, err := s.Users.GetUser(ctx, userID)
	switch apperr.Code(err) {
	case "":
		return u.Factors.HasTOTP() || len(u.Factors.Passkeys) > 0, nil
	case apperr.ENOTFOUND:
		return false, nil // deleted meanwhile: the session no longer resolves either
	default:
		return false, err
	}
}

// ScopeText is how the consent page names OpenID Connect's own scopes; the IdP's program names
// its first-party ones.
var ScopeText = map[string]string{
	oidc.ScopeOpenID:   "Sign you in with your account",
	ScopeProfile:       "See your username",
	ScopeEmail:         "See your email address",
	ScopeGroups:        "See your groups",
	ScopeOfflineAccess: "Stay signed in when you are away (refresh tokens)",
}
