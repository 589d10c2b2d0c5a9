package httpapi

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

var passwordPage = template.Must(template.ParseFS(templates, "templates/password.html"))

// passwordView is the forgotten-password pages' data.
type passwordView struct {
	Style   template.CSS
	Base    string // from /password/… to the root
	Reset   bool   // the new-password form (else the request for a link)
	Verify  bool   // the address confirmation's page
	Signup  bool   // an invitation's sign-up page
	Token   string // the link's, carried by the form
	Done    bool
	Message string
	Error   string
}

func renderPassword(w http.ResponseWriter, status int, v passwordView) {
	v.Style, v.Base = template.CSS(loginStyle), "../"
	pageHeaders(w, status)
	passwordPage.Execute(w, v)
}

// isForm tells a browser's form post from an API call.
func isForm(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

// formValues reads a bounded form body: the fields of the password pages, nothing large. A form
// a browser says another site sent is refused: a hostile page must not make its visitors ask
// for resets, confirmations or accounts.
func formValues(w http.ResponseWriter, r *http.Request) error {
	if !sameOrigin(r) {
		return apperr.Errorf(apperr.EFORBIDDEN, "This form must be sent from this site's own page")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		return apperr.Errorf(apperr.EINVALID, "The form could not be read")
	}
	return nil
}

// handleForgotPage is GET /password/forgot: the form asking for a link.
func handleForgotPage(w http.ResponseWriter, r *http.Request) {
	renderPassword(w, http.StatusOK, passwordView{})
}

// handleResetPage is GET /password/reset?token=…, where the mailed link leads: the form for a
// new password, carrying the token. A GET changes nothing (a mail scanner may fetch it).
func handleResetPage(w http.ResponseWriter, r *http.Request) {
	renderPassword(w, http.StatusOK, passwordView{Reset: true, Token: r.URL.Query().Get("token")})
}

// PasswordResetter is what the forgotten-password routes need of the sign-in use cases.
type PasswordResetter interface {
	ForgotPassword(ctx context.Context, login string) error
	ResetPassword(ctx context.Context, token, newPassword, otp string) (auth.Authentication, error)
}

// ResetLinker is the admin's password reset.
type ResetLinker interface {
	ResetPasswordLink(ctx context.Context, user string, print bool) (string, error)
}

type forgotRequest struct {
	Login string `json:"login"`
}

type resetRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
	OTP         string `json:"otp"`
}

func (r resetRequest) Valid() map[string]string {
	switch {
	case r.Token == "":
		return map[string]string{"token": `Field "token" is required: the one in the link you were mailed`}
	case r.NewPassword == "":
		return map[string]string{"new_password": `Field "new_password" is required`}
	}
	return nil
}

// forgotAnswer is POST /password/forgot's one answer, whatever the login names.
const forgotAnswer = "If the account exists, a message is on its way"

// handleForgotPassword is POST /password/forgot {"login"}: 202 with the same answer whether or
// not an account has that username or address (503 where no mail is set up, 400 for input no
// account can have).
func handleForgotPassword(logger *slog.Logger, svc PasswordResetter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if isForm(r) {
			err := formValues(w, r)
			if err == nil {
				err = svc.ForgotPassword(r.Context(), r.PostForm.Get("login"))
			}
			if err != nil {
				renderPassword(w, web.Status(apperr.Code(err)), passwordView{Error: apperr.Message(err)})
				return
			}
			renderPassword(w, http.StatusAccepted, passwordView{Done: true, Message: forgotAnswer + ". The link in it works once, for 30 minutes."})
			return
		}
		var req forgotRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if err := svc.ForgotPassword(r.Context(), req.Login); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusAccepted, forgotAnswer)
	})
}

// handleResetPassword is POST /password/reset {"token","new_password","otp"}: 204 once the
// new password is set (every session and refresh token of the user ended). The form's browser
// is then signed in with the new password (b's finisher) and sent to the account page, account.
func handleResetPassword(b *browser, account string, svc PasswordResetter) http.Handler {
	logger := b.logger
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if isForm(r) {
			err := formValues(w, r)
			tok := r.PostForm.Get("token")
			var a auth.Authentication
			if err == nil {
				a, err = svc.ResetPassword(r.Context(), tok, r.PostForm.Get("new_password"), r.PostForm.Get("otp"))
			}
			if err != nil {
				if apperr.Code(err) == apperr.EINTERNAL {
					logger.ErrorContext(r.Context(), "password reset", "err", err)
				}
				renderPassword(w, web.Status(apperr.Code(err)), passwordView{Reset: true, Token: tok, Error: apperr.Message(err)})
				return
			}
			signed, err := b.auth.Complete(r.Context(), a, auth.Target{Browser: true, UserAgent: r.UserAgent()})
			if err != nil || signed.Pending {
				// The password is changed all the same: the login page signs in with it.
				logger.WarnContext(r.Context(), "password reset: the browser not signed in", "err", err, "pending", signed.Pending)
				renderPassword(w, http.StatusOK, passwordView{Reset: true, Done: true, Message: "Your password is changed, and every session of your account has ended. Sign in with the new password."})
				return
			}
			b.signedIn(w, r, signed, account)
			return
		}
		var req resetRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if _, err := svc.ResetPassword(r.Context(), req.Token, req.NewPassword, req.OTP); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleAdminResetPassword is POST /admin/users/{user}/reset-password: 202 once the link is
// mailed; with ?print=1, 200 {"link"} instead and nothing is mailed.
func handleAdminResetPassword(logger *slog.Logger, svc ResetLinker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		print := r.URL.Query().Get("print") == "1"
		link, err := svc.ResetPasswordLink(r.Context(), r.PathValue("user"), print)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if print {
			web.Success(w, http.StatusOK, map[string]string{"link": link})
			return
		}
		web.Success(w, http.StatusAccepted, "A password reset link is on its way")
	})
}

// EmailLinkVerifier confirms an address through its mailed link.
type EmailLinkVerifier interface {
	VerifyEmailLink(ctx context.Context, token string) (identity.User, error)
}

// handleVerifyEmailPage is GET /email/verify?token=…, where the mailed link leads: a page with
// a button. The GET changes nothing, so a mail scanner that fetches links verifies nothing.
func handleVerifyEmailPage(w http.ResponseWriter, r *http.Request) {
	renderPassword(w, http.StatusOK, passwordView{Verify: true, Token: r.URL.Query().Get("token")})
}

// handleVerifyEmailLink is POST /email/verify: the page's form (token) or JSON {"token"} →
// email_verified for that exact address (the page says so; JSON: 200 {"email","email_verified"}).
func handleVerifyEmailLink(logger *slog.Logger, svc EmailLinkVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var tok string
		form := isForm(r)
		if form {
			if err := formValues(w, r); err != nil {
				renderPassword(w, web.Status(apperr.Code(err)), passwordView{Verify: true, Error: apperr.Message(err)})
				return
			}
			tok = r.PostForm.Get("token")
		} else {
			var req struct {
				Token string `json:"token"`
			}
			if err := web.Decode(w, r, &req); err != nil {
				web.Error(w, r, logger, err)
				return
			}
			tok = req.Token
		}
		u, err := svc.VerifyEmailLink(r.Context(), tok)
		switch {
		case err != nil && form:
			if apperr.Code(err) == apperr.EINTERNAL {
				logger.ErrorContext(r.Context(), "email verification", "err", err)
			}
			renderPassword(w, web.Status(apperr.Code(err)), passwordView{Verify: true, Error: apperr.Message(err)})
		case err != nil:
			web.Error(w, r, logger, err)
		case form:
			renderPassword(w, http.StatusOK, passwordView{Verify: true, Done: true, Message: "Your email address is confirmed."})
		default:
			web.Success(w, http.StatusOK, map[string]any{"email": u.Email, "email_verified": u.EmailVerified})
		}
	})
}

// handleSignupPage is GET /signup?invitation=…, where an invitation's link leads: a form for a
// username and a password, carrying the invitation.
func handleSignupPage(w http.ResponseWriter, r *http.Request) {
	renderPassword(w, http.StatusOK, passwordView{Signup: true, Token: r.URL.Query().Get("invitation")})
}

// signupForm is POST /signup from that page: the account the invitation allows.
func signupForm(w http.ResponseWriter, r *http.Request, logger *slog.Logger, svc Signer) {
	w.Header().Set("Cache-Control", "no-store")
	if err := formValues(w, r); err != nil {
		renderPassword(w, web.Status(apperr.Code(err)), passwordView{Signup: true, Error: apperr.Message(err)})
		return
	}
	tok := r.PostForm.Get("invitation")
	err := svc.SignupInvited(r.Context(), tok, r.PostForm.Get("username"), r.PostForm.Get("password"))
	if err != nil {
		if apperr.Code(err) == apperr.EINTERNAL {
			logger.ErrorContext(r.Context(), "signup by invitation", "err", err)
		}
		renderPassword(w, web.Status(apperr.Code(err)), passwordView{Signup: true, Token: tok, Error: apperr.Message(err)})
		return
	}
	renderPassword(w, http.StatusCreated, passwordView{Signup: true, Done: true, Message: "Your account is made. Sign in with your username and password."})
}

// Inviter is the admin's invitations.
type Inviter interface {
	Invite(ctx context.Context, email string, groups []string, print bool) (auth.Invitation, error)
	Invitations(ctx context.Context) ([]auth.Invitation, error)
	DeleteInvitation(ctx context.Context, id string) error
}

// InvitationRequest is POST /admin/invitations' body.
type InvitationRequest struct {
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
}

// InvitationInfo is an invitation as the admin routes show it.
type InvitationInfo struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Groups    []string  `json:"groups"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Used      bool      `json:"used"`
	Link      string    `json:"link,omitempty"` // only when made with ?print=1
}

func invitationInfo(i auth.Invitation) InvitationInfo {
	g := i.Groups
	if g == nil {
		g = []string{}
	}
	return InvitationInfo{ID: i.ID, Email: i.Email, Groups: g, CreatedAt: i.CreatedAt.UTC(), ExpiresAt: i.ExpiresAt.UTC(), Used: i.Used, Link: i.Link}
}

// handleInvite is POST /admin/invitations {"email","groups"}: 201 with the invitation (and its
// link with ?print=1, when nothing is mailed).
func handleInvite(logger *slog.Logger, svc Inviter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var req InvitationRequest
		if err := web.Decode(w, r, &req); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		inv, err := svc.Invite(r.Context(), req.Email, req.Groups, r.URL.Query().Get("print") == "1")
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		web.Success(w, http.StatusCreated, invitationInfo(inv))
	})
}

// handleInvitations is GET /admin/invitations: {"invitations":[…]}, oldest first.
func handleInvitations(logger *slog.Logger, svc Inviter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		all, err := svc.Invitations(r.Context())
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		out := make([]InvitationInfo, 0, len(all))
		for _, i := range all {
			out = append(out, invitationInfo(i))
		}
		web.Success(w, http.StatusOK, map[string]any{"invitations": out})
	})
}

// handleDeleteInvitation is DELETE /admin/invitations/{id}: 204, 404 for none.
func handleDeleteInvitation(logger *slog.Logger, svc Inviter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := svc.DeleteInvitation(r.Context(), r.PathValue("id")); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
