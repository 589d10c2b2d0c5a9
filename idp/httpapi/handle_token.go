package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"jwtidp/idp/auth"
	"jwtidp/idp/oidc"
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

// Tokener is what /token needs of the use cases: its grants, behind one interface
// (auth.GrantType), picked by grant_type.
type Tokener interface {
	Supports(grantType string) bool
	Token(ctx context.Context, grantType string, r auth.TokenRequest) (auth.Tokens, error)
}

// handleToken is the token endpoint (RFC 6749 §3.2): it reads the form and how the client
// authenticated, and hands both to the grant that grant_type names; what each grant needs and
// refuses is the grant's.
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
		case !svc.Supports(form.Get("grant_type")):
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "this grant_type is not supported: discovery's grant_types_supported lists those that are")
			return
		}
		client, ok := requestClient(w, r, form, false)
		if !ok {
			return
		}
		t, err := svc.Token(r.Context(), form.Get("grant_type"), auth.TokenRequest{Client: client, Params: form})
		if err != nil {
			grantFailure(w, r, logger, form.Get("grant_type"), err)
			return
		}
		writeTokens(w, t)
	})
}

// grantFailure answers a grant's refusal in RFC 6749 §5.2's terms.
func grantFailure(w http.ResponseWriter, r *http.Request, logger *slog.Logger, what string, err error) {
	var oe *oidc.Error
	switch {
	case errors.As(err, &oe):
		writeOAuthError(w, http.StatusBadRequest, oe.Code, oe.Description)
	case errors.Is(err, auth.ErrInvalidClient):
		invalidClient(w)
	case errors.Is(err, auth.ErrUnauthorizedClient):
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "the client may not use this grant type")
	case errors.Is(err, auth.ErrInvalidScope):
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "the requested scope exceeds what was granted")
	default:
		tokenFailure(w, r, logger, what, err)
	}
}

// invalidClient is RFC 6749 §5.2's invalid_client: 401, and (RFC 9110 §15.5.2) a 401 carries
// a challenge — also when the client sent no credentials at all.
func invalidClient(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
	writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
}

func writeTokens(w http.ResponseWriter, t auth.Tokens) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	web.WriteJSON(w, http.StatusOK, tokenResponse{
		AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: t.ExpiresIn, RefreshToken: t.RefreshToken, Scope: t.Scope,
		IDToken: t.IDToken, IssuedTokenType: t.IssuedTokenType,
	})
}

// tokenFailure answers an error no grant expects: the store is busy or down, or a bug.
func tokenFailure(w http.ResponseWriter, r *http.Request, logger *slog.Logger, what string, err error) {
	switch apperr.Code(err) {
	case apperr.EUNAVAILABLE, apperr.ETHROTTLED:
		web.SetRetryAfter(w, apperr.RetryAfter(err))
		if apperr.Code(err) == apperr.EUNAVAILABLE {
			web.ShedConnection(w)
		}
		writeOAuthError(w, web.Status(apperr.Code(err)), "temporarily_unavailable", apperr.Message(err))
	default:
		logger.ErrorContext(r.Context(), what, "err", err)
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
	}
}

// clientAuth is how a client authenticated at /token (RFC 6749 §2.3.1, RFC 7523 §2.2).
type clientAuth struct {
	id, secret string
	assertion  string // private_key_jwt's client_assertion
	basic      bool   // client_secret_basic: a failure must be a 401 with a Basic challenge
}

// readClientAuth takes the client's credentials from an Authorization: Basic header
// (client_secret_basic; id and secret are form-urlencoded inside it, as §2.3.1 says), from
// the form (client_secret_post), or from a signed assertion in the form (private_key_jwt:
// client_assertion_type and client_assertion, client_id optional) — one of them. problem is
// an invalid_request description; badBasic says a Basic header was there but could not be
// read (invalid_client).
func readClientAuth(r *http.Request, form url.Values) (a clientAuth, badBasic bool, problem string) {
	_, hasHeader := r.Header["Authorization"]
	_, hasType := form["client_assertion_type"]
	_, hasAssertion := form["client_assertion"]
	if hasType || hasAssertion {
		_, hasSecret := form["client_secret"]
		switch {
		case hasHeader || hasSecret:
			return clientAuth{}, false, "use one client authentication method: a client_assertion, or a client secret, not both"
		case !hasType || !hasAssertion || form.Get("client_assertion") == "":
			return clientAuth{}, false, "client_assertion and client_assertion_type go together"
		case len(form["client_assertion"]) > 1 || len(form["client_assertion_type"]) > 1:
			return clientAuth{}, false, "client_assertion is given more than once"
		case form.Get("client_assertion_type") != auth.AssertionType:
			return clientAuth{}, false, "client_assertion_type must be " + auth.AssertionType
		}
		return clientAuth{id: form.Get("client_id"), assertion: form.Get("client_assertion")}, false, ""
	}
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

// requestClient reads how the client authenticated (readClientAuth) and answers what is wrong
// with it: invalid_request for two methods at once or a malformed assertion's parameters;
// invalid_client (401 with a Basic challenge) for a Basic header that cannot be read or, when
// required, no client at all. false: answered. Every endpoint that authenticates clients
// (/token, /introspect, /revoke, /device/authorize) reads them here, and the use cases check
// them in one place (auth's authenticate).
func requestClient(w http.ResponseWriter, r *http.Request, form url.Values, required bool) (auth.ClientAuth, bool) {
	a, badBasic, problem := readClientAuth(r, form)
	switch {
	case problem != "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", problem)
		return auth.ClientAuth{}, false
	case badBasic || (required && a.id == "" && a.assertion == ""):
		invalidClient(w)
		return auth.ClientAuth{}, false
	}
	return auth.ClientAuth{ID: a.id, Secret: a.secret, Assertion: a.assertion, Endpoint: r.URL.Path}, true
}

// Revoker is what /revoke needs of the use cases.
type Revoker interface {
	RevokeAs(ctx context.Context, a auth.ClientAuth, refreshToken string) error
}

// handleRevoke is RFC 7009: 200 whether or not the token was known, so the answer tells an
// attacker nothing. A registered client's token needs that client's authentication (§2.1), as
// at /token; the first-party client's tokens need none.

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
		client, ok := requestClient(w, r, form, false)
		if !ok {
			return
		}
		err := svc.RevokeAs(r.Context(), client, form.Get("token"))
		switch {
		case err == nil:
		case errors.Is(err, auth.ErrInvalidClient):
			invalidClient(w)
			return
		case errors.Is(err, auth.ErrNotTokenOwner):
			writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "the token was not issued to this client")
			return
		default:
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
	ChangePassword(ctx context.Context, userID, current, next string) error
}

func handlePassword(logger *slog.Logger, svc PasswordChanger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req passwordChange
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		c, _ := jwtauth.FromContext(r.Context())
		if err := svc.ChangePassword(r.Context(), c.Subject, req.Current, req.New); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
