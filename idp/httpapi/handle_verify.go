package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
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
//
// With access rules (Deps.Access), the original request — X-Forwarded-Host, X-Forwarded-Uri or
// X-Original-URI, X-Forwarded-Method or X-Original-Method, and the client's address — is read
// from a trusted proxy only (anyone else is refused, 403) and decides:
// bypass lets in anyone (no user headers for no one), a user short of a second factor is sent
// to the step-up (401, X-Auth-Redirect to /login/stepup), and a refusal is a 403 whose
// X-Auth-Redirect names the login page, which shows a signed-in browser "not allowed" there.
func handleVerify(d verifyDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Every app request behind the proxy comes through here: the answer's headers are set
		// by their canonical names directly, from one backing array.
		v := new([7]string)
		v[0], v[1] = "no-store", "0"
		h["Cache-Control"], h["Content-Length"] = v[0:1:1], v[1:2:2]
		var who auth.Resolved
		err := errNoCredentials
		bearer := web.Header(r.Header, "Authorization") != ""
		if raw, ok := jwtauth.TokenFromHeader(r); ok {
			var claims *jwtauth.Claims
			if claims, err = d.verifier.Verify(r.Context(), raw); err == nil {
				if who, err = d.edge.Bearer(r.Context(), claims.ClientID, claims.Subject); err == nil {
					who.AMR = claims.AMR // how the token's sign-in went
				} else if apperr.Code(err) != apperr.EUNAUTHORIZED {
					d.logger.ErrorContext(r.Context(), "verify: bearer token's user", "err", err)
				}
			}
		} else if secret := d.cfg.secret(r); secret != "" {
			if who, err = d.sessions.Resolve(r.Context(), secret); err != nil && !errors.Is(err, auth.ErrNoSession) {
				d.logger.ErrorContext(r.Context(), "verify: resolve session", "err", err)
			}
		}
		outcome := access.NeedLogin
		if err == nil {
			outcome = access.Allow
		}
		if p := d.policy(); p != nil {
			outcome = d.decide(r, p, who, err == nil)
		}
		browser := !bearer && r.URL.RawQuery != "" && r.URL.Query().Get("redirect") == "1"
		switch outcome {
		case access.Allow:
			v[2], v[3], v[4], v[5], v[6] = who.UserID, who.Username, who.Username, strings.Join(who.Groups, ","), who.Email
			h["X-Auth-Subject"], h["X-Auth-User"], h["Remote-User"] = v[2:3:3], v[3:4:4], v[4:5:5]
			// Authelia's names, which apps behind it read: group names hold no comma.
			// Both always sent, empty when there is none: a proxy that copies them from the
			// answer (Caddy) would otherwise pass its placeholder, or the client's own copy.
			// Remote-Email: verified only.
			h["Remote-Groups"], h["Remote-Email"] = v[5:6:6], v[6:7:7]
			// The proxy asks before every request it forwards: a request let through has its
			// access line at debug; every refusal (a 302 to a browser included) keeps it at info.
			web.QuietAccessLog(w)
			w.WriteHeader(http.StatusOK)
		case access.AllowAnonymous:
			web.QuietAccessLog(w)
			w.WriteHeader(http.StatusOK)
		case access.NeedSecondFactor:
			if bearer {
				// RFC 9470: the token's sign-in is not enough; one with a second factor is.
				h.Set("WWW-Authenticate", `Bearer realm="jwtidp", error="insufficient_user_authentication", error_description="A second factor is required", acr_values="mfa"`)
			}
			refuse(w, d.loginURL+"/stepup?rd="+url.QueryEscape(originalURL(r)), browser, http.StatusUnauthorized)
		case access.Forbidden:
			refuse(w, d.loginURL+"?rd="+url.QueryEscape(originalURL(r)), browser, http.StatusForbidden)
		default:
			if bearer {
				h.Set("WWW-Authenticate", `Bearer realm="jwtidp"`)
			}
			refuse(w, d.loginURL+"?rd="+url.QueryEscape(originalURL(r)), browser, http.StatusUnauthorized)
		}
	})
}

var (
	errNoCredentials = errors.New("no credentials")
	errNotFromProxy  = errors.New("the request did not come from a --trusted-proxies address")
)

// refuse answers with status, naming where a browser should go in X-Auth-Redirect; a browser
// asking with ?redirect=1 is sent there at once.
func refuse(w http.ResponseWriter, to string, browser bool, status int) {
	w.Header().Set("X-Auth-Redirect", to)
	if browser {
		w.Header().Set("Location", to)
		status = http.StatusFound
	}
	w.WriteHeader(status)
}

// verifyDeps are what /verify needs.
type verifyDeps struct {
	logger   *slog.Logger
	verifier *jwtauth.Verifier
	sessions Sessions
	edge     EdgeBearer
	cfg      SessionConfig
	loginURL string
	access   func() *access.Policy // nil: no rules
	addrs    web.ClientAddrs
}

func (d verifyDeps) policy() *access.Policy {
	if d.access == nil {
		return nil
	}
	return d.access()
}

// decide applies the rules to the original request, as a trusted proxy tells it, and who
// asks. A request the proxy's headers do not describe is refused, and so is one from any other
// peer: /verify's own request names no app, and judging it instead let a default one_factor
// pass every signed-in user whatever the rules said of the app.
func (d verifyDeps) decide(r *http.Request, p *access.Policy, who auth.Resolved, signedIn bool) access.Outcome {
	var host, uri, method string
	err := errNotFromProxy
	if d.addrs.FromTrusted(r) {
		host = web.Header(r.Header, "X-Forwarded-Host")
		uri, err = forwarded(r, "X-Forwarded-Uri", "X-Original-Uri")
		if err == nil {
			method, err = forwarded(r, "X-Forwarded-Method", "X-Original-Method")
		}
	}
	var req access.Request
	if err == nil {
		client := auth.ClientIP(r.Context()) // the common middleware's, for every request
		if client == "" {
			client = d.addrs.Of(r)
		}
		req, err = access.NewRequest(host, uri, method, client)
	}
	if err != nil {
		d.logger.WarnContext(r.Context(), "verify: the original request (X-Forwarded-Host, X-Forwarded-Uri or X-Original-Uri, X-Forwarded-Method or X-Original-Method) cannot be read; refused", "err", err)
		return access.Forbidden
	}
	return p.Decide(req, subjectOf(who, signedIn))
}

// subjectOf is who asks, as the access rules see them.
func subjectOf(who auth.Resolved, signedIn bool) access.Subject {
	if !signedIn {
		return access.Subject{}
	}
	return access.Subject{SignedIn: true, Username: who.Username, Groups: who.Groups, AMR: who.AMR}
}

// forwarded is what a trusted proxy says of the original request in the header name or its
// alias alt, both written in canonical form (web.Header). Missing, it is an error — the rules
// would judge /verify's own request instead (a missing method was taken as GET) — and so is a
// pair that disagrees: a proxy that sets one passes the client's own copy of the other, which
// must not choose for it.
func forwarded(r *http.Request, name, alt string) (string, error) {
	v, a := web.Header(r.Header, name), web.Header(r.Header, alt)
	switch {
	case v == "" && a == "":
		return "", fmt.Errorf("the proxy sent neither %s nor %s", name, alt)
	case v != "" && a != "" && v != a:
		return "", fmt.Errorf("the proxy's %s and %s disagree", name, alt)
	case v == "":
		return a, nil
	}
	return v, nil
}

// EdgeBearer decides whether a verified access token passes forward-auth, and names its user.
type EdgeBearer interface {
	Bearer(ctx context.Context, clientID, sub string) (auth.Resolved, error)
}

// originalURL rebuilds the URL the user asked the proxy for, from the X-Forwarded-* headers
// that nginx (by our config), Traefik and Caddy send. It only becomes a login page's rd, which
// is checked against the allowed hosts before anyone is sent there.
func originalURL(r *http.Request) string {
	uri, _ := forwarded(r, "X-Forwarded-Uri", "X-Original-Uri")
	if !strings.HasPrefix(uri, "/") {
		uri = "/"
	}
	host := web.Header(r.Header, "X-Forwarded-Host")
	proto := web.Header(r.Header, "X-Forwarded-Proto")
	if host == "" || (proto != "http" && proto != "https") {
		return uri
	}
	return proto + "://" + host + uri
}
