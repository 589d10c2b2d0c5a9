package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
)

// handleVerify is the forward-auth endpoint for nginx auth_request, Traefik forwardAuth and
// Caddy forward_auth: 200 with the identity headers, or 401 with X-Auth-Redirect naming the
// login page. Both answers have no body, since a body on the subrequest's answer makes nginx
// drop its keep-alive connection to us. A bearer token is verified in memory and then must be
// one the edge accepts (auth.Sessions.Bearer: the first-party client's or a forward_auth
// client's, naming a user who is still active); that and a session cookie are resolved through
// the sessions' short cache, so the store is read at most once per user, client or session per
// cache period. It never answers 5xx: nginx turns anything but 2xx, 401 and 403 into a 500 for
// the user.
//
// With ?redirect=1 — for Traefik and Caddy, which hand a non-2xx answer straight to the
// client — a browser (a request without Authorization) gets a 302 to the login page instead;
// API clients still get the 401.
func handleVerify(logger *slog.Logger, v *jwtauth.Verifier, sessions Sessions, edge EdgeBearer, cfg SessionConfig, loginURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", "0")
		var sub, user, email string
		var groups []string
		err := errors.New("no credentials")
		bearer := r.Header.Get("Authorization") != ""
		if raw, ok := jwtauth.TokenFromHeader(r); ok {
			var claims *jwtauth.Claims
			if claims, err = v.Verify(r.Context(), raw); err == nil {
				var who auth.Resolved
				if who, err = edge.Bearer(r.Context(), claims.ClientID, claims.Subject); err == nil {
					sub, user, email, groups = who.UserID, who.Username, who.Email, who.Groups
				} else if apperr.Code(err) != apperr.EUNAUTHORIZED {
					logger.ErrorContext(r.Context(), "verify: bearer token's user", "err", err)
				}
			}
		} else if secret := cfg.secret(r); secret != "" {
			var s auth.Resolved
			if s, err = sessions.Resolve(r.Context(), secret); err == nil {
				sub, user, email, groups = s.UserID, s.Username, s.Email, s.Groups
			} else if !errors.Is(err, auth.ErrNoSession) {
				logger.ErrorContext(r.Context(), "verify: resolve session", "err", err)
			}
		}
		if err != nil {
			login := loginURL + "?rd=" + url.QueryEscape(originalURL(r))
			h.Set("X-Auth-Redirect", login)
			if !bearer && r.URL.Query().Get("redirect") == "1" {
				h.Set("Location", login)
				w.WriteHeader(http.StatusFound)
				return
			}
			if bearer {
				h.Set("WWW-Authenticate", `Bearer realm="jwtidp"`)
			}
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.Set("X-Auth-Subject", sub)
		h.Set("X-Auth-User", user)
		h.Set("Remote-User", user)
		// Authelia's names, which apps behind it read: group names hold no comma.
		h.Set("Remote-Groups", strings.Join(groups, ","))
		if email != "" {
			h.Set("Remote-Email", email) // verified only
		}
		w.WriteHeader(http.StatusOK)
	})
}

// EdgeBearer decides whether a verified access token passes forward-auth, and names its user.
type EdgeBearer interface {
	Bearer(ctx context.Context, clientID, sub string) (auth.Resolved, error)
}

// originalURL rebuilds the URL the user asked the proxy for, from the X-Forwarded-* headers
// that nginx (by our config), Traefik and Caddy send. It only becomes a login page's rd, which
// is checked against the allowed hosts before anyone is sent there.
func originalURL(r *http.Request) string {
	uri := r.Header.Get("X-Forwarded-Uri")
	if !strings.HasPrefix(uri, "/") {
		uri = "/"
	}
	host := r.Header.Get("X-Forwarded-Host")
	proto := r.Header.Get("X-Forwarded-Proto")
	if host == "" || (proto != "http" && proto != "https") {
		return uri
	}
	return proto + "://" + host + uri
}
