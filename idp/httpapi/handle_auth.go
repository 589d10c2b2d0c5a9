package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	OTP      string `json:"otp"`   // the second factor, for an account that has one
	Scope    string `json:"scope"` // "idp:admin" for an admin credential; absent for the usual scopes
}

func (c credentials) Valid() map[string]string {
	p := map[string]string{}
	if c.Username == "" {
		p["username"] = "Field \"username\" is required"
	}
	if c.Password == "" {
		p["password"] = "Field \"password\" is required"
	}
	return p
}

// signupRequest is /signup's body: the credentials and an optional email.
type signupRequest struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	Email      string `json:"email"`
	Invitation string `json:"invitation"` // an invitation's token: the account gets its address and groups
}

func (c signupRequest) Valid() map[string]string {
	return credentials{Username: c.Username, Password: c.Password}.Valid()
}

// Signer is what /signup needs of the use cases.
type Signer interface {
	Signup(ctx context.Context, username, password, email string) error
	SignupInvited(ctx context.Context, invitation, username, password string) error
}

func handleSignup(logger *slog.Logger, svc Signer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isForm(r) {
			signupForm(w, r, logger, svc)
			return
		}
		var req signupRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if req.Invitation != "" {
			if req.Email != "" {
				web.Error(w, r, logger, apperr.Errorf(apperr.EINVALID, "An invitation brings its own email address: leave \"email\" out"))
				return
			}
			if err := svc.SignupInvited(r.Context(), req.Invitation, req.Username, req.Password); err != nil {
				web.Error(w, r, logger, err)
				return
			}
			web.Success(w, http.StatusCreated, "User created")
			return
		}
		if err := svc.Signup(r.Context(), req.Username, req.Password, req.Email); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusCreated, "User created")
	})
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"` // absent only while storage is failing
	Scope        string `json:"scope,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	// IssuedTokenType is RFC 8693 §2.2.1's, on a token exchange's answer only.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// Loginer is what /auth needs of the use cases.
type Loginer interface {
	Login(ctx context.Context, c auth.Credentials) (auth.Tokens, auth.Authentication, error)
}

// handleAuth is the first-party API login. A client that keeps cookies gets a device cookie,
// which keeps others' failed guesses from locking it out of the account.
func handleAuth(logger *slog.Logger, svc Loginer, keys browserKeys, secure bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req credentials
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		t, a, err := svc.Login(r.Context(), auth.Credentials{
			Username: req.Username, Password: req.Password, OTP: req.OTP, Device: keys.device(r, req.Username), Scope: req.Scope,
		})
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		http.SetCookie(w, keys.deviceCookieFor(r, a.User, secure, func() string { return randomID(16) }))
		w.Header().Set("Cache-Control", "no-store")
		resp := tokenResponse{AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: t.ExpiresIn, RefreshToken: t.RefreshToken}
		if req.Scope != "" {
			resp.Scope = t.Scope // only when asked for: the original design's answer has no scope
		}
		web.WriteJSON(w, http.StatusOK, resp)
	})
}
