package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/web"
)

// ClientInfo is a registered client on the wire (API.md's client object): what POST
// /admin/clients takes and every client route answers, and each entry of a --clients file.
// ClientSecret is only ever set in a file and in the one answer that registers a confidential
// client; the stored hash is never shown.
type ClientInfo struct {
	ClientFields
	CreatedAt    *time.Time `json:"created_at,omitempty"`
	ClientSecret string     `json:"client_secret,omitempty"`
	// RegisteredBy is who registered it through RFC 7591 ("" for an admin or a clients file);
	// shown, never taken from a request or a file.
	RegisteredBy string `json:"registered_by,omitempty"`
}

// ClientFields are a client's registration: what POST /admin/clients takes and every client
// route answers.
type ClientFields struct {
	ClientID               string   `json:"client_id"`
	Name                   string   `json:"name"`
	Public                 bool     `json:"public"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	GrantTypes             []string `json:"grant_types"`
	Scopes                 []string `json:"scopes"`
	FirstParty             bool     `json:"first_party"`
	ForwardAuth            bool     `json:"forward_auth"` // its users' tokens pass /verify
	// Issue 30: how it authenticates at the token endpoint (client_secret_basic, the default
	// for a confidential client; client_secret_post; private_key_jwt with jwks or jwks_uri; none
	// for a public client), back-channel logout, and the audiences token exchange may give it.
	TokenEndpointAuthMethod          string         `json:"token_endpoint_auth_method,omitempty"`
	JWKS                             map[string]any `json:"jwks,omitempty"`
	JWKSURI                          string         `json:"jwks_uri,omitempty"`
	BackchannelLogoutURI             string         `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool           `json:"backchannel_logout_session_required,omitempty"`
	TokenExchange                    *TokenExchange `json:"token_exchange,omitempty"`
}

// TokenExchange is a client's token_exchange member: the audiences it may exchange a user's
// token for.
type TokenExchange struct {
	Audiences []string `json:"audiences"`
}

// Client is the identity.Client c describes (without a secret hash).
func (c ClientInfo) Client() identity.Client {
	out := identity.Client{
		ID: c.ClientID, Name: c.Name, Public: c.Public, RedirectURIs: c.RedirectURIs,
		PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, GrantTypes: c.GrantTypes, Scopes: c.Scopes, FirstParty: c.FirstParty,
		ForwardAuth: c.ForwardAuth, TokenEndpointAuth: c.TokenEndpointAuthMethod, JWKSURI: c.JWKSURI,
		BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,
	}
	if c.JWKS != nil {
		b, _ := json.Marshal(c.JWKS) // decoded from JSON or YAML: it encodes
		out.JWKS = string(b)
	}
	if c.TokenExchange != nil {
		out.ExchangeAudiences = c.TokenExchange.Audiences
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ClientInfoOf is c as the admin routes show it: never its secret or the secret's hash.
func ClientInfoOf(c identity.Client) ClientInfo {
	info := ClientInfo{ClientFields: ClientFields{
		ClientID: c.ID, Name: c.Name, Public: c.Public, RedirectURIs: nonNil(c.RedirectURIs),
		PostLogoutRedirectURIs: nonNil(c.PostLogoutRedirectURIs), GrantTypes: nonNil(c.GrantTypes), Scopes: nonNil(c.Scopes),
		FirstParty: c.FirstParty, ForwardAuth: c.ForwardAuth, TokenEndpointAuthMethod: c.TokenEndpointAuth, JWKSURI: c.JWKSURI,
		BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,
	}, CreatedAt: optTime(c.CreatedAt), RegisteredBy: c.RegisteredBy}
	if c.JWKS != "" {
		json.Unmarshal([]byte(c.JWKS), &info.JWKS) // stored as a client's JWKS that decoded
	}
	if len(c.ExchangeAudiences) > 0 {
		info.TokenExchange = &TokenExchange{Audiences: c.ExchangeAudiences}
	}
	return info
}

// clientRequest is the body of POST /admin/clients: the client object without a secret (the
// IdP generates it) or a creation time.
type clientRequest struct{ ClientFields }

func (c clientRequest) Valid() map[string]string {
	p := map[string]string{}
	if c.ClientID == "" {
		p["client_id"] = `Field "client_id" is required`
	}
	if len(c.GrantTypes) == 0 {
		p["grant_types"] = `Field "grant_types" is required`
	}
	return p
}

// ClientRegistry is what the client admin routes need of the use cases.
type ClientRegistry interface {
	RegisterClient(ctx context.Context, c identity.Client, secret string) (identity.Client, string, error)
	GetClient(ctx context.Context, id string) (identity.Client, error)
	ListClients(ctx context.Context) ([]identity.Client, error)
	DeleteClient(ctx context.Context, id string) error
}

// handleClientsCreate registers a client: 201 with it and, for a confidential client, the
// generated secret, shown this once.
func handleClientsCreate(logger *slog.Logger, reg ClientRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req clientRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		c, secret, err := reg.RegisterClient(r.Context(), req.info().Client(), "")
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		info := ClientInfoOf(c)
		info.ClientSecret = secret
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusCreated, info)
	})
}

func (c clientRequest) info() ClientInfo {
	return ClientInfo{ClientFields: c.ClientFields}
}

func handleClientsList(logger *slog.Logger, reg ClientRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs, err := reg.ListClients(r.Context())
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		out := make([]ClientInfo, 0, len(cs))
		for _, c := range cs {
			out = append(out, ClientInfoOf(c))
		}
		web.Success(w, http.StatusOK, out)
	})
}

func handleClientsGet(logger *slog.Logger, reg ClientRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := reg.GetClient(r.Context(), r.PathValue("id"))
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusOK, ClientInfoOf(c))
	})
}

// handleClientsDelete removes a client and revokes every refresh family issued to it: 204. This
// process's edge cache forgets the client (sessions may be nil in tests without one), so its
// users' tokens stop passing /verify here at once.
func handleClientsDelete(logger *slog.Logger, reg ClientRegistry, sessions *auth.Sessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := reg.DeleteClient(r.Context(), r.PathValue("id")); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if sessions != nil {
			sessions.ForgetClient(r.PathValue("id"))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
