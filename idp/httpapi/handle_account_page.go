package httpapi

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

//go:embed templates/account.html
var accountFiles embed.FS

var accountPage = template.Must(template.ParseFS(accountFiles, "templates/account.html"))

// AccountPage is what the signed-in person's page needs of the use cases.
type AccountPage interface {
	AccountSessions
	PasswordChanger
	Userinfo(ctx context.Context, sub, clientID, scope string) (map[string]any, error)
	SetEmail(ctx context.Context, userID, email string, proof auth.Reauth) (identity.User, error)
	Passkeys(ctx context.Context, userID string) ([]identity.Passkey, error)
	TOTPEnabled(ctx context.Context, userID string) (bool, error)
}

// accountPages is GET /account and its forms, for a browser signed in with the session cookie.
type accountPages struct {
	*browser
	svc AccountPage
}

// accountPath is the page's own path: where its forms post, and where the login sends the
// browser back to.
const accountPath = "/account"

// accountFlash is the one-line message a form's redirect back to the page names (?done=), so
// the page shows only messages of its own.
var accountFlash = map[string]string{
	"email":         "Your email was changed.",
	"email-removed": "Your email was removed.",
	"ended":         "The session was ended.",
}

type accountSessionRow struct {
	ID, Kind, Created, LastUsed, Client, Address, UserAgent string
	Current                                                 bool
}

type accountView struct {
	Style         template.CSS
	CSRF          string
	LogoutCSRF    string
	Username      string
	Email         string
	EmailVerified bool
	Sessions      []accountSessionRow
	TOTP          bool
	Passkeys      int
	Flash         string
	Error         string
	// SignedOut is the page after a password change, which ended every session, this one too.
	SignedOut bool
	LoginURL  string
}

// loginAgain is the login page, back to this page after.
func (p *accountPages) loginAgain() string {
	return p.loginURL + "?rd=" + url.QueryEscape(accountPath)
}

// page is GET /account.
func (p *accountPages) page(w http.ResponseWriter, r *http.Request) {
	in := sessionOf(r)
	s, secret := in.Resolved, in.secret
	p.render(w, r, http.StatusOK, s, secret, accountView{Flash: accountFlash[r.URL.Query().Get("done")]})
}

// render writes the page for session s, with what v already says (a message, an error).
func (p *accountPages) render(w http.ResponseWriter, r *http.Request, status int, s auth.Resolved, secret string, v accountView) {
	ctx := r.Context()
	claims, err := p.svc.Userinfo(ctx, s.UserID, identity.FirstPartyClientID, "")
	var list []auth.AccountSession
	var keys []identity.Passkey
	if err == nil {
		list, err = p.svc.AccountSessions(ctx, s.UserID, s.SessionID, "")
	}
	if err == nil {
		keys, err = p.svc.Passkeys(ctx, s.UserID)
	}
	if err == nil {
		v.TOTP, err = p.svc.TOTPEnabled(ctx, s.UserID)
	}
	if apperr.Code(err) == apperr.ENOTFOUND {
		// The user was deleted under a session not yet ended: nobody to show.
		noStore(w)
		http.Redirect(w, r, p.loginAgain(), http.StatusSeeOther)
		return
	}
	if err != nil {
		p.logger.ErrorContext(ctx, "account page", "err", err)
		noStore(w)
		http.Error(w, "Please try again.", http.StatusServiceUnavailable)
		return
	}
	v.Style, v.Username = template.CSS(loginStyle), s.Username
	v.CSRF, v.LogoutCSRF = p.keys.csrfToken("account", secret), p.keys.csrfToken("logout", secret)
	v.Email, _ = claims["email"].(string)
	v.EmailVerified, _ = claims["email_verified"].(bool)
	v.Passkeys = len(keys)
	for _, a := range list {
		row := accountSessionRow{ID: a.ID, Kind: "Browser", Created: a.CreatedAt.UTC().Format(time.DateTime) + " UTC",
			LastUsed: "not recorded", Client: a.ClientID, Address: a.RemoteAddr, UserAgent: a.UserAgent, Current: a.Current}
		if a.Kind == auth.SessionKindRefresh {
			row.Kind = "App (refresh token)"
		}
		if !a.LastUsedAt.IsZero() {
			row.LastUsed = a.LastUsedAt.UTC().Format(time.DateTime) + " UTC"
		}
		if row.Client == identity.FirstPartyClientID {
			row.Client = "this sign-in service"
		}
		if row.Address == "" {
			row.Address = "unknown"
		}
		if row.UserAgent == "" {
			row.UserAgent = "unknown"
		}
		v.Sessions = append(v.Sessions, row)
	}
	pageHeaders(w, status) // no scripts: the page's one style only
	accountPage.Execute(w, v)
}

// form is POST /account: action "email" (field email; "" removes it), "password" (fields
// current_password, new_password) or "end-session" (field id), each with the page's CSRF token
// (field csrf) and from the page's own origin. Success is a 303 back to the page with a
// one-line message; a refusal the page again with the error.
func (p *accountPages) form(w http.ResponseWriter, r *http.Request) {
	in := sessionOf(r)
	s, secret := in.Resolved, in.secret
	form, err := web.DecodeForm(w, r)
	if err != nil {
		noStore(w)
		http.Error(w, apperr.Message(err), web.Status(apperr.Code(err)))
		return
	}
	token := form.Get("csrf")
	if !p.keys.csrfOK(r, token, "account", secret) {
		noStore(w)
		http.Error(w, "Please reload the page and try again.", http.StatusForbidden)
		return
	}
	switch form.Get("action") {
	case "email":
		p.setEmail(w, r, s, secret, form.Get("email"), form.Get("current_password"))
	case "password":
		p.changePassword(w, r, s, secret, form.Get("current_password"), form.Get("new_password"))
	case "end-session":
		p.endSession(w, r, s, secret, form.Get("id"))
	default:
		noStore(w)
		http.Error(w, "Unknown action.", http.StatusBadRequest)
	}
}

// back is the form's success: the page again, by GET, with the message named by done.
func back(w http.ResponseWriter, r *http.Request, done string) {
	noStore(w)
	http.Redirect(w, r, accountPath+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}

// refused shows the page again with what went wrong: the user's to mend (the message and status
// of err), or an apology for a failure of the server's (logged).
func (p *accountPages) refused(w http.ResponseWriter, r *http.Request, s auth.Resolved, secret, what string, err error) {
	status, msg := web.Status(apperr.Code(err)), apperr.Message(err)
	switch apperr.Code(err) {
	case apperr.EINVALID, apperr.ECONFLICT, apperr.EUNAUTHORIZED, apperr.ENOTFOUND, apperr.EFORBIDDEN:
	case apperr.ETHROTTLED, apperr.EUNAVAILABLE:
		web.SetRetryAfter(w, apperr.RetryAfter(err))
		msg = "Too many attempts or the server is busy. Please wait a moment and try again."
	default:
		p.logger.ErrorContext(r.Context(), what, "err", err)
		msg = "Something went wrong. Please try again."
	}
	p.render(w, r, status, s, secret, accountView{Error: msg})
}

// setEmail changes the email once the current password proves the owner asks (the form's field;
// a sign-in within auth.FreshSignIn stands in for it when it is left empty).
func (p *accountPages) setEmail(w http.ResponseWriter, r *http.Request, s auth.Resolved, secret, email, current string) {
	u, err := p.svc.SetEmail(r.Context(), s.UserID, email, auth.Reauth{Password: current, AuthTime: s.AuthTime})
	if err != nil {
		p.refused(w, r, s, secret, "account page: email", err)
		return
	}
	if u.Email == "" {
		back(w, r, "email-removed")
		return
	}
	back(w, r, "email")
}

// changePassword is what POST /account/password does (the signup policy, the current password
// checked and throttled as a login, every session and refresh family of the user ended), from
// the browser. Since this session ends too, the answer is a page saying so, with the way to sign
// in again; the cookie is cleared.
func (p *accountPages) changePassword(w http.ResponseWriter, r *http.Request, s auth.Resolved, secret, current, next string) {
	if current == "" || next == "" {
		p.render(w, r, http.StatusBadRequest, s, secret, accountView{Error: "Give your current password and a new one."})
		return
	}
	err := p.svc.ChangePassword(r.Context(), s.UserID, current, next)
	if errors.Is(err, auth.ErrInvalidCredentials) {
		p.render(w, r, http.StatusUnauthorized, s, secret, accountView{Error: "Your current password is not right. Your password was not changed."})
		return
	}
	if err != nil {
		p.refused(w, r, s, secret, "account page: password", err)
		return
	}
	// The change ended the session in the store (its credential epoch is gone); ending it here
	// as well drops it from this process's cache at once.
	if err := p.sessions.End(r.Context(), secret); err != nil {
		p.logger.WarnContext(r.Context(), "account page: session not ended after a password change", "err", err)
	}
	http.SetCookie(w, p.cfg.cookie("", 0))
	pageHeaders(w, http.StatusOK)
	accountPage.Execute(w, accountView{Style: template.CSS(loginStyle), Username: s.Username, SignedOut: true, LoginURL: p.loginAgain()})
}

// endSession ends one of the user's sessions or refresh families. Ending this browser's own
// session signs it out: the cookie is cleared and the browser goes to the login page.
func (p *accountPages) endSession(w http.ResponseWriter, r *http.Request, s auth.Resolved, secret, id string) {
	if id == s.SessionID {
		if err := p.sessions.End(r.Context(), secret); err != nil {
			p.refused(w, r, s, secret, "account page: end this session", err)
			return
		}
		http.SetCookie(w, p.cfg.cookie("", 0))
		noStore(w)
		http.Redirect(w, r, p.loginAgain(), http.StatusSeeOther)
		return
	}
	if err := p.svc.EndAccountSession(r.Context(), s.UserID, id); err != nil {
		p.refused(w, r, s, secret, "account page: end a session", err)
		return
	}
	p.sessions.ForgetSession(id)
	back(w, r, "ended")
}
