package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// The device authorization grant (RFC 8628): a device without a browser asks for a device code
// and a user code (AuthorizeDevice), a person enters the user code on /device, signs in and
// answers (DevicePrompt, AnswerDevice), and the device polls the token endpoint
// (deviceCodeGrant) until the answer comes. Every decision — answered once, tokens once, how
// fast the device may poll — is made in the store's transaction on the code as stored.

// RFC 8628 §3.5's error codes, and RFC 8707's for an unknown resource.
const (
	errAuthorizationPending = "authorization_pending"
	errSlowDown             = "slow_down"
	errExpiredToken         = "expired_token"
)

// ErrNoDeviceCode is every user code that cannot be answered: mistyped, unknown, expired or
// already answered. The person asks the device for a new one.
var ErrNoDeviceCode = apperr.Errorf(apperr.ENOTFOUND, "This code is unknown, has expired or was already used. Check it, or start again on your device.")

// deviceGuesses is the throttle's account of user-code guesses: not a username anyone can have
// (as the one-time codes' "otp\x00"), so that its pair counter is the address's alone.
const deviceGuesses = "device\x00code"

// DeviceAuthorization is the answer of POST /device/authorize.
type DeviceAuthorization struct {
	DeviceCode string
	UserCode   string // formatted XXXX-XXXX
	ExpiresIn  int
	Interval   int
}

// DeviceRequest is a device's authorization request: the client as it authenticated, and what
// it asks for.
type DeviceRequest struct {
	Client   ClientAuth
	Scope    string
	Resource string // RFC 8707; "": none
}

// AuthorizeDevice is RFC 8628 §3.1–3.2: the client authenticates as at the token endpoint, must
// have the device_code grant, and asks for scopes within its own. Refusals are ErrInvalidClient,
// ErrUnauthorizedClient, ErrInvalidScope or *oidc.Error (invalid_target).
func (s *Grants) AuthorizeDevice(ctx context.Context, r DeviceRequest) (DeviceAuthorization, error) {
	if s.DeviceCodes == nil {
		return DeviceAuthorization{}, ErrUnauthorizedClient
	}
	c, err := s.tokenClient(ctx, r.Client)
	if err != nil {
		return DeviceAuthorization{}, err
	}
	if !slices.Contains(c.GrantTypes, identity.GrantDeviceCode) {
		s.Logger.InfoContext(ctx, "device authorization refused", "client_id", c.ID, "reason", "grant not registered")
		return DeviceAuthorization{}, ErrUnauthorizedClient
	}
	scope, ok := grantScope(c.Scopes, r.Scope)
	if !ok {
		s.Logger.InfoContext(ctx, "device authorization refused", "client_id", c.ID, "reason", "scope not allowed")
		return DeviceAuthorization{}, ErrInvalidScope
	}
	if _, err := s.resourceAudience(c, r.Resource); err != nil { // as every grant decides it
		return DeviceAuthorization{}, err
	}
	now := s.Now().UTC()
	for range 3 { // a user code taken by another live code: draw again
		code, err := token.RandomString(s.Random, 32)
		if err != nil {
			return DeviceAuthorization{}, err
		}
		user, err := newUserCode(s.Random)
		if err != nil {
			return DeviceAuthorization{}, err
		}
		err = s.DeviceCodes.CreateDeviceCode(ctx, identity.DeviceCode{
			Hash: HashCode(code), UserCode: user, ClientID: c.ID, Scopes: strings.Fields(scope), Resource: r.Resource,
			Status: identity.DevicePending, CreatedAt: now, ExpiresAt: now.Add(identity.DeviceCodeTTL), Interval: identity.DeviceInterval,
		})
		if apperr.Code(err) == apperr.ECONFLICT {
			continue
		}
		if err != nil {
			return DeviceAuthorization{}, err
		}
		s.Logger.InfoContext(ctx, "device authorization started", "client_id", c.ID, "scope", scope)
		return DeviceAuthorization{DeviceCode: code, UserCode: identity.FormatUserCode(user),
			ExpiresIn: int(identity.DeviceCodeTTL.Seconds()), Interval: identity.DeviceInterval}, nil
	}
	return DeviceAuthorization{}, apperr.Errorf(apperr.EUNAVAILABLE, "Could not draw a free user code; try again")
}

// newUserCode draws identity.UserCodeLength letters of identity.UserCodeAlphabet uniformly
// (bytes past the largest multiple of the alphabet's size are drawn again).
func newUserCode(random io.Reader) (string, error) {
	const n = len(identity.UserCodeAlphabet)
	out := make([]byte, 0, identity.UserCodeLength)
	buf := make([]byte, 16)
	for len(out) < identity.UserCodeLength {
		if _, err := io.ReadFull(random, buf); err != nil {
			return "", fmt.Errorf("user code: %w", err)
		}
		for _, b := range buf {
			if int(b) < 256/n*n && len(out) < identity.UserCodeLength {
				out = append(out, identity.UserCodeAlphabet[int(b)%n])
			}
		}
	}
	return string(out), nil
}

// DevicePrompt is what /device shows a person about a pending code: the client that asks and
// the scopes it asks for.
type DevicePrompt struct {
	UserCode string // normalized
	Client   identity.Client
	Scopes   []string
}

// FindDeviceCode looks up a user code a person typed, from the address in ctx: every lookup counts against the address (the login throttle's pair of a pseudo
// account, DefaultThrottle: 5 in 15 minutes lock it out for a minute, doubling), and a miss
// counts towards its address-wide lockout too, so that the 20^8 codes cannot be tried. A hit does
// not reset the count: holding one code of one's own must not buy more guesses. ETHROTTLED, or
// ErrNoDeviceCode for a code that is not pending.
func (s *Grants) FindDeviceCode(ctx context.Context, typed string) (DevicePrompt, error) {
	if s.DeviceCodes == nil {
		return DevicePrompt{}, ErrNoDeviceCode
	}
	at := Attempt{Account: deviceGuesses, Remote: remoteKey(ctx)}
	if err := s.Throttle.Allow(ctx, at); err != nil {
		s.Logger.InfoContext(ctx, "user code lookup throttled")
		return DevicePrompt{}, err
	}
	p, err := s.DevicePrompt(ctx, typed)
	if errors.Is(err, ErrNoDeviceCode) {
		s.Logger.InfoContext(ctx, "user code refused")
		if ferr := s.Throttle.Failure(ctx, at); ferr != nil {
			return DevicePrompt{}, ferr
		}
	}
	return p, err
}

// DevicePrompt reads the pending code of a user code the person's form carries (after
// FindDeviceCode found it, which its CSRF token proves): ErrNoDeviceCode when it is not pending.
func (s *Grants) DevicePrompt(ctx context.Context, typed string) (DevicePrompt, error) {
	user, ok := identity.NormalizeUserCode(typed)
	if !ok || s.DeviceCodes == nil {
		return DevicePrompt{}, ErrNoDeviceCode
	}
	d, err := s.DeviceCodes.DeviceCodeByUserCode(ctx, user)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return DevicePrompt{}, ErrNoDeviceCode
	case err != nil:
		return DevicePrompt{}, err
	case d.Status != identity.DevicePending || !s.Now().Before(d.ExpiresAt):
		return DevicePrompt{}, ErrNoDeviceCode
	}
	c, err := s.GetClient(ctx, d.ClientID)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return DevicePrompt{}, ErrNoDeviceCode
	case err != nil:
		return DevicePrompt{}, err
	}
	return DevicePrompt{UserCode: user, Client: c, Scopes: d.Scopes}, nil
}

// AnswerDevice records a signed-in person's answer to a pending code: approved, with their
// user, session and sign-in; or denied. Once only, decided in the store's transaction;
// ErrNoDeviceCode when the code is not pending any more.
func (s *Grants) AnswerDevice(ctx context.Context, typed string, by Resolved, approve bool) error {
	user, ok := identity.NormalizeUserCode(typed)
	if !ok || s.DeviceCodes == nil {
		return ErrNoDeviceCode
	}
	d, err := s.DeviceCodes.DeviceCodeByUserCode(ctx, user)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return ErrNoDeviceCode
	} else if err != nil {
		return err
	}
	now := s.Now()
	d, err = s.DeviceCodes.UpdateDeviceCode(ctx, d.Hash, func(d identity.DeviceCode) (identity.DeviceCode, error) {
		if d.Status != identity.DevicePending || d.UserCode != user || !now.Before(d.ExpiresAt) {
			return d, ErrNoDeviceCode
		}
		if !approve {
			d.Status = identity.DeviceDenied
			return d, nil
		}
		d.Status, d.UserID, d.SessionID, d.Epoch, d.AuthTime = identity.DeviceApproved, by.UserID, by.SessionID, by.Epoch, by.AuthTime.UTC()
		d.AMR, d.IDP = slices.Clone(by.AMR), by.IDP
		return d, nil
	})
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return ErrNoDeviceCode
	case err != nil:
		return err
	}
	if approve {
		s.Logger.InfoContext(ctx, "device approved", "sub", by.UserID, "client_id", d.ClientID, "sid", by.SessionID)
	} else {
		s.Logger.InfoContext(ctx, "device denied", "sub", by.UserID, "client_id", d.ClientID)
	}
	return nil
}

// deviceCodeGrant is RFC 8628 §3.4–3.5: the device polls with its device_code; the client
// authenticates as at the code exchange (a public client by its id).
type deviceCodeGrant struct{ *Grants }

func (deviceCodeGrant) Type() string { return identity.GrantDeviceCode }

// The outcomes of one poll, decided in the store's transaction.
const (
	pollPending = iota
	pollSlowDown
	pollIssue
)

func (g deviceCodeGrant) Token(ctx context.Context, r TokenRequest) (Tokens, error) {
	switch {
	case r.Params.Get("device_code") == "":
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "device_code is required")
	case len(r.Params["device_code"]) > 1:
		return Tokens{}, grantError(oidc.ErrInvalidRequest, "device_code is given more than once")
	case g.DeviceCodes == nil:
		return Tokens{}, grantError(oidc.ErrInvalidGrant, "the device code is not valid")
	}
	c, err := g.tokenClient(ctx, r.Client)
	if err != nil {
		return Tokens{}, err
	}
	if !slices.Contains(c.GrantTypes, identity.GrantDeviceCode) {
		return Tokens{}, ErrUnauthorizedClient
	}
	now := g.Now().UTC()
	outcome := pollPending
	d, err := g.DeviceCodes.UpdateDeviceCode(ctx, HashCode(r.Params.Get("device_code")), func(d identity.DeviceCode) (identity.DeviceCode, error) {
		switch {
		case d.ClientID != c.ID:
			return d, grantError(oidc.ErrInvalidGrant, "the device code is not valid")
		case d.Used:
			return d, grantError(oidc.ErrInvalidGrant, "the device code was already used")
		case !now.Before(d.ExpiresAt):
			return d, grantError(errExpiredToken, "the device code has expired; start again")
		case d.Status == identity.DeviceDenied:
			return d, grantError(oidc.ErrAccessDenied, "the user denied the request")
		case d.Status == identity.DeviceApproved:
			outcome, d.Used, d.LastPollAt = pollIssue, true, now
			return d, nil
		case !d.LastPollAt.IsZero() && now.Before(d.LastPollAt.Add(time.Duration(d.Interval)*time.Second)):
			outcome, d.Interval, d.LastPollAt = pollSlowDown, d.Interval+identity.DeviceSlowDown, now
			return d, nil
		}
		outcome, d.LastPollAt = pollPending, now
		return d, nil
	})
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		g.Logger.InfoContext(ctx, "device poll refused", "client_id", c.ID, "reason", "unknown code")
		return Tokens{}, grantError(oidc.ErrInvalidGrant, "the device code is not valid")
	case err != nil:
		return Tokens{}, err
	case outcome == pollPending:
		return Tokens{}, grantError(errAuthorizationPending, "the user has not answered yet")
	case outcome == pollSlowDown:
		return Tokens{}, grantError(errSlowDown, fmt.Sprintf("poll at most every %d seconds", d.Interval))
	}
	return g.issueDevice(ctx, c, d)
}

// issueDevice mints what an approved code grants, once (the poll that saw it approved marked it
// used): an access token, a refresh family when the scopes have offline_access and the client
// may refresh, an ID token with openid. The family is the device's own, not bound to the browser
// session that approved it (the person's phone signing out does not sign out their TV); it is
// listed among the person's sessions and ends there, or at a password change.
func (g deviceCodeGrant) issueDevice(ctx context.Context, c identity.Client, d identity.DeviceCode) (Tokens, error) {
	u, err := g.Users.GetUser(ctx, d.UserID)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND || (err == nil && (u.Epoch != d.Epoch || u.Disabled)):
		g.Logger.InfoContext(ctx, "device poll refused", "client_id", c.ID, "sub", d.UserID, "reason", "user gone or credentials changed")
		return Tokens{}, grantError(oidc.ErrInvalidGrant, "the sign-in behind the device code is no longer valid")
	case err != nil:
		return Tokens{}, err
	}
	scope := strings.Join(d.Scopes, " ")
	audience := g.FirstParty.Audience
	if d.Resource != "" {
		audience = []string{d.Resource}
	}
	t, err := g.Issue(ctx, Grant{
		User: u, Client: Client{ID: c.ID, Scope: scope, Audience: audience}, Scope: scope,
		Refresh: slices.Contains(d.Scopes, ScopeOfflineAccess) && slices.Contains(c.GrantTypes, identity.GrantRefreshToken),
		AMR:     d.AMR, IDP: d.IDP, AuthTime: d.AuthTime, // the family's refreshes keep the approving sign-in's auth_time
	})
	if err != nil {
		return Tokens{}, err
	}
	granted := strings.Fields(t.Scope)
	if slices.Contains(granted, oidc.ScopeOpenID) {
		id := token.ID{Subject: u.ID, ClientID: c.ID, AuthTime: d.AuthTime, AMR: d.AMR, IDP: d.IDP, ACR: oidc.ACR(d.AMR), AccessToken: t.AccessToken}
		withClaims(&id, u, granted, t.groups)
		if t.IDToken, err = g.Issuer.IDToken(id, g.IDTokenTTL); err != nil {
			return Tokens{}, err
		}
	}
	g.Logger.InfoContext(ctx, "device code redeemed", "sub", u.ID, "client_id", c.ID, "scope", t.Scope)
	return t, nil
}
