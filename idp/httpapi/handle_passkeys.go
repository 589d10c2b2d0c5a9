package httpapi

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

//go:embed templates/passkeys.html templates/passkey.js
var passkeyFiles embed.FS

var (
	passkeysPage = template.Must(template.ParseFS(passkeyFiles, "templates/passkeys.html"))
	passkeyJS    = func() []byte {
		b, err := passkeyFiles.ReadFile("templates/passkey.js")
		if err != nil {
			panic(err)
		}
		return b
	}()
)

// PasskeySignIn is what the login's passkey button needs of the sign-in use cases.
type PasskeySignIn interface {
	BeginPasskeyLogin(ctx context.Context) (auth.PasskeyCeremony, error)
	FinishPasskeyLogin(ctx context.Context, state, body []byte) (auth.Authentication, error)
}

// Passkeys is what the account's passkey routes need of the account's use cases.
type Passkeys interface {
	BeginPasskeyRegistration(ctx context.Context, userID string) (auth.PasskeyCeremony, error)
	FinishPasskeyRegistration(ctx context.Context, userID string, state, body []byte, name string) (identity.Passkey, error)
	Passkeys(ctx context.Context, userID string) ([]identity.Passkey, error)
	TOTPEnabled(ctx context.Context, userID string) (bool, error)
	TOTP
	RemovePasskey(ctx context.Context, userID string, id []byte) error
}

// passkeyPages are the passkey routes of the browser: the login's "Sign in with a passkey" and
// the signed-in user's page of passkeys.
type passkeyPages struct {
	*browser
	signIn PasskeySignIn
	svc    Passkeys
	now    func() time.Time
}

// fresh: a session's sign-in must be recent (auth.FreshSignIn) to add a second factor from the
// browser: a session stolen or left open earlier cannot add a passkey or an authenticator app
// that would outlive a password change; the person signs in again first.
func (p *passkeyPages) fresh(s auth.Resolved) bool {
	return p.now().Sub(s.AuthTime) <= auth.FreshSignIn
}

// errNotFresh refuses a change of second factors from a session signed in too long ago.
var errNotFresh = apperr.Errorf(apperr.EFORBIDDEN, "Sign in again to change your second factors")

func servePasskeyJS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	w.Write(passkeyJS)
}

// The ceremony's state travels in a cookie MAC'd with the browser key (bound, for a
// registration, to the session), so any process finishes what another began; its expiry is in
// the state. Scoped to its routes over http, __Host- and Path=/ over https.
func (p *passkeyPages) stateCookieName(purpose string) string {
	name := "jwtidp_" + purpose
	if p.cfg.Secure {
		return "__Host-" + name
	}
	return name
}

func (p *passkeyPages) stateCookie(purpose, path, value string, maxAge time.Duration) *http.Cookie {
	if p.cfg.Secure {
		path = "/"
	}
	ck := &http.Cookie{Name: p.stateCookieName(purpose), Value: value, Path: path, HttpOnly: true, Secure: p.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge.Seconds())}
	if maxAge <= 0 {
		ck.MaxAge = -1
	}
	return ck
}

func (p *passkeyPages) sealState(purpose string, state []byte, binding string) string {
	enc := base64.RawURLEncoding.EncodeToString(state)
	return enc + "." + p.keys.mac(purpose, enc, binding)
}

func (p *passkeyPages) openState(r *http.Request, purpose, binding string) ([]byte, bool) {
	v, ok := single(r, p.stateCookieName(purpose))
	if !ok {
		return nil, false
	}
	enc, mac, ok := strings.Cut(v, ".")
	if !ok || !p.keys.equal(mac, p.keys.mac(purpose, enc, binding)) {
		return nil, false
	}
	state, err := base64.RawURLEncoding.DecodeString(enc)
	return state, err == nil
}

// ceremonyAnswer reads a ceremony's finishing post: the authenticator's answer (the body) and
// the ceremony's state from its cookie (bound to binding), which it clears — a state is good
// for one answer. false (with the error written) when either is missing.
func (p *passkeyPages) ceremonyAnswer(w http.ResponseWriter, r *http.Request, purpose, binding string) (body, state []byte, ok bool) {
	body, err := readCredential(w, r)
	if err != nil {
		web.Error(w, r, p.logger, err)
		return nil, nil, false
	}
	state, ok = p.openState(r, purpose, binding)
	http.SetCookie(w, p.stateCookie(purpose, strings.TrimSuffix(r.URL.Path, "/finish"), "", 0))
	noStore(w)
	if !ok {
		web.Error(w, r, p.logger, apperr.Errorf(apperr.EUNAUTHORIZED, "The passkey request expired; please try again"))
	}
	return body, state, ok
}

// readCredential reads a PublicKeyCredential's JSON: application/json (so another site's page
// cannot post it without a preflight), at most MaxBodyBytes.
func readCredential(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, apperr.Errorf(apperr.EUNSUPPORTED, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, web.MaxBodyBytes))
	if err != nil {
		return nil, apperr.Errorf(apperr.ETOOLARGE, "Request body is larger than %d bytes", web.MaxBodyBytes)
	}
	return body, nil
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

// loginBegin starts a passkey sign-in from the login form: its CSRF token must match the
// browser's cookie, as the password's post.
func (p *passkeyPages) loginBegin(w http.ResponseWriter, r *http.Request) {
	form, err := web.DecodeForm(w, r)
	if err != nil {
		web.Error(w, r, p.logger, err)
		return
	}
	if !p.loginCSRFOK(r, form.Get("csrf")) {
		web.Error(w, r, p.logger, apperr.Errorf(apperr.EFORBIDDEN, "Your sign-in form expired. Please reload the page."))
		return
	}
	c, err := p.signIn.BeginPasskeyLogin(r.Context())
	if err != nil {
		p.logger.ErrorContext(r.Context(), "passkey login begin", "err", err)
		web.Error(w, r, p.logger, apperr.Errorf(apperr.EUNAVAILABLE, "Something went wrong. Please try again."))
		return
	}
	http.SetCookie(w, p.stateCookie("passkey_login", strings.TrimSuffix(r.URL.Path, "/begin"), p.sealState("passkey_login", c.State, ""), auth.PasskeyCeremonyTTL))
	noStore(w)
	web.WriteJSON(w, http.StatusOK, json.RawMessage(c.Options))
}

// PasskeyLoginResult is where the browser goes after a passkey sign-in.
type PasskeyLoginResult struct {
	Redirect string `json:"redirect"`
}

// loginFinish checks the assertion and, when it is good, starts a session, as a password
// sign-in does (with the passkey's amr), and says where to go (rd, checked).
func (p *passkeyPages) loginFinish(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		web.Error(w, r, p.logger, apperr.Errorf(apperr.EFORBIDDEN, "Cross-origin request refused"))
		return
	}
	body, state, ok := p.ceremonyAnswer(w, r, "passkey_login", "")
	if !ok {
		return
	}
	rd := p.rv.Safe(r.URL.Query().Get("rd"))
	a, err := p.signIn.FinishPasskeyLogin(r.Context(), state, body)
	var signed auth.Signed
	if err == nil {
		signed, err = p.auth.Complete(r.Context(), a, auth.Target{Browser: true, UserAgent: r.UserAgent()})
	}
	if err != nil {
		if apperr.Code(err) == apperr.EINTERNAL || apperr.Code(err) == "" {
			p.logger.ErrorContext(r.Context(), "passkey login", "err", err)
		}
		web.Error(w, r, p.logger, err)
		return
	}
	http.SetCookie(w, p.cfg.cookie(signed.Secret, p.cfg.TTL))
	web.WriteJSON(w, http.StatusOK, PasskeyLoginResult{Redirect: rd})
}

// scriptPost is the signed-in session of a post from the passkey page's script, whose CSRF token
// it checks; false (with the error written) when the token is not the page's.
func (p *passkeyPages) scriptPost(w http.ResponseWriter, r *http.Request) (auth.Resolved, string, bool) {
	in := sessionOf(r)
	if !p.csrfOK(r, in.secret, "") {
		web.Error(w, r, p.logger, apperr.Errorf(apperr.EFORBIDDEN, "Please reload the page."))
		return auth.Resolved{}, "", false
	}
	return in.Resolved, in.secret, true
}

// csrfOK checks a passkey page post: its token (a form field or the X-CSRF-Token header) and
// that the browser does not say it came from elsewhere.
func (p *passkeyPages) csrfOK(r *http.Request, secret, token string) bool {
	if token == "" {
		token = r.Header.Get("X-CSRF-Token")
	}
	return p.keys.csrfOK(r, token, "passkeys", secret)
}

type passkeyRow struct {
	ID, Name, Created, LastUsed string
}

type passkeysView struct {
	Style    template.CSS
	Username string
	CSRF     string
	Passkeys []passkeyRow
	Error    string
	// The authenticator app (TOTP): on, being set up (its QR code and secret), or just confirmed
	// (the recovery codes, shown this once).
	TOTP          bool
	TOTPQR        template.URL
	TOTPSecret    string
	RecoveryCodes []string
}

// page is the signed-in user's second factors: the passkeys, a list with a remove button each,
// and "Add a passkey"; the authenticator app, with "Set up" while it is off.
func (p *passkeyPages) page(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, sessionOf(r).Resolved, passkeysView{})
}

// render writes the page for session s, with what v already says (an error, a TOTP set-up).
func (p *passkeyPages) render(w http.ResponseWriter, r *http.Request, s auth.Resolved, v passkeysView) {
	keys, err := p.svc.Passkeys(r.Context(), s.UserID)
	if err == nil {
		v.TOTP, err = p.svc.TOTPEnabled(r.Context(), s.UserID)
	}
	if err != nil {
		p.logger.ErrorContext(r.Context(), "passkeys page", "err", err)
		http.Error(w, "Please try again.", http.StatusServiceUnavailable)
		return
	}
	v.Style, v.Username, v.CSRF = template.CSS(loginStyle), s.Username, p.keys.csrfToken("passkeys", p.cfg.secret(r))
	for _, k := range keys {
		row := passkeyRow{ID: base64.RawURLEncoding.EncodeToString(k.ID), Name: k.Name, Created: k.CreatedAt.UTC().Format(time.DateTime), LastUsed: "never"}
		if !k.LastUsedAt.IsZero() {
			row.LastUsed = k.LastUsedAt.UTC().Format(time.DateTime)
		}
		v.Passkeys = append(v.Passkeys, row)
	}
	pageHeadersCSP(w, http.StatusOK, scriptCSP) // the passkey script and the QR code
	passkeysPage.Execute(w, v)
}

func (p *passkeyPages) registerBegin(w http.ResponseWriter, r *http.Request) {
	s, secret, ok := p.scriptPost(w, r)
	if !ok {
		return
	}
	if !p.fresh(s) {
		web.Error(w, r, p.logger, errNotFresh)
		return
	}
	c, err := p.svc.BeginPasskeyRegistration(r.Context(), s.UserID)
	if err != nil {
		web.Error(w, r, p.logger, err)
		return
	}
	http.SetCookie(w, p.stateCookie("passkey_register", strings.TrimSuffix(r.URL.Path, "/begin"), p.sealState("passkey_register", c.State, auth.HashSecret(secret)), auth.PasskeyCeremonyTTL))
	noStore(w)
	web.WriteJSON(w, http.StatusOK, json.RawMessage(c.Options))
}

// PasskeyInfo is a registered passkey as the API shows it.
type PasskeyInfo struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

func (p *passkeyPages) registerFinish(w http.ResponseWriter, r *http.Request) {
	s, secret, ok := p.scriptPost(w, r)
	if !ok {
		return
	}
	body, state, ok := p.ceremonyAnswer(w, r, "passkey_register", auth.HashSecret(secret))
	if !ok {
		return
	}
	k, err := p.svc.FinishPasskeyRegistration(r.Context(), s.UserID, state, body, r.URL.Query().Get("name"))
	if err != nil {
		web.Error(w, r, p.logger, err)
		return
	}
	web.Success(w, http.StatusCreated, PasskeyInfo{ID: base64.RawURLEncoding.EncodeToString(k.ID), Name: k.Name, CreatedAt: k.CreatedAt})
}

// postedForm reads a form posted from the page and checks its CSRF token; false (with the
// answer written) when it cannot be read or its token is not the page's.
func (p *passkeyPages) postedForm(w http.ResponseWriter, r *http.Request) (url.Values, auth.Resolved, bool) {
	form, err := web.DecodeForm(w, r)
	if err != nil {
		http.Error(w, apperr.Message(err), web.Status(apperr.Code(err)))
		return nil, auth.Resolved{}, false
	}
	in := sessionOf(r)
	if !p.csrfOK(r, in.secret, form.Get("csrf")) {
		http.Error(w, "Please reload the page and try again.", http.StatusForbidden)
		return nil, auth.Resolved{}, false
	}
	return form, in.Resolved, true
}

// removeForm is the page's remove button: a form post with the page's CSRF token.
func (p *passkeyPages) removeForm(w http.ResponseWriter, r *http.Request) {
	form, s, ok := p.postedForm(w, r)
	if !ok {
		return
	}
	if id, err := base64.RawURLEncoding.DecodeString(form.Get("id")); err == nil {
		if err := p.svc.RemovePasskey(r.Context(), s.UserID, id); err != nil && apperr.Code(err) != apperr.ENOTFOUND {
			p.logger.ErrorContext(r.Context(), "passkey remove", "err", err)
			http.Error(w, "Could not remove the passkey; please try again.", http.StatusServiceUnavailable)
			return
		}
	}
	noStore(w)
	http.Redirect(w, r, "../passkeys", http.StatusSeeOther) // from /account/passkeys/remove
}

// removeBearer is DELETE /account/passkeys/{id} for first-party Bearer clients.
func (p *passkeyPages) removeBearer(w http.ResponseWriter, r *http.Request) {
	c, _ := jwtauth.FromContext(r.Context())
	id, err := base64.RawURLEncoding.DecodeString(r.PathValue("id"))
	if err != nil {
		web.Error(w, r, p.logger, identity.ErrPasskeyNotFound)
		return
	}
	if err := p.svc.RemovePasskey(r.Context(), c.Subject, id); err != nil {
		web.Error(w, r, p.logger, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
