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
	at := c.Now().UTC().Format("2006-01-02 15:04 MST")
	m, err := c.compose(u, KindNotice, NoticeData{Username: u.Username, Issuer: c.Issuer, What: what, At: at})
	return m, err == nil, err
}

// ResetData is what the reset-password templates are given.
type ResetData struct {
	Username, Issuer string
	Link             string // the page to choose a new password, with the link's token
	Minutes          int    // how long the link works
}

// ResetPassword is the message carrying link, a password reset of u valid for ttl, to u's
// address (the caller makes sure it is verified).
func (c *Composer) ResetPassword(u identity.User, link string, ttl time.Duration) (identity.Mail, error) {
	return c.compose(u, KindResetPassword, ResetData{Username: u.Username, Issuer: c.Issuer, Link: link, Minutes: int(ttl / time.Minute)})
}

// VerifyData is what the verify-email templates are given.
type VerifyData struct {
	Username, Issuer string
	Link             string // the confirmation page, with the link's token
	Hours            int
}

// VerifyEmail is the message carrying link, the confirmation of address (u's new one), valid
// for ttl, to that address.
func (c *Composer) VerifyEmail(u identity.User, address, link string, ttl time.Duration) (identity.Mail, error) {
	u.Email = address
	return c.compose(u, KindVerifyEmail, VerifyData{Username: u.Username, Issuer: c.Issuer, Link: link, Hours: int(ttl / time.Hour)})
}

// InvitationData is what the invitation templates are given.
type InvitationData struct {
	Issuer string
	Link   string // the sign-up page, with the invitation's token
	Days   int
}

// Invitation is the message carrying link, an invitation to sign up valid for ttl, to address.
func (c *Composer) Invitation(address, link string, ttl time.Duration) (identity.Mail, error) {
	return c.compose(identity.User{Email: address}, KindInvitation, InvitationData{Issuer: c.Issuer, Link: link, Days: int(ttl / (24 * time.Hour))})
}

func (c *Composer) compose(u identity.User, kind string, data any) (identity.Mail, error) {
	subject, text, html, err := c.Templates.Render(kind, data)
	if err != nil {
		return identity.Mail{}, err
	}
	id, err := c.id()
	if err != nil {
		return identity.Mail{}, err
	}
	return identity.Mail{ID: id, To: u.Email, Subject: subject, Text: text, HTML: html, Kind: kind, UserID: u.ID, CreatedAt: c.Now().UTC()}, nil
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
