package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// TOTP is what the second-factor routes need of the use cases.
type TOTP interface {
	EnrollTOTP(ctx context.Context, userID string, proof auth.Reauth) (auth.Enrollment, error)
	ConfirmTOTP(ctx context.Context, userID, code, keep string) ([]string, error)
	DisableTOTP(ctx context.Context, userID, pw, code string) error
}

// TOTPEnrollment is POST /account/totp's result: the secret, typed or as a QR code's URI.
type TOTPEnrollment struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
}

// currentPassword is the body of POST /account/totp: the proof that the owner asks, not a
// stale token.
type currentPassword struct {
	CurrentPassword string `json:"current_password"`
}

func (p currentPassword) Valid() map[string]string {
	if p.CurrentPassword == "" {
		return map[string]string{"current_password": `Field "current_password" is required`}
	}
	return nil
}

func handleTOTPEnroll(logger *slog.Logger, svc TOTP) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req currentPassword
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		c, _ := jwtauth.FromContext(r.Context())
		e, err := svc.EnrollTOTP(r.Context(), c.Subject, auth.Reauth{Password: req.CurrentPassword})
		if apperr.Code(err) == apperr.ENOTFOUND {
			invalidToken(w)
			return
		}
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		web.WriteJSON(w, http.StatusOK, TOTPEnrollment{Secret: e.Secret, OTPAuthURI: e.URI})
	})
}

type totpCode struct {
	Code string `json:"code"`
}

func (t totpCode) Valid() map[string]string {
	if t.Code == "" {
		return map[string]string{"code": `Field "code" is required`}
	}
	return nil
}

// RecoveryCodes is POST /account/totp/confirm's result, shown this once.
type RecoveryCodes struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// handleTOTPConfirm turns TOTP on; the user's other sessions and families end, the caller's own
// (its token's sid) stays, and this process's session cache forgets the ended ones at once
// (sessions may be nil in tests without one).
func handleTOTPConfirm(logger *slog.Logger, svc TOTP, sessions *auth.Sessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req totpCode
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		c, _ := jwtauth.FromContext(r.Context())
		codes, err := svc.ConfirmTOTP(r.Context(), c.Subject, req.Code, c.Sid)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if sessions != nil {
			sessions.ForgetUser(c.Subject)
		}
		w.Header().Set("Cache-Control", "no-store")
		web.WriteJSON(w, http.StatusOK, RecoveryCodes{RecoveryCodes: codes})
	})
}

type totpDisable struct {
	Password string `json:"password"`
	Code     string `json:"code"`
}

func (t totpDisable) Valid() map[string]string {
	m := map[string]string{}
	if t.Password == "" {
		m["password"] = `Field "password" is required`
	}
	if t.Code == "" {
		m["code"] = `Field "code" is required`
	}
	return m
}

func handleTOTPDisable(logger *slog.Logger, svc TOTP) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req totpDisable
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		c, _ := jwtauth.FromContext(r.Context())
		if err := svc.DisableTOTP(r.Context(), c.Subject, req.Password, req.Code); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// MFAReset is what POST /admin/users/{user}/reset-mfa needs.
type MFAReset interface {
	ResetSecondFactors(ctx context.Context, user string) (identity.User, error)
}

// ResetUser is the reset route's result.
type ResetUser struct {
	Username string `json:"username"`
	Sub      string `json:"sub"`
}

// handleResetMFA is POST /admin/users/{user}/reset-mfa; the reset ends the user's sessions, and
// this process's cache forgets them at once (sessions may be nil in tests without one).
func handleResetMFA(logger *slog.Logger, svc MFAReset, sessions *auth.Sessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := svc.ResetSecondFactors(r.Context(), r.PathValue("user"))
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if sessions != nil {
			sessions.ForgetUser(u.ID)
		}
		web.Success(w, http.StatusOK, ResetUser{Username: u.Username, Sub: u.ID})
	})
}

// Account is what the account routes need of the use cases.
type Account interface {
	Userinfo(ctx context.Context, sub, clientID, scope string) (map[string]any, error)
	SetEmail(ctx context.Context, userID, email string, proof auth.Reauth) (identity.User, error)
}

// invalidToken answers a token that verified but names no user (any more): RFC 6750 §3.1.
func invalidToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="idp", error="invalid_token"`)
	web.WriteJSON(w, http.StatusUnauthorized, web.Envelope{Status: "Error", Result: "Invalid access token"})
}

func handleUserinfo(logger *slog.Logger, svc Account) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := jwtauth.FromContext(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		claims, err := svc.Userinfo(r.Context(), c.Subject, c.ClientID, c.Scope)
		switch {
		case err == nil:
			web.WriteJSON(w, http.StatusOK, claims)
		case apperr.Code(err) == apperr.ENOTFOUND:
			invalidToken(w)
		case errors.Is(err, auth.ErrInsufficientScope):
			w.Header().Set("WWW-Authenticate", `Bearer realm="idp", error="insufficient_scope", scope="openid"`)
			web.WriteJSON(w, http.StatusForbidden, web.Envelope{Status: "Error", Result: "Insufficient scope"})
		default:
			web.Error(w, r, logger, err)
		}
	})
}

// emailRequest is the body of PUT /account/email; "" removes the email. current_password
// proves the owner asks, not someone holding a stale token.
type emailRequest struct {
	Email           *string `json:"email"`
	CurrentPassword string  `json:"current_password"`
}

func (e emailRequest) Valid() map[string]string {
	m := map[string]string{}
	if e.Email == nil {
		m["email"] = `Field "email" is required`
	}
	if e.CurrentPassword == "" {
		m["current_password"] = `Field "current_password" is required`
	}
	return m
}

// UserCheck is what firstPartyOnly needs of the use cases.
type UserCheck interface {
	UserActive(ctx context.Context, sub string) (bool, error)
}

// EmailInfo is a user's email as the account and admin routes show it.
type EmailInfo struct {
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
}

// firstPartyOnly lets through only the IdP's own tokens (those of /auth and the browser login)
// to a route that changes the account: a relying party that holds a user's token must not be
// able to change the password (or guess it, and lock the user out) or the email the others key
// the user by. A client's own token, which names no user, is 401 invalid_token; so is the
// token of a user disabled or deleted since it was issued (read from the store at each request:
// a disable takes the account away at once, not when the token expires).
func firstPartyOnly(users UserCheck, logger *slog.Logger, what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := jwtauth.FromContext(r.Context())
		if c.ClientID != identity.FirstPartyClientID {
			if c.Subject == c.ClientID {
				invalidToken(w)
				return
			}
			web.WriteJSON(w, http.StatusForbidden, web.Envelope{Status: "Error", Result: "Only a token of the IdP's own sign-in may change the " + what})
			return
		}
		active, err := users.UserActive(r.Context(), c.Subject)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if !active {
			invalidToken(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleSetEmail is PUT /account/email (behind firstPartyOnly).
func handleSetEmail(logger *slog.Logger, svc Account) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := jwtauth.FromContext(r.Context())
		var req emailRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		u, err := svc.SetEmail(r.Context(), c.Subject, *req.Email, auth.Reauth{Password: req.CurrentPassword})
		switch apperr.Code(err) {
		case "":
			web.Success(w, http.StatusOK, EmailInfo{Email: u.Email, EmailVerified: u.EmailVerified})
		case apperr.ENOTFOUND:
			invalidToken(w) // a deleted user's token
		default:
			web.Error(w, r, logger, err)
		}
	})
}

// Introspector is what /introspect needs of the use cases.
type Introspector interface {
	IntrospectAs(ctx context.Context, a auth.ClientAuth, tok, hint string, verify auth.VerifyAccess) (auth.Introspection, error)
}

// introspection is RFC 7662 §2.2's answer; an inactive token is {"active":false} only.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// handleIntrospect is RFC 7662, with the client authentication of /token.
func handleIntrospect(logger *slog.Logger, svc Introspector, v *jwtauth.Verifier) http.Handler {
	var verify auth.VerifyAccess
	if v != nil {
		verify = v.Verify
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, status, problem := readForm(w, r)
		if problem != "" {
			writeOAuthError(w, status, "invalid_request", problem)
			return
		}
		client, ok := requestClient(w, r, form, true)
		if !ok {
			return
		}
		if form.Get("token") == "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "token is required")
			return
		}
		in, err := svc.IntrospectAs(r.Context(), client, form.Get("token"), form.Get("token_type_hint"), verify)
		switch {
		case errors.Is(err, auth.ErrInvalidClient):
			invalidClient(w)
			return
		case err != nil:
			tokenFailure(w, r, logger, "introspection", err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		if !in.Active {
			web.WriteJSON(w, http.StatusOK, introspection{})
			return
		}
		web.WriteJSON(w, http.StatusOK, introspection{
			Active: true, Scope: in.Scope, ClientID: in.ClientID, Username: in.Username, TokenType: in.TokenType,
			Exp: unix(in.ExpiresAt), Iat: unix(in.IssuedAt), Sub: in.Subject, Aud: in.Audience, Iss: in.Issuer,
		})
	})
}

// EmailVerifier is what the admin's email verification needs of the use cases.
type EmailVerifier interface {
	VerifyEmail(ctx context.Context, user, email string) (identity.User, error)
}

// VerifyEmailRequest is the body of POST /admin/users/{user}/verify-email: the address the
// admin verifies, which must still be the user's (else 409).
type VerifyEmailRequest struct {
	Email string `json:"email"`
}

func (v VerifyEmailRequest) Valid() map[string]string {
	if v.Email == "" {
		return map[string]string{"email": `Field "email" is required: the address you verify`}
	}
	return nil
}

// VerifiedEmail is the answer of POST /admin/users/{user}/verify-email.
type VerifiedEmail struct {
	Username      string `json:"username"`
	Sub           string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
}

func handleVerifyEmail(logger *slog.Logger, svc EmailVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req VerifyEmailRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		u, err := svc.VerifyEmail(r.Context(), r.PathValue("user"), req.Email)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusOK, VerifiedEmail{Username: u.Username, Sub: u.ID, Email: u.Email, EmailVerified: u.EmailVerified})
	})
}
