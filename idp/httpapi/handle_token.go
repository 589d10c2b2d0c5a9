package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
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

// Tokener is what /token needs of the use cases: the refresh grant (the first-party client's,
// unauthenticated as before) and the client-credentials grant.
type Tokener interface {
	Refresh(ctx context.Context, refreshToken string) (auth.Tokens, error)
	ClientCredentials(ctx context.Context, clientID, secret, scope string) (auth.Tokens, error)
}

func handleToken(logger *slog.Logger, svc Tokener) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, status, problem := readForm(w, r)
		switch {
		case problem != "":
			writeOAuthError(w, status, "invalid_request", problem)
			return
		case form.Get("grant_type") == "":
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
			return
		case form.Get("grant_type") == identity.GrantClientCredentials:
			clientCredentialsGrant(w, r, logger, svc, form)
			return
		case form.Get("grant_type") != "refresh_token":
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "only the refresh_token and client_credentials grants are supported")
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
		default:
			tokenFailure(w, r, logger, "refresh", err)
			return
		}
		writeTokens(w, t)
	})
}

func writeTokens(w http.ResponseWriter, t auth.Tokens) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	web.WriteJSON(w, http.StatusOK, tokenResponse{
		AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: t.ExpiresIn, RefreshToken: t.RefreshToken, Scope: t.Scope,
	})
}

// tokenFailure answers an error no grant expects: the store is busy or down, or a bug.
func tokenFailure(w http.ResponseWriter, r *http.Request, logger *slog.Logger, what string, err error) {
	switch apperr.Code(err) {
	case apperr.EUNAVAILABLE, apperr.ETHROTTLED:
		web.SetRetryAfter(w, apperr.RetryAfter(err))
		writeOAuthError(w, web.Status(apperr.Code(err)), "temporarily_unavailable", apperr.Message(err))
	default:
		logger.ErrorContext(r.Context(), what, "err", err)
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
	}
}

// clientAuth is how a client authenticated at /token (RFC 6749 §2.3.1).
type clientAuth struct {
	id, secret string
	basic      bool // client_secret_basic: a failure must be a 401 with a Basic challenge
}

// readClientAuth takes the client's credentials from an Authorization: Basic header
// (client_secret_basic; id and secret are form-urlencoded inside it, as §2.3.1 says) or from
// the form (client_secret_post), not both. problem is an invalid_request description; badBasic
// says a Basic header was there but could not be read (invalid_client).
func readClientAuth(r *http.Request, form url.Values) (a clientAuth, badBasic bool, problem string) {
	_, hasHeader := r.Header["Authorization"]
	if !hasHeader {
		return clientAuth{id: form.Get("client_id"), secret: form.Get("client_secret")}, false, ""
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return clientAuth{basic: true}, true, ""
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return clientAuth{basic: true}, true, ""
	}
	if _, ok := form["client_secret"]; ok {
		return clientAuth{}, false, "use one client authentication method: the Authorization header or client_secret in the body, not both"
	}
	if v, ok := form["client_id"]; ok && v[0] != id {
		return clientAuth{}, false, "client_id in the body differs from the Authorization header's"
	}
	return clientAuth{id: id, secret: secret, basic: true}, false, ""
}

// clientCredentialsGrant is RFC 6749 §4.4.
func clientCredentialsGrant(w http.ResponseWriter, r *http.Request, logger *slog.Logger, svc Tokener, form url.Values) {
	a, badBasic, problem := readClientAuth(r, form)
	if problem != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", problem)
		return
	}
	invalidClient := func() {
		// RFC 6749 §5.2: 401 when the client tried the Authorization header; RFC 9110 §15.5.2:
		// a 401 carries a challenge. Without any credentials it is a 401 too.
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if badBasic || a.id == "" {
		invalidClient()
		return
	}
	t, err := svc.ClientCredentials(r.Context(), a.id, a.secret, form.Get("scope"))
	switch {
	case err == nil:
		writeTokens(w, t)
	case errors.Is(err, auth.ErrInvalidClient):
		invalidClient()
	case errors.Is(err, auth.ErrUnauthorizedClient):
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "the client may not use the client_credentials grant")
	case errors.Is(err, auth.ErrInvalidScope):
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "the requested scope is not among the client's scopes")
	default:
		tokenFailure(w, r, logger, "client credentials", err)
	}
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
