package httpapi

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

type logoutView struct {
	Style    template.CSS
	Action   string
	CSRF     string
	RD       string
	Username string
	// RP-initiated logout's parameters, carried through the confirmation form.
	PostLogoutRedirectURI, State, ClientID string
}

// Clients is what RP-initiated logout needs to check a post_logout_redirect_uri.
type Clients interface {
	GetClient(ctx context.Context, id string) (identity.Client, error)
}

// rpLogout is an RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0 §2) as
// checked: where to send the browser afterwards, and whether a valid id_token_hint names the
// browser's own session, so no confirmation is needed.
type rpLogout struct {
	to       string // post_logout_redirect_uri with state, "" when none was asked for
	hintSID  string // the sid of a valid id_token_hint
	hintSub  string
	params   logoutView
	problem  string // why the request is refused (a 400 page)
	asRPFlow bool
}

// readRPLogout checks the RP-initiated logout parameters of form: an id_token_hint must be an
// ID token this IdP signed (expired is fine); a post_logout_redirect_uri must be registered,
// byte for byte, for the client the hint's aud or client_id names (they must agree).
func (b *browser) readRPLogout(ctx context.Context, form url.Values) rpLogout {
	hint, uri, clientID := form.Get("id_token_hint"), form.Get("post_logout_redirect_uri"), form.Get("client_id")
	l := rpLogout{params: logoutView{PostLogoutRedirectURI: uri, State: form.Get("state"), ClientID: clientID}}
	if hint == "" && uri == "" && clientID == "" {
		return l
	}
	l.asRPFlow = true
	if hint != "" {
		if b.hints == nil {
			l.problem = "id_token_hint is not supported"
			return l
		}
		c, err := b.hints(hint)
		if err != nil {
			l.problem = "id_token_hint is not an ID token of this issuer"
			return l
		}
		if clientID != "" && clientID != c.Audience[0] {
			l.problem = "client_id differs from the id_token_hint's audience"
			return l
		}
		clientID, l.hintSID, l.hintSub = c.Audience[0], c.SID, c.Subject
		l.params.ClientID = clientID
	}
	if uri == "" {
		return l
	}
	if clientID == "" || b.clients == nil {
		l.problem = "post_logout_redirect_uri needs id_token_hint or client_id to name its client"
		return l
	}
	c, err := b.clients.GetClient(ctx, clientID)
	if err != nil || !slices.Contains(c.PostLogoutRedirectURIs, uri) {
		l.problem = "post_logout_redirect_uri is not registered for this client"
		return l
	}
	l.to = oidc.LogoutRedirectURL(uri, form.Get("state"))
	return l
}

// handleLogout ends the browser session and every refresh family bound to it, and clears the
// cookie — but only when the form carries the session's CSRF token, or (RP-initiated logout)
// a valid id_token_hint names this very session. Anything else (a link, an app's plain "log
// out" button, another site's form) gets a page asking to confirm, whose form carries the
// token: so no other site can sign a user out, and apps need no token of their own.
func handleLogout(b *browser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form := r.URL.Query()
		if r.Method == http.MethodPost && r.ContentLength != 0 {
			f, err := web.DecodeForm(w, r)
			if err != nil {
				http.Error(w, apperr.Message(err), web.Status(apperr.Code(err)))
				return
			}
			form = f
		}
		rp := b.readRPLogout(r.Context(), form)
		if rp.problem != "" {
			pageHeaders(w, http.StatusBadRequest)
			errorPage.Execute(w, errorView{Style: template.CSS(loginStyle), Title: "Sign-out request refused",
				Code: "invalid_request", Description: rp.problem,
				Advice: "The application that sent you here made a sign-out request this service cannot accept."})
			return
		}
		rd := form.Get("rd")
		to := b.loginURL
		switch {
		case rp.to != "":
			to = rp.to
		case rd != "":
			to = b.rv.Safe(rd)
		}
		secret := b.cfg.secret(r)
		s, err := b.sessions.Resolve(r.Context(), secret)
		if err != nil && !errors.Is(err, auth.ErrNoSession) {
			// The store failed: the session may still be live, so saying "signed out" would lie.
			b.logger.ErrorContext(r.Context(), "logout: resolve session", "err", err)
			http.Error(w, "Could not sign out; please try again.", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			// No live session: nothing to end, and nothing for another site to abuse.
			http.SetCookie(w, b.cfg.cookie("", 0))
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		token := form.Get("csrf")
		hinted := rp.hintSID != "" && rp.hintSID == s.SessionID && rp.hintSub == s.UserID
		confirmed := r.Method == http.MethodPost && b.keys.csrfOK(r, token, "logout", secret)
		if !hinted && !confirmed {
			v := rp.params
			v.Style, v.Action, v.CSRF, v.RD, v.Username = template.CSS(loginStyle), "logout", b.keys.csrfToken("logout", secret), rd, s.Username
			pageHeaders(w, http.StatusOK)
			logoutPage.Execute(w, v)
			return
		}
		if err := b.sessions.End(r.Context(), secret); err != nil {
			b.logger.ErrorContext(r.Context(), "logout", "err", err)
			http.Error(w, "Could not sign out; please try again.", http.StatusServiceUnavailable)
			return
		}
		http.SetCookie(w, b.cfg.cookie("", 0))
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, to, http.StatusSeeOther)
	})
}
