package httpapi

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

// The edge's pages: the step-up, where a signed-in user whose session has one factor adds a
// second for an access rule that asks for two (/verify's X-Auth-Redirect sends them to
// /login/stepup?rd=…), and the login page's "not allowed", for a signed-in user the rules
// refuse the page they came from (a 403 from /verify sends them to /login?rd=…).

var stepUpPage = template.Must(template.ParseFS(templates, "templates/stepup.html"))

type stepUpView struct {
	Style    template.CSS
	RD       string
	Username string
	Error    string // for the code's form
	Base     string // the way from the page's path to the root
	Account  string // the IdP's own second-factor page: absolute, since a proxy may serve /login/ on an app's host and nothing else of the IdP
	Denied   bool   // the rules refuse this user the page: say so
	Setup    bool   // the user has no second factor yet
	Passkey  bool   // the user's second factor is a passkey: sign in again with it
}

// SecondFactors is what the step-up needs to know of the user's second factors.
type SecondFactors interface {
	TOTPEnabled(ctx context.Context, userID string) (bool, error)
	Passkeys(ctx context.Context, userID string) ([]identity.Passkey, error)
}

// StepUpper checks the second factor a signed-in user adds to their session (auth.SignIn).
type StepUpper interface {
	StepUp(ctx context.Context, s auth.Resolved, code string, device auth.Device) (auth.Authentication, error)
}

type stepUpPages struct {
	*browser
	factors SecondFactors
	stepUp  StepUpper
	account string // the URL of the IdP's second-factor page
}

// session resolves the browser's session; without one the browser goes to the login page
// (which comes back to rd), and when the store cannot say, a wait page. false: answered.
func (p *stepUpPages) session(w http.ResponseWriter, r *http.Request, rd string) (auth.Resolved, string, bool) {
	secret := p.cfg.secret(r)
	s, err := p.sessions.Resolve(r.Context(), secret)
	if err != nil {
		toLogin(p.loginURL, rd)(w, r, p.unavailable(r, "step-up: resolve session", err))
		return s, "", false
	}
	return s, secret, true
}

// unavailable logs err unless it is no session, and is what the browser is told of it.
func (p *stepUpPages) unavailable(r *http.Request, what string, err error) error {
	if errors.Is(err, auth.ErrNoSession) {
		return err
	}
	p.logger.ErrorContext(r.Context(), what, "err", err)
	return apperr.Errorf(apperr.EUNAVAILABLE, "Please try again.")
}

// page is GET /login/stepup: the form for a code, or what the user must do instead; a session
// that already has two factors goes on to rd.
func (p *stepUpPages) page(w http.ResponseWriter, r *http.Request) {
	rd := p.rv.Safe(r.URL.Query().Get("rd"))
	s, _, ok := p.session(w, r, rd)
	if !ok {
		return
	}
	if slices.Contains(s.AMR, auth.AMRMultiFactor) {
		noStore(w)
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return
	}
	p.render(w, r, s, http.StatusOK, stepUpView{RD: rd})
}

// post is POST /login/stepup: a right code makes a session with two factors through the one
// finisher (auth.SignIn.Complete), ends the one-factor session, and goes on to rd.
func (p *stepUpPages) post(w http.ResponseWriter, r *http.Request) {
	form, err := web.DecodeForm(w, r)
	if err != nil {
		noStore(w)
		http.Error(w, "The form could not be read. Please try again.", web.Status(apperr.Code(err)))
		return
	}
	rd := p.rv.Safe(form.Get("rd"))
	s, secret, ok := p.session(w, r, rd)
	if !ok {
		return
	}
	if !p.loginCSRFOK(r, form.Get("csrf")) {
		p.render(w, r, s, http.StatusForbidden, stepUpView{RD: rd, Error: "Your form expired. Please try again."})
		return
	}
	a, err := p.stepUp.StepUp(r.Context(), s, form.Get("otp"), p.keys.device(r, s.Username))
	var signed auth.Signed
	if err == nil {
		signed, err = p.auth.Complete(r.Context(), a, auth.Target{Browser: true, UserAgent: r.UserAgent()})
	}
	if err != nil {
		status, msg := p.loginRefusal(w, r, "step-up", err, "That code is not valid. Please try again.")
		p.render(w, r, s, status, stepUpView{RD: rd, Error: msg})
		return
	}
	// The browser holds only the new session; the one-factor one must not outlive it.
	if err := p.sessions.End(r.Context(), secret); err != nil {
		p.logger.WarnContext(r.Context(), "step-up: the one-factor session not ended", "sid", s.SessionID, "err", err)
	}
	p.signedIn(w, r, signed, rd)
}

// render writes the step-up page for the user's second factors: a code's form for TOTP, a way
// back to the login for a passkey, or the advice to set one up.
func (p *stepUpPages) render(w http.ResponseWriter, r *http.Request, s auth.Resolved, status int, v stepUpView) {
	totp, err := p.factors.TOTPEnabled(r.Context(), s.UserID)
	var keys []identity.Passkey
	if err == nil && !totp {
		keys, err = p.factors.Passkeys(r.Context(), s.UserID)
	}
	if err != nil {
		noStore(w)
		pageError(w, p.unavailable(r, "step-up: second factors", err))
		return
	}
	switch {
	case totp: // the login's own second step, posted here
		pageHeaders(w, status)
		otpPage.Execute(w, loginView{Style: template.CSS(loginStyle), Action: "stepup", CSRF: p.loginCSRF(w, r), RD: v.RD, Error: v.Error})
		return
	case len(keys) > 0:
		v.Passkey = true
	default:
		v.Setup = true
	}
	v.Username, v.Base, v.Account = s.Username, "../", p.account
	p.writeEdgePage(w, status, v)
}

func (b *browser) writeEdgePage(w http.ResponseWriter, status int, v stepUpView) {
	v.Style = template.CSS(loginStyle)
	pageHeaders(w, status)
	stepUpPage.Execute(w, v)
}

// notAllowed: the browser has a session and the access rules refuse its user the page rd
// names (as a GET from this client), so the login page says so rather than asking them to sign
// in again. Only an absolute rd the login would follow counts — what /verify names, the
// original URL — never the login's default. It is decided here, from the session and the
// rules, not from anything the link says, so a link cannot make the page claim a refusal that
// is not one.
func (b *browser) notAllowed(r *http.Request, rd string) (auth.Resolved, bool) {
	if b.access == nil || rd == "" || b.rv.Safe(rd) != rd {
		return auth.Resolved{}, false
	}
	p := b.access()
	u, err := url.Parse(rd)
	if p == nil || err != nil || u.Host == "" {
		return auth.Resolved{}, false
	}
	req, err := access.NewRequest(u.Host, u.RequestURI(), http.MethodGet, b.addrs.Of(r))
	if err != nil {
		return auth.Resolved{}, false
	}
	s, err := b.sessions.Resolve(r.Context(), b.cfg.secret(r))
	if err != nil {
		return auth.Resolved{}, false
	}
	return s, p.Decide(req, subjectOf(s, true)) == access.Forbidden
}
