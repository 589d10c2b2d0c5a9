package httpapi

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

//go:embed templates/device.html
var deviceTemplates embed.FS

var devicePage = template.Must(template.ParseFS(deviceTemplates, "templates/device.html"))

// DeviceAuthorizer is what the device grant's endpoints need of the use cases (RFC 8628).
type DeviceAuthorizer interface {
	AuthorizeDevice(ctx context.Context, r auth.DeviceRequest) (auth.DeviceAuthorization, error)
	FindDeviceCode(ctx context.Context, typed string) (auth.DevicePrompt, error)
	DevicePrompt(ctx context.Context, typed string) (auth.DevicePrompt, error)
	AnswerDevice(ctx context.Context, typed string, by auth.Resolved, approve bool) error
}

// DeviceAuthorizationResponse is /device/authorize's answer (RFC 8628 §3.2), which idp login
// --device reads too.
type DeviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// handleDeviceAuthorize is POST /device/authorize (RFC 8628 §3.1–3.2): the client authenticates
// as at /token; its refusals are the token endpoint's.
func handleDeviceAuthorize(logger *slog.Logger, svc DeviceAuthorizer, issuer string) http.Handler {
	verify := strings.TrimSuffix(issuer, "/") + "/device"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, status, problem := readForm(w, r)
		if problem == "" {
			for _, p := range []string{"client_id", "scope", "resource"} {
				if len(form[p]) > 1 {
					status, problem = http.StatusBadRequest, p+" is given more than once"
				}
			}
		}
		if problem != "" {
			writeOAuthError(w, status, "invalid_request", problem)
			return
		}
		client, ok := requestClient(w, r, form, true)
		if !ok {
			return
		}
		a, err := svc.AuthorizeDevice(r.Context(), auth.DeviceRequest{Client: client, Scope: form.Get("scope"), Resource: form.Get("resource")})
		if err != nil {
			grantFailure(w, r, logger, "device authorization", err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		web.WriteJSON(w, http.StatusOK, DeviceAuthorizationResponse{
			DeviceCode: a.DeviceCode, UserCode: a.UserCode, VerificationURI: verify,
			VerificationURIComplete: verify + "?user_code=" + url.QueryEscape(a.UserCode), ExpiresIn: a.ExpiresIn, Interval: a.Interval,
		})
	})
}

// devicePages are GET and POST /device: a person enters the code a device shows (no sign-in
// needed to see the form), signs in (the login page sends them back with the code), sees the
// client and its scopes, and approves or denies.
type devicePages struct {
	b         *browser
	svc       DeviceAuthorizer
	path      string
	scopeText map[string]string
}

type deviceView struct {
	Style      template.CSS
	Action     string
	Error      string
	CSRF       string
	UserCode   string
	ClientName string
	Username   string
	Scopes     []string
	Done       string
	Advice     string
}

func (p *devicePages) render(w http.ResponseWriter, status int, v deviceView) {
	v.Style, v.Action = template.CSS(loginStyle), p.path
	pageHeaders(w, status)
	devicePage.Execute(w, v)
}

// page is GET /device: without user_code the entry form; with one (typed, or from
// verification_uri_complete) the signed-in person's confirmation page. A code that is not
// pending shows the form again with a 400; every lookup is throttled per address
// (auth.FindDeviceCode) on top of the per-client rate limit of the route.
func (p *devicePages) page(w http.ResponseWriter, r *http.Request) {
	typed := r.URL.Query().Get("user_code")
	if typed == "" {
		p.render(w, http.StatusOK, deviceView{})
		return
	}
	p.b.requireSession(toLogin(p.b.loginURL, ""), func(w http.ResponseWriter, r *http.Request) {
		s := sessionOf(r)
		prompt, err := p.svc.FindDeviceCode(r.Context(), typed)
		switch {
		case errors.Is(err, auth.ErrNoDeviceCode):
			p.render(w, http.StatusBadRequest, deviceView{Error: apperr.Message(err)})
			return
		case apperr.Code(err) == apperr.ETHROTTLED:
			web.SetRetryAfter(w, apperr.RetryAfter(err))
			p.render(w, http.StatusTooManyRequests, deviceView{Error: "Too many codes tried. Please wait a while and try again."})
			return
		case err != nil:
			p.unavailable(w, r, err)
			return
		}
		v := deviceView{UserCode: identity.FormatUserCode(prompt.UserCode), ClientName: prompt.Client.Name, Username: s.Username,
			CSRF: p.b.keys.csrfToken("device", s.secret, prompt.UserCode)}
		if v.ClientName == "" {
			v.ClientName = prompt.Client.ID
		}
		for _, sc := range prompt.Scopes {
			if t, ok := p.scopeText[sc]; ok {
				v.Scopes = append(v.Scopes, t)
			} else {
				v.Scopes = append(v.Scopes, sc)
			}
		}
		p.render(w, http.StatusOK, v)
	}).ServeHTTP(w, r)
}

// answer is POST /device: the confirmation page's decision, with its CSRF token bound to the
// session and to the code (so only a code the person's own lookup found can be answered).
func (p *devicePages) answer(w http.ResponseWriter, r *http.Request) {
	form, err := web.DecodeForm(w, r)
	if err != nil {
		p.render(w, web.Status(apperr.Code(err)), deviceView{Error: apperr.Message(err)})
		return
	}
	s := sessionOf(r)
	code, ok := identity.NormalizeUserCode(form.Get("user_code"))
	if !ok || !p.b.keys.csrfOK(r, form.Get("csrf"), "device", s.secret, code) {
		p.render(w, http.StatusForbidden, deviceView{Error: "The form expired or did not come from this site. Please enter the code again."})
		return
	}
	decision := form.Get("decision")
	if decision != "approve" && decision != "deny" {
		p.render(w, http.StatusBadRequest, deviceView{Error: "Please choose Approve or Deny."})
		return
	}
	err = p.svc.AnswerDevice(r.Context(), code, s.Resolved, decision == "approve")
	switch {
	case errors.Is(err, auth.ErrNoDeviceCode):
		p.render(w, http.StatusBadRequest, deviceView{Error: apperr.Message(err)})
	case err != nil:
		p.unavailable(w, r, err)
	case decision == "approve":
		p.render(w, http.StatusOK, deviceView{Done: "Device connected", Advice: "You may close this page and go back to your device."})
	default:
		p.render(w, http.StatusOK, deviceView{Done: "Request denied", Advice: "The device was not given access to your account."})
	}
}

func (p *devicePages) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	if apperr.Code(err) != apperr.EUNAVAILABLE {
		p.b.logger.ErrorContext(r.Context(), "device page", "err", err)
	}
	web.SetRetryAfter(w, apperr.RetryAfter(err))
	p.render(w, http.StatusServiceUnavailable, deviceView{Error: "Please try again in a moment."})
}
