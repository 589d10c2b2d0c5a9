package httpapi

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// resourceMetadata is RFC 9728 §2's protected-resource metadata: which authorization server
// issues the tokens this service takes, for which scopes, sent how.
type resourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

// resource is the service's resource identifier: the configured one, or its URL as r reached it.
func resource(d Deps, r *http.Request) string {
	if d.Resource != "" {
		return d.Resource
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// handleResourceMetadata is GET /.well-known/oauth-protected-resource (RFC 9728 §3).
func handleResourceMetadata(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		web.WriteJSON(w, http.StatusOK, resourceMetadata{
			Resource: resource(d, r), AuthorizationServers: []string{d.Issuer},
			ScopesSupported: []string{ScopeRead, ScopeWrite, ScopeAdmin}, BearerMethodsSupported: []string{"header"},
		})
	})
}

// withResourceMetadata names the metadata in every 401's Bearer challenge (RFC 9728 §5.1),
// after the realm and error attributes RFC 6750 asks for.
func withResourceMetadata(d Deps, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The metadata's URL is made only for a 401: every request passes here.
		next.ServeHTTP(&challengeWriter{ResponseWriter: w, url: func() string { return metadataURL(resource(d, r)) }}, r)
	})
}

// metadataURL is where RFC 9728 §3.1 puts the metadata of resource: the well-known path between
// its host and its path (a trailing slash dropped).
func metadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return resource
	}
	u.Path = "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

type challengeWriter struct {
	http.ResponseWriter
	url   func() string
	wrote bool
}

func (c *challengeWriter) WriteHeader(status int) {
	if !c.wrote && status == http.StatusUnauthorized {
		h := c.Header()
		if v := h.Get("WWW-Authenticate"); strings.HasPrefix(v, "Bearer ") {
			h.Set("WWW-Authenticate", v+`, resource_metadata="`+c.url()+`"`)
		}
	}
	c.wrote = true
	c.ResponseWriter.WriteHeader(status)
}

func (c *challengeWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (c *challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// actors logs who acts for the user when the token says so (RFC 8693's act, from a token
// exchange): sub is the user, act the chain of clients, the latest first.
func actors(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := jwtauth.FromContext(r.Context()); ok && c.Act != nil {
			logger.InfoContext(r.Context(), "request on a user's behalf", "sub", c.Subject, "client_id", c.ClientID,
				"act", strings.Join(c.Act.Chain(), " < "))
		}
		next.ServeHTTP(w, r)
	})
}
