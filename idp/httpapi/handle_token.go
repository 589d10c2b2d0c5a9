package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	web.WriteJSON(w, status, oauthError{Error: code, Description: desc})
}

// readForm decodes a form body strictly (web.DecodeForm) and says what is wrong in words an
// OAuth client can show, with the status to answer.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, int, string) {
	form, err := web.DecodeForm(w, r)
	switch apperr.Code(err) {
	case "":
		return form, 0, ""
	case apperr.ETOOLARGE:
		return nil, http.StatusRequestEntityTooLarge, apperr.Message(err)
	default:
		// RFC 6749 §5.2: every malformed request, a wrong Content-Type included, is a 400.
		return nil, http.StatusBadRequest, apperr.Message(err)
	}
}

// refuseOAuth answers a client over the per-client limit in the shape of RFC 6749 §5.2.
func refuseOAuth(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	web.SetRetryAfter(w, wait)
	writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable", "too many requests; slow down")
}

// Refresher is what the refresh grant needs of the use cases.
type Refresher interface {
	Refresh(ctx context.Context, refreshToken string) (auth.Tokens, error)
}

func handleToken(logger *slog.Logger, svc Refresher) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, status, problem := readForm(w, r)
		switch {
		case problem != "":
			writeOAuthError(w, status, "invalid_request", problem)
			return
		case form.Get("grant_type") == "":
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
			return
		case form.Get("grant_type") != "refresh_token":
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "only the refresh_token grant is supported")
			return
		case form.Get("refresh_token") == "":
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
			return
		}
		t, err := svc.Refresh(r.Context(), form.Get("refresh_token"))
		switch apperr.Code(err) {
		case "":
		case apperr.EUNAUTHORIZED:
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "refresh token is invalid, expired or revoked")
			return
		case apperr.EUNAVAILABLE, apperr.ETHROTTLED:
			web.SetRetryAfter(w, apperr.RetryAfter(err))
			writeOAuthError(w, web.Status(apperr.Code(err)), "temporarily_unavailable", apperr.Message(err))
			return
		default:
			logger.ErrorContext(r.Context(), "refresh", "err", err)
			writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		web.WriteJSON(w, http.StatusOK, tokenResponse{
			AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: t.ExpiresIn, RefreshToken: t.RefreshToken, Scope: t.Scope,
		})
	})
}

// handleRevoke is RFC 7009: 200 whether or not the token was known, so the answer tells an
// attacker nothing.
// Revoker is what /revoke needs of the use cases.
type Revoker interface {
	Revoke(ctx context.Context, refreshToken string) error
}

func handleRevoke(logger *slog.Logger, svc Revoker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, status, problem := readForm(w, r)
		if problem == "" && form.Get("token") == "" {
			status, problem = http.StatusBadRequest, "token is required"
		}
		if problem != "" {
			writeOAuthError(w, status, "invalid_request", problem)
			return
		}
		// Only refresh tokens are revocable; an access token (or anything else) matches no family
		// and is answered 200 like any unknown token (RFC 7009 §2.2).
		if err := svc.Revoke(r.Context(), form.Get("token")); err != nil {
			logger.ErrorContext(r.Context(), "revoke", "err", err)
			writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
}

type passwordChange struct {
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

func (p passwordChange) Valid() map[string]string {
	m := map[string]string{}
	if p.Current == "" {
		m["current_password"] = `Field "current_password" is required`
	}
	if p.New == "" {
		m["new_password"] = `Field "new_password" is required`
	}
	return m
}

// PasswordChanger is what /account/password needs of the use cases.
type PasswordChanger interface {
	ChangePassword(ctx context.Context, userID, current, next, remoteKey string) error
}

func handlePassword(logger *slog.Logger, svc PasswordChanger, remotes web.ClientAddrs) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req passwordChange
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		c, _ := jwtauth.FromContext(r.Context())
		if err := svc.ChangePassword(r.Context(), c.Subject, req.Current, req.New, web.ClientKey(remotes.Of(r))); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
