package httpapi

import (
	"bytes"
	"encoding/base64"
	"html/template"
	"image/png"
	"net/http"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"

	"github.com/pquerna/otp"
)

// totpForm is the page's authenticator-app forms, posted to the page itself (so its relative
// links hold): action "totp-setup" starts an enrolment and shows its QR code and secret;
// "totp-confirm" checks the first code and shows the recovery codes, this once.
func (p *passkeyPages) totpForm(w http.ResponseWriter, r *http.Request) {
	form, s, ok := p.postedForm(w, r)
	if !ok {
		return
	}
	noStore(w)
	if !p.fresh(s) {
		p.render(w, r, s, passkeysView{Error: apperr.Message(errNotFresh) + " (sign out, then in)."})
		return
	}
	switch form.Get("action") {
	case "totp-setup":
		e, err := p.svc.EnrollTOTP(r.Context(), s.UserID, auth.Reauth{AuthTime: s.AuthTime})
		if err != nil {
			p.render(w, r, s, passkeysView{Error: apperr.Message(err)})
			return
		}
		qr, err := totpQR(e.URI)
		if err != nil {
			p.logger.ErrorContext(r.Context(), "totp QR code", "err", err)
		}
		p.render(w, r, s, passkeysView{TOTPQR: qr, TOTPSecret: e.Secret})
	case "totp-confirm":
		codes, err := p.svc.ConfirmTOTP(r.Context(), s.UserID, form.Get("code"), s.SessionID)
		if err != nil {
			p.render(w, r, s, passkeysView{Error: apperr.Message(err) + " — set the app up again."})
			return
		}
		// Every other session of the user ended with the change; this process forgets them at
		// once (this one, kept, resolves again from the store).
		p.sessions.ForgetUser(s.UserID)
		p.render(w, r, s, passkeysView{RecoveryCodes: codes})
	default:
		http.Error(w, "Unknown action.", http.StatusBadRequest)
	}
}

// totpQR is the otpauth:// URI as a QR code (pquerna/otp's), a PNG in a data: URL.
func totpQR(uri string) (template.URL, error) {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return "", err
	}
	img, err := key.Image(200, 200)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return "", err
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())), nil
}
