package mail

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/clock"
)

// Queue is the store's outbox (identity.MailStore): mail written with the change that causes it,
// claimed by one replica at a time for a lease.
type Queue interface {
	ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (identity.Mail, error)
	MailSent(ctx context.Context, id string) error
	MailFailed(ctx context.Context, id string, next time.Time, reason string) error
	DropMail(ctx context.Context, id string) error
	MailQueue(ctx context.Context) (queued int, oldest time.Time, err error)
}

// Deliverer sends one message: Sender.
type Deliverer interface {
	Send(ctx context.Context, m Message) error
}

// Outbox delivers the queued mail. Every replica runs one; the store's lease keeps two from
// sending one message at once. A message is removed as soon as the server accepted it, so a
// crash can resend only one whose acceptance had not been recorded yet — a window of one
// statement, and the resend carries the same Message-ID. A temporary failure is retried with
// back-off (30 s, doubling, at most an hour apart, MaxAttempts in all); a permanent one (the
// server refused the recipient or the message) drops the message. Each outcome is a log line
// (the kind, the message's id, the recipient's domain: never a body, so never a link) and a
// count in idp_mail_deliveries_total{outcome}.
type Outbox struct {
	Queue       Queue
	Sender      Deliverer
	Clock       clock.Clock
	Logger      *slog.Logger
	Poll        time.Duration // how often the queue is looked at without a Wake (other replicas' mail, retries)
	Lease       time.Duration // how long a claimed message is this replica's: past the send timeout
	MaxAttempts int
	Deliveries  *prometheus.CounterVec // by outcome: sent, retry, dropped, error
	// Logouts delivers the back-channel logout notices the store queued with the end of a
	// session (identity.MailBackchannelLogout); LogoutDeliveries counts them by outcome.
	Logouts interface {
		Deliver(context.Context, identity.Mail) error
	}
	LogoutDeliveries *prometheus.CounterVec

	wake chan struct{}
}

// Outcomes of a delivery, the metric's label values.
const (
	OutcomeSent    = "sent"
	OutcomeRetry   = "retry"
	OutcomeDropped = "dropped"
	OutcomeError   = "error" // the store failed: the lease runs out and another try comes
)

// NewOutbox is an Outbox with the defaults: a poll every 10 s, a 2-minute lease, 12 attempts
// (about 30 hours of retries).
func NewOutbox(q Queue, s Deliverer, c clock.Clock, logger *slog.Logger, reg prometheus.Registerer) *Outbox {
	o := &Outbox{Queue: q, Sender: s, Clock: clock.Or(c), Logger: logger, Poll: 10 * time.Second, Lease: 2 * time.Minute, MaxAttempts: 12,
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idp_mail_deliveries_total", Help: "Mail delivery attempts by outcome."}, []string{"outcome"}),
		LogoutDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idp_backchannel_logouts_total",
			Help: "Back-channel logout delivery attempts by outcome."}, []string{"outcome"}),
		wake: make(chan struct{}, 1)}
	for _, v := range []string{OutcomeSent, OutcomeRetry, OutcomeDropped, OutcomeError} {
		o.Deliveries.WithLabelValues(v)
		o.LogoutDeliveries.WithLabelValues(v)
	}
	if reg != nil {
		reg.MustRegister(o.Deliveries, o.LogoutDeliveries, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idp_mail_queued", Help: "Messages waiting in the outbox (all replicas'); -1 when the store cannot say."},
			func() float64 {
				n, _, err := q.MailQueue(context.Background())
				if err != nil {
					return -1
				}
				return float64(n)
			}))
	}
	return o
}

// Wake makes Run look at the queue now: this process just queued mail.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: whatever is due, then again at a Wake or after Poll.
func (o *Outbox) Run(ctx context.Context) {
	for {
		o.Drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-o.Clock.After(o.Poll):
		}
	}
}

// Drain delivers the messages due now, one at a time, until none is.
func (o *Outbox) Drain(ctx context.Context) {
	for ctx.Err() == nil {
		m, err := o.Queue.ClaimMail(ctx, o.Clock.Now(), o.Lease)
		if apperr.Code(err) == apperr.ENOTFOUND {
			return
		}
		if err != nil {
			o.count("", OutcomeError)
			o.Logger.ErrorContext(ctx, "mail: the queue cannot be read", "err", err)
			return
		}
		o.deliver(ctx, m)
	}
}

// errNoSender is a message's failure while no SMTP server is configured: temporary, so it
// waits for one.
var errNoSender = &Error{Step: "configuration", Err: errors.New("no SMTP server is configured")}

func (o *Outbox) deliver(ctx context.Context, m identity.Mail) {
	var err error
	var log *slog.Logger
	switch {
	case m.Kind == identity.MailBackchannelLogout:
		// A notice, not mail: its To is a URI, its Subject the client's id; never the token.
		log = o.Logger.With("mail", m.ID, "kind", m.Kind, "client_id", m.Subject, "to_host", uriHost(m.To), "attempt", m.Attempts)
		err = errNoLogouts
		if o.Logouts != nil {
			err = o.Logouts.Deliver(ctx, m)
		}
	default:
		log = o.Logger.With("mail", m.ID, "kind", m.Kind, "to_domain", domainOf(m.To), "attempt", m.Attempts)
		err = errNoSender
		if o.Sender != nil {
			err = o.Sender.Send(ctx, Message{ID: m.ID, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
		}
	}
	count := func(outcome string) { o.count(m.Kind, outcome) }
	what := "mail" // the log's word for it
	if m.Kind == identity.MailBackchannelLogout {
		what = "back-channel logout"
	}
	switch {
	case err == nil:
		if err := o.Queue.MailSent(ctx, m.ID); err != nil {
			// Accepted by the server but still queued: it will go out again when the lease ends.
			count(OutcomeError)
			log.ErrorContext(ctx, what+" sent, but its removal from the queue failed: it may be sent again", "err", err)
			return
		}
		count(OutcomeSent)
		log.InfoContext(ctx, what+" sent")
	case Permanent(err) || m.Attempts >= o.MaxAttempts:
		if derr := o.Queue.DropMail(ctx, m.ID); derr != nil {
			count(OutcomeError)
			log.ErrorContext(ctx, what+" given up on, but its removal from the queue failed", "err", derr, "reason", err)
			return
		}
		count(OutcomeDropped)
		log.ErrorContext(ctx, what+" dropped: the server refused it, or every attempt failed", "err", err)
	default:
		next := o.Clock.Now().Add(Backoff(m.Attempts))
		if ferr := o.Queue.MailFailed(ctx, m.ID, next, err.Error()); ferr != nil {
			count(OutcomeError)
			log.ErrorContext(ctx, what+" not sent, and its retry not recorded", "err", ferr, "reason", err)
			return
		}
		count(OutcomeRetry)
		log.WarnContext(ctx, what+" not sent: will retry", "err", err, "retry_at", next)
	}
}

// Backoff is the wait after the attempts-th failed attempt: 30 s, doubling, at most an hour.
func Backoff(attempts int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempts && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

var errNoLogouts = &DeliveryError{Reason: "no back-channel logout sender is configured"}

func (o *Outbox) count(kind, outcome string) {
	c := o.Deliveries
	if kind == identity.MailBackchannelLogout {
		c = o.LogoutDeliveries
	}
	if c != nil {
		c.WithLabelValues(outcome).Inc()
	}
}

// domainOf is the part of an address after its last @ ("" for none): enough for a log line to
// say where mail goes without naming the person.
func domainOf(addr string) string {
	a, err := parseAddress(addr)
	if err != nil {
		return ""
	}
	return a.Address[strings.LastIndexByte(a.Address, '@')+1:]
}
