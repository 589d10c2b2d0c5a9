package identity

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

// Mail is one message of the outbox: written in the transaction of its cause (WithMail), then
// claimed, sent and removed by any replica's sender (MailStore). The store keeps it as given
// and changes only its delivery state (NextAttemptAt, Attempts, LeaseUntil, LastError).
type Mail struct {
	ID      string // random, unique; what the sender names it by
	To      string // one address, as the message's To header
	Subject string
	Text    string // the plain-text body
	HTML    string // the HTML body; "" for none
	// Kind is what the message is for: "verify-email", "reset-password", "invitation",
	// "notice" …, for metrics and for the log (which never holds a body or a link).
	Kind          string
	UserID        string    // whom it is about; "" when nobody (an unknown address)
	CreatedAt     time.Time // when it was queued: the outbox sends the oldest first
	NextAttemptAt time.Time // not claimed before; zero: at once
	Attempts      int       // how many times it was claimed
	LeaseUntil    time.Time // a claim's lease: not claimed again before; zero when not leased
	LastError     string    // why the last attempt failed; "" before any
}

// The bounds of a message, in bytes: RFC 5321's path limit for To (a display name beside it
// included), RFC 5322's line limit for the subject, and a body far beyond any the IdP writes.
const (
	MaxMailTo      = 320
	MaxMailSubject = 998
	MaxMailBody    = 256 << 10
	MaxMailID      = 128
	MaxMailKind    = 64
	MaxMailError   = 500 // MailFailed keeps this much of a reason
)

// Validate checks a message before it is queued. EINVALID, naming the field: no ID, To or Kind;
// a CR or LF in To or Subject (a header could be injected); a field over its bound; a field that
// is not valid UTF-8 or holds a NUL (no store could keep it as given); no CreatedAt (the order
// of the queue); a negative Attempts.
func (m Mail) Validate() error {
	bad := func(format string, args ...any) error {
		return apperr.Errorf(apperr.EINVALID, "Mail: "+format, args...)
	}
	switch {
	case m.ID == "":
		return bad("an id is required")
	case m.To == "":
		return bad("a recipient (To) is required")
	case m.Kind == "":
		return bad("a kind is required")
	case m.CreatedAt.IsZero():
		return bad("a creation time is required")
	case m.Attempts < 0:
		return bad("attempts must not be negative")
	case strings.ContainsAny(m.To, "\r\n"):
		return bad("the recipient (To) must be one line")
	case strings.ContainsAny(m.Subject, "\r\n"):
		return bad("the subject must be one line")
	}
	maxTo := MaxMailTo
	if m.Kind == MailBackchannelLogout {
		maxTo = MaxLogoutURI // a URI, not an address
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"id", m.ID, MaxMailID}, {"recipient (To)", m.To, maxTo}, {"subject", m.Subject, MaxMailSubject},
		{"text body", m.Text, MaxMailBody}, {"HTML body", m.HTML, MaxMailBody}, {"kind", m.Kind, MaxMailKind},
		{"user id", m.UserID, MaxMailID}, {"last error", m.LastError, MaxMailError},
	} {
		if len(f.v) > f.max {
			return bad("the %s is over %d bytes", f.name, f.max)
		}
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, 0) {
			return bad("the %s must be valid UTF-8 without NUL", f.name)
		}
	}
	return nil
}

// MailError is reason as MailFailed keeps it: valid UTF-8 without NUL, cut to at most
// MaxMailError bytes on a character boundary.
func MailError(reason string) string {
	reason = strings.ReplaceAll(strings.ToValidUTF8(reason, "\uFFFD"), "\x00", "\uFFFD")
	if len(reason) <= MaxMailError {
		return reason
	}
	cut := MaxMailError
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

// MailStore is the outbox. Besides EnqueueMail, every write method of every store of this
// package (AppendAudit included) writes the messages of its context (WithMail) in its own
// transaction, with the audit events and on the same terms (see AuditStore): a change and the
// mail it causes commit together or not at all, and a message that breaks Mail.Validate fails
// the write (EINVALID), which then changes nothing.
//
// Delivery: a sender claims the oldest due message (ClaimMail), which leases it so no other
// replica claims it meanwhile, sends it, and reports MailSent (it is removed: never sent
// again), MailFailed (tried again at a later time) or DropMail (given up on). A sender must
// finish with a message within its lease: once the lease runs out another replica may claim
// it, so the lease must be well above the sender's own timeout.
type MailStore interface {
	// EnqueueMail queues messages that go with no other change, in one transaction. EINVALID
	// when one breaks Mail.Validate; nothing is written then. ECONFLICT when a message with one
	// of their ids is queued; nothing is written then either.
	EnqueueMail(ctx context.Context, mails ...Mail) error
	// ClaimMail, in one transaction, picks the oldest message (by CreatedAt, then ID) that is
	// due (NextAttemptAt ≤ now) and not leased (LeaseUntil ≤ now: never leased, or its lease ran
	// out), leases it (LeaseUntil = now+lease), counts the attempt (Attempts+1) and returns it
	// as stored. Two claims at once never get the same message while its lease runs.
	// ENOTFOUND when none is due; EINVALID when lease is not positive.
	ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (Mail, error)
	// MailSent removes a delivered message: it is never claimed again. ENOTFOUND when no
	// message has the id.
	MailSent(ctx context.Context, id string) error
	// MailFailed ends the message's lease and schedules its next attempt: NextAttemptAt = next,
	// LastError = MailError(reason). ENOTFOUND when no message has the id.
	MailFailed(ctx context.Context, id string, next time.Time, reason string) error
	// DropMail removes a message given up on (too many attempts). ENOTFOUND when no message
	// has the id.
	DropMail(ctx context.Context, id string) error
	// MailQueue reports how many messages are queued, leased ones included, and the CreatedAt
	// of the oldest (zero when none): a metric, a readiness check.
	MailQueue(ctx context.Context) (queued int, oldest time.Time, err error)
}

type mailKey struct{}

// WithMailFunc returns ctx carrying messages for the next store write made with it, as
// WithAudit carries events: mails is called inside that write's transaction, after the write's
// updater ran for the last time, and what it returns is queued with the change (see
// MailStore). Messages that depend on an updater's decision are reported through variables the
// updater sets on every run and mails reads. WithMailFunc replaces what ctx carried.
func WithMailFunc(ctx context.Context, mails func() []Mail) context.Context {
	return context.WithValue(ctx, mailKey{}, mails)
}

// WithMail is WithMailFunc for messages known before the write.
func WithMail(ctx context.Context, mails ...Mail) context.Context {
	return WithMailFunc(ctx, func() []Mail { return mails })
}

// MailOf is what a store queues with a change made with ctx: the messages WithMail put there
// (nil for none). Stores call it inside the transaction, once fn has run; a message that breaks
// Validate fails the write (EINVALID), so a change is never kept without the mail it causes.
func MailOf(ctx context.Context) ([]Mail, error) {
	return mailOf(ctx)
}

// AppendOf is what AuditStore.AppendAudit writes: events, each valid, and the mail ctx
// carries (MailOf) — taken before the store's transaction, since no updater runs first.
func AppendOf(ctx context.Context, events []AuditEvent) ([]Mail, error) {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return nil, err
		}
	}
	return mailOf(ctx)
}

func mailOf(ctx context.Context) ([]Mail, error) {
	f, _ := ctx.Value(mailKey{}).(func() []Mail)
	if f == nil {
		return nil, nil
	}
	mails := f()
	for _, m := range mails {
		if err := m.Validate(); err != nil {
			return nil, err
		}
	}
	return mails, nil
}
