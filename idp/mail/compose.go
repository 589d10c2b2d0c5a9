package mail

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"time"

	"jwtidp/idp/identity"
)

// Composer writes the IdP's mail from its templates as messages for the outbox.
type Composer struct {
	Templates *Templates
	Issuer    string // names the IdP in the mail
	Random    io.Reader
	Now       func() time.Time
	Wake      func() // the outbox's Wake: mail was just queued; nil: nothing to wake
}

// Queued wakes the outbox, after a change that queued mail committed.
func (c *Composer) Queued() {
	if c.Wake != nil {
		c.Wake()
	}
}

// NoticeData is what the notice templates are given.
type NoticeData struct {
	Username string
	Issuer   string
	What     string // "Your password was changed"
	At       string // when, in UTC
}

// Notice is the message telling u that what happened to their account, sent to their address
// when it is verified; false when it is not (a notice to an address nobody proved is theirs
// could tell a stranger about the account).
func (c *Composer) Notice(u identity.User, what string) (identity.Mail, bool, error) {
	if u.Email == "" || !u.EmailVerified {
		return identity.Mail{}, false, nil
	}
	now := c.Now().UTC()
	subject, text, html, err := c.Templates.Render(KindNotice, NoticeData{Username: u.Username, Issuer: c.Issuer, What: what, At: now.Format("2006-01-02 15:04 MST")})
	if err != nil {
		return identity.Mail{}, false, err
	}
	id, err := c.id()
	if err != nil {
		return identity.Mail{}, false, err
	}
	return identity.Mail{ID: id, To: u.Email, Subject: subject, Text: text, HTML: html, Kind: KindNotice, UserID: u.ID, CreatedAt: now}, true, nil
}

// id is a message's random id, 128 bits: the Message-ID's left part.
func (c *Composer) id() (string, error) {
	r := c.Random
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
