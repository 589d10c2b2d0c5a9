package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"strconv"
	"time"
)

// Sender delivers messages to the configured SMTP server, one connection per message. It is
// safe for concurrent use.
type Sender struct {
	cfg  Config
	from string // the envelope sender (MAIL FROM)
	log  *slog.Logger
	now  func() time.Time
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// New checks cfg and returns a Sender. logger may be nil; nothing it logs holds a body, a link
// or the password.
func New(cfg Config, logger *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	from, err := fromAddress(cfg.From)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Sender{cfg: cfg, from: from.Address, log: logger, now: time.Now, dial: (&net.Dialer{}).DialContext}, nil
}

// WithClock makes the sender date its messages by now instead of the system clock.
func (s *Sender) WithClock(now func() time.Time) *Sender {
	s.now = now
	return s
}

// Error is a failed delivery: the step that failed ("dial", "rcpt", "data"…) and why. Its text
// holds the server's reply, never the message's body.
type Error struct {
	Step      string
	Err       error
	permanent bool
}

func (e *Error) Error() string { return "smtp " + e.Step + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying err cannot help, so the caller drops the message: the
// server refused this recipient or this message with a 5xx reply, or the message cannot be
// built. A 5xx to the greeting, to AUTH or to MAIL FROM is about the server or this
// configuration, not the message, and, like a network failure or a 4xx, is temporary: the
// message waits until the configuration is fixed rather than being lost.
func Permanent(err error) bool {
	var e *Error
	var d *DeliveryError
	return (errors.As(err, &e) && e.permanent) || (errors.As(err, &d) && d.permanent)
}

// Send delivers m, or returns an *Error. A nil error means the server accepted the message
// (its reply to the end of DATA); a failure after that (QUIT) is only logged, so a caller that
// retries on error never sends an accepted message twice. The whole delivery is bounded by
// cfg.Timeout and by ctx.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := Build(s.cfg, m, s.now())
	if err != nil {
		return &Error{Step: "build", Err: err, permanent: true}
	}
	to, _ := recipient(m.To) // Build checked it
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	conn, err := s.dial(ctx, "tcp", addr)
	if err != nil {
		return &Error{Step: "dial", Err: err}
	}
	defer conn.Close()
	// Every read and write ends at once when ctx is cancelled or reaches its deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(step string, err error, permanent bool) error {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			permanent = false
		}
		s.log.Warn("mail not sent", "id", m.ID, "step", step, "err", err, "permanent", permanent)
		return &Error{Step: step, Err: err, permanent: permanent}
	}

	tlsConf := &tls.Config{ServerName: s.cfg.Host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if s.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("tls", err, false)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.cfg.Host) // reads the greeting; knows the conn is TLS when it is
	if err != nil {
		return fail("greeting", err, false)
	}
	defer c.Close()
	if s.cfg.HelloName != "" {
		if err := c.Hello(s.cfg.HelloName); err != nil {
			return fail("ehlo", err, false)
		}
	}
	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fail("starttls", errors.New("the server does not offer STARTTLS, which tls: starttls requires"), false)
		}
		if err := c.StartTLS(tlsConf); err != nil {
			return fail("starttls", err, false)
		}
	}
	if s.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fail("auth", errors.New("the server does not offer AUTH, and a username is set"), false)
		}
		// PlainAuth itself refuses to send the password over a connection that is neither TLS
		// nor to localhost.
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
			return fail("auth", err, false)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return fail("mail from", err, false)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fail("rcpt to", err, is5xx(err))
	}
	w, err := c.Data()
	if err != nil {
		return fail("data", err, is5xx(err))
	}
	if _, err := w.Write(msg); err != nil {
		return fail("data", err, false)
	}
	if err := w.Close(); err != nil { // the server's verdict on the message
		return fail("data", err, is5xx(err))
	}
	if err := c.Quit(); err != nil {
		s.log.Info("mail sent; quit failed", "id", m.ID, "err", err)
		return nil
	}
	s.log.Info("mail sent", "id", m.ID)
	return nil
}

func is5xx(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code >= 500 && te.Code < 600
}
