package oidc

import (
	"slices"
	"strings"
	"time"

	"jwtidp/idp/identity"
)

// Step is what the authorization endpoint does next with a request (Next).
type Step int

const (
	StepLogin        Step = iota + 1 // send the browser to sign in
	StepSecondFactor                 // send the signed-in user to sign in again, with a second factor
	StepConsent                      // ask the user whether the client may have the scopes
	StepCode                         // answer the client with a code
	StepError                        // answer the client with Next's error
)

func (s Step) String() string {
	switch s {
	case StepLogin:
		return "Login"
	case StepSecondFactor:
		return "SecondFactor"
	case StepConsent:
		return "Consent"
	case StepCode:
		return "Code"
	case StepError:
		return "Error"
	}
	return "Step(?)"
}

// Session is what Next needs to know of the browser's session.
type Session struct {
	Present  bool // the browser has a live session
	AuthTime time.Time
	AMR      []string // RFC 8176, as the sign-in recorded them
	// HasSecondFactor: the user has a second factor they could sign in with (TOTP, a passkey).
	// Only asked when the request wants one the session lacks (AsksMFA).
	HasSecondFactor bool
}

// Consent is what Next needs to know of the client and of what the user allowed it.
type Consent struct {
	FirstParty bool     // the IdP's own client: its users are never asked
	Remembered []string // the scopes the user allowed the client before
	Given      bool     // the user allowed this very request on its consent page
}

// Authentication context class references (OpenID Connect Core §2, §3.1.2.1 acr_values): a
// sign-in with more than one factor ("mfa": its amr has mfa, which a one-time code and a
// passkey set), or any sign-in ("sfa").
const (
	ACRMFA = "mfa"
	ACRSFA = "sfa"
)

// ACRValuesSupported is what discovery lists.
var ACRValuesSupported = []string{ACRMFA, ACRSFA}

// ACR is the acr of a sign-in made with the methods amr: what an ID token says was achieved.
func ACR(amr []string) string {
	if slices.Contains(amr, "mfa") {
		return ACRMFA
	}
	return ACRSFA
}

// AsksMFA reports whether r asks for a multi-factor sign-in: its acr_values, in order of
// preference, name mfa before sfa. Values the IdP does not know are ignored (acr_values is a
// voluntary claim request).
func AsksMFA(r identity.AuthRequest) bool {
	for _, v := range r.ACRValues {
		switch v {
		case ACRMFA:
			return true
		case ACRSFA:
			return false
		}
	}
	return false
}

// Next decides what the authorization endpoint does with the checked request r, given the
// browser's session s and the consent c, at now. Its error, with StepError, is one to redirect.
//
//   - No session: Login (prompt=none: login_required).
//   - A sign-in asked for and not made since r.SignInAfter — prompt=login or select_account (the
//     login page is where a user picks the account), or one older than max_age — is Login
//     (prompt=none: login_required); acr_values asking for mfa of a session without it, from a
//     user who has a second factor, is SecondFactor. A sign-in at or after r.SignInAfter
//     satisfies all of them, a single-factor one too (acr_values is voluntary: the ID token
//     says what was achieved), so a request sends the browser to sign in once.
//   - A client that is not first-party needs consent when the user has not allowed it every
//     scope, or when prompt=consent, unless given on this request's page: Consent (prompt=none:
//     consent_required).
//   - Otherwise Code.
func Next(r identity.AuthRequest, s Session, c Consent, now time.Time) (Step, *Error) {
	none := hasPrompt(r.Prompt, PromptNone)
	if !s.Present {
		if none {
			return StepError, redirecting(ErrLoginRequired, "the user is not signed in")
		}
		return StepLogin, nil
	}
	signedInSince := !r.SignInAfter.IsZero() && !s.AuthTime.Before(r.SignInAfter)
	if !signedInSince {
		switch {
		case hasPrompt(r.Prompt, PromptLogin), hasPrompt(r.Prompt, PromptSelectAccount):
			return StepLogin, nil // Check refuses none with another value
		case r.MaxAge != nil && now.Sub(s.AuthTime) > time.Duration(*r.MaxAge)*time.Second:
			if none {
				return StepError, redirecting(ErrLoginRequired, "the sign-in is older than max_age")
			}
			return StepLogin, nil
		case !none && AsksMFA(r) && ACR(s.AMR) != ACRMFA && s.HasSecondFactor:
			return StepSecondFactor, nil
		}
	}
	covered := true
	for _, sc := range r.Scopes {
		covered = covered && slices.Contains(c.Remembered, sc)
	}
	if !c.FirstParty && !c.Given && (!covered || hasPrompt(r.Prompt, PromptConsent)) {
		if none {
			return StepError, redirecting(ErrConsentRequired, "the user has not allowed this client these scopes")
		}
		return StepConsent, nil
	}
	return StepCode, nil
}

// hasPrompt reports whether the prompt parameter p includes v (one of the Prompt constants).
func hasPrompt(p, v string) bool { return slices.Contains(strings.Fields(p), v) }

// Request is r, checked by Check, as the IdP keeps it while the browser is on a page: scopes
// are Check's, made at now. Its ID is the store's caller's to make.
func (r AuthorizeRequest) Request(scopes []string, now time.Time) identity.AuthRequest {
	return identity.AuthRequest{
		ClientID: r.ClientID, RedirectURI: r.RedirectURI, Scopes: scopes, State: r.State, Nonce: r.Nonce,
		CodeChallenge: r.CodeChallenge, Prompt: r.Prompt, LoginHint: r.LoginHint, MaxAge: r.MaxAge,
		ACRValues: r.ACRValues, Resource: r.Resource, CreatedAt: now, ExpiresAt: now.Add(identity.AuthRequestTTL),
	}
}

// Recheck applies Check's client rules again to a stored request when it continues, as the
// client c is now (the zero Client when it is gone): an administrator may have changed it
// since. A client gone or a redirect URI no longer registered is an error page (never
// redirected to); a grant or a scope taken away is redirected.
func Recheck(r identity.AuthRequest, c identity.Client) *Error {
	switch {
	case c.ID == "" || c.ID != r.ClientID:
		return page(ErrInvalidClient, "client_id is not a registered client")
	case !slices.Contains(c.RedirectURIs, r.RedirectURI):
		return page(ErrInvalidRequest, "redirect_uri is not registered for this client")
	case !slices.Contains(c.GrantTypes, identity.GrantAuthorizationCode):
		return redirecting(ErrUnauthorizedClient, "the client is not registered for the authorization_code grant")
	}
	for _, sc := range r.Scopes {
		if !slices.Contains(c.Scopes, sc) {
			return redirecting(ErrInvalidScope, "a requested scope is not allowed for this client")
		}
	}
	return nil
}
