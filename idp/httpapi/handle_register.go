package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// Registrar is what the registration routes (RFC 7591/7592) need of the use cases.
type Registrar interface {
	Register(ctx context.Context, initialToken string, c identity.Client) (auth.Registered, error)
	ReadRegistration(ctx context.Context, id, rat string) (identity.Client, error)
	UpdateRegistration(ctx context.Context, id, rat string, c identity.Client) (auth.Registered, error)
	DeleteRegistration(ctx context.Context, id, rat string) error
}

// clientMetadata is RFC 7591 §2's client metadata, as a registration takes it and answers it.
// Members the IdP does not know are ignored, as §2 asks (an MCP client sends client_uri,
// logo_uri, software_id …).
type clientMetadata struct {
	RedirectURIs                     []string       `json:"redirect_uris"`
	ClientName                       string         `json:"client_name,omitempty"`
	GrantTypes                       []string       `json:"grant_types"`
	ResponseTypes                    []string       `json:"response_types"`
	TokenEndpointAuthMethod          string         `json:"token_endpoint_auth_method"`
	Scope                            string         `json:"scope"`
	JWKS                             map[string]any `json:"jwks,omitempty"`
	JWKSURI                          string         `json:"jwks_uri,omitempty"`
	PostLogoutRedirectURIs           []string       `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI             string         `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool           `json:"backchannel_logout_session_required,omitempty"`
}

// registrationAnswer is the client information response (RFC 7591 §3.2.1, RFC 7592 §3).
type registrationAnswer struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	clientMetadata
}

// maxMetadataBytes bounds a registration's body: a JWKS may take 64 KiB.
const maxMetadataBytes = 128 << 10

// client is the metadata as a client to register (without id).
func (m clientMetadata) client() (identity.Client, error) {
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			return identity.Client{}, &auth.MetadataError{Code: "invalid_client_metadata", Description: "response_types: only code is supported"}
		}
	}
	c := identity.Client{Name: m.ClientName, RedirectURIs: m.RedirectURIs, PostLogoutRedirectURIs: m.PostLogoutRedirectURIs,
		GrantTypes: m.GrantTypes, Scopes: strings.Fields(m.Scope), TokenEndpointAuth: m.TokenEndpointAuthMethod, JWKSURI: m.JWKSURI,
		BackchannelLogoutURI: m.BackchannelLogoutURI, BackchannelLogoutSessionRequired: m.BackchannelLogoutSessionRequired}
	if m.JWKS != nil {
		b, _ := json.Marshal(m.JWKS)
		c.JWKS = string(b)
	}
	return c, nil
}

// answerOf is what the registrant is shown of c.
func answerOf(issuer string, c identity.Client) registrationAnswer {
	a := registrationAnswer{ClientID: c.ID, ClientIDIssuedAt: c.CreatedAt.Unix(),
		RegistrationClientURI: strings.TrimSuffix(issuer, "/") + "/register/" + c.ID,
		clientMetadata: clientMetadata{RedirectURIs: nonNil(c.RedirectURIs), ClientName: c.Name, GrantTypes: nonNil(c.GrantTypes),
			ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: c.TokenEndpointAuth, Scope: strings.Join(c.Scopes, " "),
			JWKSURI: c.JWKSURI, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackchannelLogoutURI: c.BackchannelLogoutURI,
			BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired}}
	if c.JWKS != "" {
		json.Unmarshal([]byte(c.JWKS), &a.JWKS) // stored as a JWKS that decoded
	}
	return a
}

// readMetadata decodes a registration's JSON body; false when it answered the refusal.
func readMetadata(w http.ResponseWriter, r *http.Request) (identity.Client, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		writeOAuthError(w, http.StatusUnsupportedMediaType, "invalid_client_metadata", "The body must be application/json")
		return identity.Client{}, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMetadataBytes))
	if err != nil {
		writeOAuthError(w, http.StatusRequestEntityTooLarge, "invalid_client_metadata", "The body is too large")
		return identity.Client{}, false
	}
	var m clientMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "The body is not client metadata in JSON")
		return identity.Client{}, false
	}
	c, err := m.client()
	if err != nil {
		registrationFailure(w, r, nil, err)
		return identity.Client{}, false
	}
	return c, true
}

// bearerOf is the token of "Authorization: Bearer <t>" ("" for none): an initial access token
// or a registration access token, read as the IdP reads every bearer token (its length bounded).
func bearerOf(r *http.Request) string {
	tok, _ := jwtauth.TokenFromHeader(r)
	return tok
}

// registrationFailure answers err: RFC 7591 §3.2.2's 400 for metadata, RFC 6750's 401 for a
// missing or wrong token.
func registrationFailure(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var me *auth.MetadataError
	switch {
	case errors.As(err, &me):
		writeOAuthError(w, http.StatusBadRequest, me.Code, me.Description)
	case apperr.Code(err) == apperr.EUNAUTHORIZED:
		if bearerOf(r) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idp"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idp", error="invalid_token"`)
		}
		writeOAuthError(w, http.StatusUnauthorized, "invalid_token", apperr.Message(err))
	case apperr.Code(err) == apperr.EINVALID:
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", apperr.Message(err))
	default:
		if logger != nil {
			logger.ErrorContext(r.Context(), "client registration failed", "err", err)
		}
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "The registration could not be completed")
	}
}

// handleRegister is RFC 7591's POST /register: 201 with the client information, its secret and
// registration access token shown this once.
func handleRegister(logger *slog.Logger, reg Registrar, issuer string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearerOf(r)
		if r.Header.Get("Authorization") != "" && tok == "" {
			registrationFailure(w, r, logger, identity.ErrRegistrationToken)
			return
		}
		c, ok := readMetadata(w, r)
		if !ok {
			return
		}
		out, err := reg.Register(r.Context(), tok, c)
		if err != nil {
			registrationFailure(w, r, logger, err)
			return
		}
		a := answerOf(issuer, out.Client)
		a.RegistrationAccessToken = out.RegistrationToken
		if out.Secret != "" {
			a.ClientSecret, a.ClientSecretExpiresAt = out.Secret, new(int64)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		web.WriteJSON(w, http.StatusCreated, a)
	})
}

// handleRegistration is RFC 7592's GET, PUT and DELETE /register/{client_id}, with the
// registration access token as the bearer.
func handleRegistration(logger *slog.Logger, reg Registrar, issuer string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, rat := r.PathValue("id"), bearerOf(r)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		switch r.Method {
		case http.MethodGet:
			c, err := reg.ReadRegistration(r.Context(), id, rat)
			if err != nil {
				registrationFailure(w, r, logger, err)
				return
			}
			web.WriteJSON(w, http.StatusOK, answerOf(issuer, c))
		case http.MethodPut:
			if _, err := reg.ReadRegistration(r.Context(), id, rat); err != nil {
				registrationFailure(w, r, logger, err) // before reading a body from a stranger
				return
			}
			c, ok := readMetadata(w, r)
			if !ok {
				return
			}
			out, err := reg.UpdateRegistration(r.Context(), id, rat, c)
			if err != nil {
				registrationFailure(w, r, logger, err)
				return
			}
			a := answerOf(issuer, out.Client)
			if out.Secret != "" {
				a.ClientSecret, a.ClientSecretExpiresAt = out.Secret, new(int64)
			}
			web.WriteJSON(w, http.StatusOK, a)
		case http.MethodDelete:
			if err := reg.DeleteRegistration(r.Context(), id, rat); err != nil {
				registrationFailure(w, r, logger, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

// RegistrationTokenRequest is the body of POST /admin/registration-tokens: how long the
// initial access token is good for (Go duration on the wire, "24h") and how many registrations
// it may make.
type RegistrationTokenRequest struct {
	TTL  time.Duration `json:"-"`
	Uses int           `json:"uses"`
}

func (q RegistrationTokenRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		TTL  string `json:"ttl"`
		Uses int    `json:"uses"`
	}{q.TTL.String(), q.Uses})
}

func (q *RegistrationTokenRequest) UnmarshalJSON(b []byte) error {
	var raw struct {
		TTL  string `json:"ttl"`
		Uses *int   `json:"uses"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	q.Uses, q.TTL = 1, 24*time.Hour // the defaults
	if raw.Uses != nil {
		q.Uses = *raw.Uses
	}
	if raw.TTL != "" {
		d, err := time.ParseDuration(raw.TTL)
		if err != nil {
			return apperr.Errorf(apperr.EINVALID, `Field "ttl" must be a duration such as 24h`)
		}
		q.TTL = d
	}
	return nil
}

// RegistrationTokenInfo is the answer of POST /admin/registration-tokens: the token, shown this
// once, and what identifies it (RegisteredBy names the id).
type RegistrationTokenInfo struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
	Uses      int       `json:"uses"`
}

// RegistrationTokenMinter is what POST /admin/registration-tokens needs of the use cases.
type RegistrationTokenMinter interface {
	NewRegistrationToken(ctx context.Context, ttl time.Duration, uses int) (string, identity.RegistrationToken, error)
}

func handleRegistrationTokenCreate(logger *slog.Logger, svc RegistrationTokenMinter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req RegistrationTokenRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		raw, t, err := svc.NewRegistrationToken(r.Context(), req.TTL, req.Uses)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusCreated, RegistrationTokenInfo{Token: raw, ID: t.ID, ExpiresAt: t.ExpiresAt, Uses: t.UsesLeft})
	})
}
