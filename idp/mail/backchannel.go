package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
)

// LogoutSigner signs logout tokens: token.Issuer.
type LogoutSigner interface {
	LogoutToken(token.Logout) (string, error)
}

// Backchannel delivers the outbox's back-channel logout notices (identity.MailBackchannelLogout,
// OpenID Connect Back-Channel Logout 1.0 §2.5): it signs the logout token at send time, so a
// retried notice is never stale, and POSTs it as the form's logout_token to the client's URI.
// A 2xx answer delivered it; a 4xx refused it for good (a *DeliveryError that Permanent
// reports); a 5xx or a network failure is tried again by the outbox. Its errors hold the
// status or the network's reason, never the token.
type Backchannel struct {
	Signer  LogoutSigner
	Client  *http.Client  // nil: a client of its own, without redirects
	Timeout time.Duration // of one POST; 0: DefaultLogoutTimeout
}

// DefaultLogoutTimeout bounds one back-channel logout POST: short, since deliveries share the
// outbox with mail, one at a time.
const DefaultLogoutTimeout = 3 * time.Second

// DeliveryError is a failed back-channel logout: why, and whether trying again cannot help.
type DeliveryError struct {
	Reason    string
	permanent bool
}

func (e *DeliveryError) Error() string { return "back-channel logout: " + e.Reason }

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Deliver sends m, a back-channel logout notice.
func (b *Backchannel) Deliver(ctx context.Context, m identity.Mail) error {
	n, err := identity.LogoutNoticeOf(m)
	if err != nil {
		return &DeliveryError{Reason: err.Error(), permanent: true}
	}
	raw, err := b.Signer.LogoutToken(token.Logout{ClientID: n.ClientID, Subject: n.Subject, SessionID: n.SessionID, JTI: n.JTI})
	if err != nil {
		return &DeliveryError{Reason: err.Error()}
	}
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = DefaultLogoutTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URI, strings.NewReader(url.Values{"logout_token": {raw}}.Encode()))
	if err != nil {
		return &DeliveryError{Reason: "the URI cannot be requested", permanent: true}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := b.Client
	if client == nil {
		client = noRedirects
	}
	resp, err := client.Do(req)
	if err != nil {
		// Why, and the host: not the URI, whose query a client may have made a secret of (the
		// reason is logged and stored). The token is in the body, never in an error.
		reason := err.Error()
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			reason = ue.Op + " " + uriHost(ue.URL) + ": " + ue.Err.Error()
		}
		return &DeliveryError{Reason: reason}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return &DeliveryError{Reason: fmt.Sprintf("the client answered %d", resp.StatusCode), permanent: true}
	default:
		return &DeliveryError{Reason: fmt.Sprintf("the client answered %d", resp.StatusCode)}
	}
}

// uriHost is the host a logout notice goes to, for the log.
func uriHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
