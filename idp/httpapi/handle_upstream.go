package httpapi

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/upstream"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

// Sign-in through an upstream OpenID provider (a connector of type oidc):
//
//	GET  /login/upstream/{id}?rd=…     a random state in a MACed, short-lived cookie scoped to the
//	                                   callback; nonce and PKCE verifier derived from the state by
//	                                   HMAC under the browser key; off to the upstream
//	GET  /login/upstream/{id}/callback the state must be the cookie's (single use); the code is
//	                                   redeemed and the ID token checked by the connector; then
//	                                   auth.Federated and Complete, as a password sign-in ends
//	POST /login/upstream/link          link: existing — the local account's password, once
//
// The authorization request a login page serves travels in rd (/authorize/continue?id=…), so
// the flow comes back to it as the password form does.

//go:embed templates/upstream.html
var upstreamFS embed.FS

var upstreamPage = template.Must(template.ParseFS(upstreamFS, "templates/upstream.html"))

// upstreamFlowTTL is how long the browser may take at the upstream.
const upstreamFlowTTL = 10 * time.Minute

// Federator is what the upstream pages need of the sign-in use cases.
type Federator interface {
	Federated(ctx context.Context, connector string, id upstream.Identity) (auth.Authentication, error)
	LinkExisting(ctx context.Context, ticket string, c auth.Credentials) (auth.Authentication, error)
}

// readier is a connector that can say why it cannot start a flow (the oidc one: discovery).
type readier interface {
	Ready(ctx context.Context) error
}

type upstreamPages struct {
	*browser
	connectors map[string]upstream.RedirectConnector
	configs    map[string]upstream.Config
	statuses   *upstream.Statuses
	fed        Federator
	now        func() time.Time
}

func newUpstreamPages(b *browser, d Deps) *upstreamPages {
	p := &upstreamPages{browser: b, connectors: d.Upstreams, configs: map[string]upstream.Config{}, statuses: d.UpstreamStatuses,
		fed: d.Auth.SignIn, now: d.Now}
	for _, c := range d.UpstreamConfigs {
		p.configs[c.ID] = c
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// upstreamButtons are the login page's "Sign in with NAME" links: one per oidc connector.
func upstreamButtons(cs []upstream.Config) []upstreamButton {
	var out []upstreamButton
	for _, c := range cs {
		if c.Type == upstream.TypeOIDC {
			out = append(out, upstreamButton{ID: c.ID, Name: c.Name})
		}
	}
	return out
}

type upstreamButton struct {
	ID, Name string
	Href     string // filled per page: relative to it, with its rd
}

// stateCookieName is the flow's cookie: __Host- over https, so a sibling subdomain cannot plant
// its own flow's cookie in the browser (a login CSRF: the victim would finish the attacker's
// upstream sign-in), which a __Secure- cookie scoped to the callback's path would allow.
func (p *upstreamPages) stateCookieName() string {
	if p.cfg.Secure {
		return "__Host-jwtidp_upstream"
	}
	return "jwtidp_upstream"
}

// loginRequest is r as the login form's own request (its path /login, or whatever prefix it
// is served under): for the cookies that live on the login's path.
func loginRequest(r *http.Request) *http.Request {
	lr := r.Clone(r.Context())
	if before, _, ok := strings.Cut(r.URL.Path, "/upstream/"); ok {
		lr.URL.Path = before
	}
	return lr
}

// stateValue is the cookie: the state, the connector, rd and the expiry, MACed together.
func (p *upstreamPages) stateValue(id, state, rd string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	enc := base64.RawURLEncoding.EncodeToString
	return state + "." + enc([]byte(rd)) + "." + e + "." + p.keys.mac("upstream-state", id, state, rd, e)
}

// readState checks the cookie for connector id: its state and rd, ok false when it is missing,
// forged, another connector's or expired.
func (p *upstreamPages) readState(r *http.Request, id string) (state, rd string, ok bool) {
	v, found := single(r, p.stateCookieName())
	if !found {
		return "", "", false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 4 {
		return "", "", false
	}
	rdb, err := base64.RawURLEncoding.DecodeString(parts[1])
	exp, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || err2 != nil || !p.keys.equal(parts[3], p.keys.mac("upstream-state", id, parts[0], string(rdb), parts[2])) {
		return "", "", false
	}
	if !p.now().Before(time.Unix(exp, 0)) {
		return "", "", false
	}
	return parts[0], string(rdb), true
}

func (p *upstreamPages) stateCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	path := r.URL.Path
	if !strings.HasSuffix(path, "/callback") {
		path += "/callback"
	}
	if p.cfg.Secure {
		path = "/" // a __Host- cookie's
	}
	ck := &http.Cookie{Name: p.stateCookieName(), Value: value, Path: path, HttpOnly: true, Secure: p.cfg.Secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge.Seconds())}
	if maxAge <= 0 {
		ck.MaxAge = -1
	}
	return ck
}

// nonce and verifier are derived from the state: nobody without the browser key can tell them,
// and the browser holds only the state.
func (p *upstreamPages) nonce(state string) string    { return p.keys.mac("upstream-nonce", state) }
func (p *upstreamPages) verifier(state string) string { return p.keys.mac("upstream-pkce", state) }

type upstreamErrorView struct {
	Style   template.CSS
	Title   string
	Message string
	Back    string
}

// errorPage is a failure's page, with a link back to the login page (and rd).
func (p *upstreamPages) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg, rd string) {
	back := strings.TrimSuffix(loginRequest(r).URL.Path, "/")
	if rd != "" {
		back += "?" + url.Values{"rd": {rd}}.Encode()
	}
	pageHeaders(w, status)
	upstreamPage.ExecuteTemplate(w, "error", upstreamErrorView{Style: template.CSS(loginStyle), Title: title, Message: msg, Back: back})
}

func (p *upstreamPages) name(id string) string {
	if c, ok := p.configs[id]; ok && c.Name != "" {
		return c.Name
	}
	return id
}

// start is GET /login/upstream/{id}.
func (p *upstreamPages) start(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rd := p.rv.Safe(r.URL.Query().Get("rd"))
	rc, ok := p.connectors[id]
	if !ok {
		p.errorPage(w, r, http.StatusNotFound, "Unknown sign-in", "There is no such way to sign in here.", rd)
		return
	}
	if rr, ok := rc.(readier); ok {
		if err := rr.Ready(r.Context()); err != nil {
			p.statuses.Record(id, p.now(), err)
			p.logger.WarnContext(r.Context(), "upstream sign-in: start", "connector", id, "err", err)
			p.errorPage(w, r, http.StatusServiceUnavailable, p.name(id)+" is unavailable",
				p.name(id)+" cannot be reached right now. Try again later, or sign in with your username and password.", rd)
			return
		}
	}
	state := randomID(32)
	to := rc.AuthCodeURL(state, p.nonce(state), p.verifier(state))
	if to == "" {
		p.statuses.Record(id, p.now(), upstream.ErrUnavailable)
		p.errorPage(w, r, http.StatusServiceUnavailable, p.name(id)+" is unavailable",
			p.name(id)+" cannot be reached right now. Try again later, or sign in with your username and password.", rd)
		return
	}
	http.SetCookie(w, p.stateCookie(r, p.stateValue(id, state, rd, p.now().Add(upstreamFlowTTL)), upstreamFlowTTL))
	noStore(w)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// callback is GET /login/upstream/{id}/callback.
func (p *upstreamPages) callback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := p.connectors[id]; !ok {
		p.errorPage(w, r, http.StatusNotFound, "Unknown sign-in", "There is no such way to sign in here.", "")
		return
	}
	q := r.URL.Query()
	state, rd, ok := p.readState(r, id)
	if !ok || q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		// Not this browser's flow (or an expired one): nothing is done, and the cookie stays
		// for the real callback, when there is one.
		p.errorPage(w, r, http.StatusBadRequest, "Sign-in expired",
			"This sign-in did not start in this browser, or it took too long. Please start again.", rd)
		return
	}
	http.SetCookie(w, p.stateCookie(r, "", 0)) // single use
	rc := p.connectors[id]
	if e := q.Get("error"); e != "" {
		p.logger.InfoContext(r.Context(), "upstream sign-in: the upstream answered an error", "connector", id, "error", short(e))
		p.errorPage(w, r, http.StatusUnauthorized, "Sign-in cancelled",
			p.name(id)+" did not sign you in ("+short(e)+").", rd)
		return
	}
	ident, err := rc.Exchange(r.Context(), q.Get("code"), p.verifier(state), p.nonce(state))
	p.statuses.Record(id, p.now(), err)
	if err != nil {
		p.refuse(w, r, id, rd, err)
		return
	}
	a, err := p.fed.Federated(r.Context(), id, ident)
	if ln := (*auth.LinkNeeded)(nil); errors.As(err, &ln) {
		p.renderLink(w, r, http.StatusOK, linkView{Ticket: ln.Ticket, Connector: id, RD: rd, Upstream: ln.Upstream})
		return
	}
	if err != nil {
		p.refuse(w, r, id, rd, err)
		return
	}
	p.finish(w, r, a, rd)
}

// refuse is the page for a failed upstream sign-in: the upstream down, or its answer or our
// rules refusing it. The detail goes to the log only.
func (p *upstreamPages) refuse(w http.ResponseWriter, r *http.Request, id, rd string, err error) {
	switch apperr.Code(err) {
	case apperr.EUNAVAILABLE, apperr.ETHROTTLED:
		p.logger.WarnContext(r.Context(), "upstream sign-in: unavailable", "connector", id, "err", err)
		web.SetRetryAfter(w, apperr.RetryAfter(err))
		p.errorPage(w, r, web.Status(apperr.Code(err)), p.name(id)+" is unavailable",
			p.name(id)+" cannot be reached right now. Try again later, or sign in with your username and password.", rd)
	case apperr.EUNAUTHORIZED, apperr.EFORBIDDEN, apperr.EINVALID, apperr.ECONFLICT:
		p.logger.InfoContext(r.Context(), "upstream sign-in: refused", "connector", id, "err", err)
		if errors.Is(err, auth.ErrSecondFactorRequired) || errors.Is(err, auth.ErrAlreadyLinked) {
			// Ours to say, and the person can act on it (the upstream's reasons are not shown).
			p.errorPage(w, r, web.Status(apperr.Code(err)), "Sign-in refused", apperr.Message(err), rd)
			return
		}
		p.errorPage(w, r, web.Status(apperr.Code(err)), "Sign-in refused", "The sign-in with "+p.name(id)+" was refused.", rd)
	default:
		p.logger.ErrorContext(r.Context(), "upstream sign-in", "connector", id, "err", err)
		p.errorPage(w, r, web.Status(apperr.Code(err)), "Sign-in failed", "Something went wrong. Please try again.", rd)
	}
}

// finish ends an upstream sign-in as handle_login ends a password one: the second factor's page
// when one is owed, else the session and device cookies and the way on.
func (p *upstreamPages) finish(w http.ResponseWriter, r *http.Request, a auth.Authentication, rd string) {
	lr := loginRequest(r)
	signed, err := p.auth.Complete(r.Context(), a, auth.Target{Browser: true, UserAgent: r.UserAgent()})
	if err != nil {
		p.refuse(w, r, a.IDP, rd, err)
		return
	}
	if signed.Pending {
		http.SetCookie(w, p.pendingCookie(lr, signed.Secret, auth.PendingTTL))
		v := loginView{RD: rd, CSRF: p.loginCSRF(w, lr), Style: template.CSS(loginStyle), Action: p.toLogin(r) + "/otp"}
		pageHeaders(w, http.StatusOK)
		otpPage.Execute(w, v)
		return
	}
	p.signedIn(w, lr, signed, rd)
}

// toLogin is the login form's path, absolute on this host.
func (p *upstreamPages) toLogin(r *http.Request) string { return loginRequest(r).URL.Path }

type linkView struct {
	Style     template.CSS
	Action    string
	CSRF      string
	RD        string
	Ticket    string
	Connector string
	Name      string
	Upstream  string // how the upstream names the person: whose account would be linked
	Username  string
	Error     string
}

func (p *upstreamPages) renderLink(w http.ResponseWriter, r *http.Request, status int, v linkView) {
	lr := loginRequest(r)
	v.Style, v.Action, v.Name = template.CSS(loginStyle), lr.URL.Path+"/upstream/link", p.name(v.Connector)
	v.CSRF = p.linkCSRF(w, lr, v.Ticket)
	pageHeaders(w, status)
	upstreamPage.ExecuteTemplate(w, "link", v)
}

// linkCSRF is the link form's token, bound to the login's CSRF cookie (set here when the
// browser has none, as loginCSRF does) and to the ticket.
func (p *upstreamPages) linkCSRF(w http.ResponseWriter, lr *http.Request, ticket string) string {
	name := p.cfg.csrfCookieName()
	secret, ok := single(lr, name)
	if !ok || !auth.ValidSecret(secret) {
		secret = randomID(32)
		path := lr.URL.Path
		if p.cfg.Secure {
			path = "/"
		}
		http.SetCookie(w, &http.Cookie{Name: name, Value: secret, Path: path, HttpOnly: true, Secure: p.cfg.Secure,
			SameSite: http.SameSiteStrictMode, MaxAge: int(time.Hour.Seconds())})
	}
	return p.keys.csrfToken("upstream-link", secret, ticket)
}

// link is POST /login/upstream/link: the local account's password proves the person may link
// the upstream identity the ticket names.
func (p *upstreamPages) link(w http.ResponseWriter, r *http.Request) {
	form, err := web.DecodeForm(w, r)
	if err != nil {
		p.errorPage(w, r, web.Status(apperr.Code(err)), "Sign-in failed", "The form could not be read. Please start again.", "")
		return
	}
	rd := p.rv.Safe(form.Get("rd"))
	connector := form.Get("connector")
	if _, ok := p.configs[connector]; !ok {
		connector = ""
	}
	secret, ok := single(r, p.cfg.csrfCookieName())
	if !ok || !auth.ValidSecret(secret) || !p.keys.csrfOK(r, form.Get("csrf"), "upstream-link", secret, form.Get("ticket")) {
		p.errorPage(w, r, http.StatusForbidden, "Sign-in expired", "Your sign-in form expired. Please start again.", rd)
		return
	}
	username := form.Get("username")
	lr := loginRequest(r)
	a, err := p.fed.LinkExisting(r.Context(), form.Get("ticket"), auth.Credentials{
		Username: username, Password: form.Get("password"), Device: p.keys.device(lr, username), OTP: form.Get("otp"),
	})
	if errors.Is(err, auth.ErrSecondFactorRequired) || errors.Is(err, auth.ErrAlreadyLinked) {
		p.refuse(w, r, connector, rd, err) // the account is proven: what is wrong is not the form's
		return
	}
	if err != nil {
		invalid := "Invalid username or password."
		if errors.Is(err, auth.ErrOTPRequired) {
			invalid = "Your account has an authenticator app: give its one-time code (or a recovery code) as well."
		}
		status, msg := p.loginRefusal(w, r, "upstream sign-in: link", err, invalid)
		p.renderLink(w, r, status, linkView{Ticket: form.Get("ticket"), Connector: connector, RD: rd, Username: username,
			Upstream: form.Get("upstream"), Error: msg})
		return
	}
	p.finish(w, r, a, rd)
}

// short keeps an upstream's words to a line of letters, digits and _.-
func short(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' {
			return c
		}
		return '_'
	}, s)
}

// handleConnectors is GET /admin/connectors: each connector's last success and error.
func handleConnectors(st *upstream.Statuses) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusOK, st.List())
	})
}
