package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
)

// handleJWKS serves the prepared JWKS bytes with a short public cache lifetime and an ETag, so
// verifiers and caches can revalidate for the price of a 304.
func handleJWKS(keys Keys, maxAge time.Duration) http.Handler {
	cacheControl := "public, max-age=" + strconv.Itoa(int(maxAge.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, etag := keys.JWKS()
		h := w.Header()
		h.Set("Cache-Control", cacheControl)
		h.Set("ETag", etag)
		if etagMatch(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// handleDiscovery serves OpenID Connect Discovery / RFC 8414 metadata, built once from the
// issuer.
func handleDiscovery(issuer string, scopes []string) http.Handler {
	base := strings.TrimSuffix(issuer, "/")
	doc := map[string]any{
		"issuer":                 issuer,
		"authorization_endpoint": base + "/authorize",
		"token_endpoint":         base + "/token",
		"userinfo_endpoint":      base + "/userinfo",
		"jwks_uri":               base + "/.well-known/jwks.json",
		"revocation_endpoint":    base + "/revoke",
		"introspection_endpoint": base + "/introspect",
		"end_session_endpoint":   base + "/logout",
		"registration_endpoint":  base + "/register",
		"grant_types_supported": []string{"authorization_code", "refresh_token", "client_credentials",
			"urn:ietf:params:oauth:grant-type:token-exchange",
		},
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none", "private_key_jwt"},
		// The first-party client's tokens need no authentication; a registered client's need its.
		"revocation_endpoint_auth_methods_supported":               []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"},
		"introspection_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported":         auth.AssertionAlgs,
		"revocation_endpoint_auth_signing_alg_values_supported":    auth.AssertionAlgs,
		"introspection_endpoint_auth_signing_alg_values_supported": auth.AssertionAlgs,
		"scopes_supported": append([]string{"openid", "profile", "email", "groups", "offline_access"}, scopes...),
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "sid", "azp",
			"at_hash", "preferred_username", "email", "email_verified", "groups"},
		"acr_values_supported":                           oidc.ACRValuesSupported,
		"prompt_values_supported":                        []string{"none", "login", "consent", "select_account"},
		"authorization_response_iss_parameter_supported": true,
		"claims_parameter_supported":                     false,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"backchannel_logout_supported":                   true, "backchannel_logout_session_supported": true,
	}
	doc["device_authorization_endpoint"] = base + "/device/authorize"
	doc["grant_types_supported"] = append(doc["grant_types_supported"].([]string), identity.GrantDeviceCode)
	body, _ := json.Marshal(doc)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(body)
	})
}
