package identity

import (
	"crypto/rand"
	"encoding/json"
	"slices"
	"time"

	"jwtidp/shared/apperr"
)

// MailBackchannelLogout is the Kind of an outbox entry that is no mail: a back-channel logout
// notice (OpenID Connect Back-Channel Logout 1.0), POSTed to a client's back-channel logout URI
// as a logout_token signed at send time. The entry's To is that URI, its Subject the client's
// id, its Text the token's claims (LogoutNotice), its ID the token's jti.
const MailBackchannelLogout = "backchannel-logout"

// MaxLogoutURI bounds a back-channel logout entry's To (a URI, not an address).
const MaxLogoutURI = 2048

// LogoutNotice is what a back-channel logout entry says: which client to tell, where, and the
// logout_token's claims that are fixed when the session ends (iat and exp are the send's).
type LogoutNotice struct {
	JTI       string `json:"-"` // the entry's id
	URI       string `json:"-"` // the client's back-channel logout URI
	ClientID  string `json:"-"` // aud
	Subject   string `json:"sub"`
	SessionID string `json:"sid"`
}

// AddClient is the updater that records on a session that clientID got tokens from it:
// ErrUnchanged when it is recorded already, so recording is idempotent.
func AddClient(clientID string) func(Session) (Session, error) {
	return func(s Session) (Session, error) {
		if slices.Contains(s.Clients, clientID) {
			return s, ErrUnchanged
		}
		s.Clients = append(slices.Clip(s.Clients), clientID)
		return s, nil
	}
}

// LogoutMail is what a store queues, in the transaction that ends sess (a logout, a change of
// credentials, an admin's logout, disable or delete, an eviction; not an expiry): one notice per
// client recorded on the session (Session.Clients) whose back-channel logout URI is set, as
// client (which reads the client in that transaction; ENOTFOUND skips a deleted client)
// finds it now. now is the entries' CreatedAt: their order in the outbox.
func LogoutMail(sess Session, client func(id string) (Client, error), now time.Time) ([]Mail, error) {
	var out []Mail
	for _, id := range sess.Clients {
		c, err := client(id)
		if apperr.Code(err) == apperr.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		if c.BackchannelLogoutURI == "" {
			continue
		}
		text, err := json.Marshal(LogoutNotice{Subject: sess.UserID, SessionID: sess.ID})
		if err != nil {
			return nil, err
		}
		m := Mail{ID: "bcl-" + rand.Text(), To: c.BackchannelLogoutURI, Subject: c.ID, Text: string(text),
			Kind: MailBackchannelLogout, UserID: sess.UserID, CreatedAt: now}
		if err := m.Validate(); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// LogoutNoticeOf reads a back-channel logout entry. EINVALID when m is of another kind or its
// text is not a notice.
func LogoutNoticeOf(m Mail) (LogoutNotice, error) {
	var n LogoutNotice
	if m.Kind != MailBackchannelLogout {
		return n, apperr.Errorf(apperr.EINVALID, "Mail %s is not a back-channel logout notice", m.ID)
	}
	if err := json.Unmarshal([]byte(m.Text), &n); err != nil || n.Subject == "" || n.SessionID == "" {
		return n, apperr.Errorf(apperr.EINVALID, "Mail %s: not a back-channel logout notice", m.ID)
	}
	n.JTI, n.URI, n.ClientID = m.ID, m.To, m.Subject
	return n, nil
}
