package mail

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/clock"
)

// memQueue is an outbox in memory that records what the sender reported.
type memQueue struct {
	mails               []identity.Mail
	sent, dropped       []string
	failed              map[string]time.Time
	claimErr, settleErr error
}

func (q *memQueue) ClaimMail(_ context.Context, now time.Time, lease time.Duration) (identity.Mail, error) {
	if q.claimErr != nil {
		return identity.Mail{}, q.claimErr
	}
	for i, m := range q.mails {
		if !m.NextAttemptAt.After(now) && !m.LeaseUntil.After(now) {
			m.Attempts++
			m.LeaseUntil = now.Add(lease)
			q.mails[i] = m
			return m, nil
		}
	}
	return identity.Mail{}, apperr.Errorf(apperr.ENOTFOUND, "none due")
}

func (q *memQueue) remove(id string) {
	for i, m := range q.mails {
		if m.ID == id {
			q.mails = append(q.mails[:i], q.mails[i+1:]...)
			return
		}
	}
}

func (q *memQueue) MailSent(_ context.Context, id string) error {
	if q.settleErr != nil {
		return q.settleErr
	}
	q.sent = append(q.sent, id)
	q.remove(id)
	return nil
}

func (q *memQueue) MailFailed(_ context.Context, id string, next time.Time, reason string) error {
	if q.settleErr != nil {
		return q.settleErr
	}
	q.failed[id] = next
	for i, m := range q.mails {
		if m.ID == id {
			q.mails[i].NextAttemptAt, q.mails[i].LeaseUntil, q.mails[i].LastError = next, time.Time{}, reason
		}
	}
	return nil
}

func (q *memQueue) DropMail(_ context.Context, id string) error {
	q.dropped = append(q.dropped, id)
	q.remove(id)
	return nil
}

func (q *memQueue) MailQueue(context.Context) (int, time.Time, error) {
	return len(q.mails), time.Time{}, nil
}

// scripted answers each Send with the next error of its list (nil past the end).
type scripted struct {
	errs []error
	got  []Message
}

func (s *scripted) Send(_ context.Context, m Message) error {
	s.got = append(s.got, m)
	if len(s.errs) == 0 {
		return nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return err
}

func newTestOutbox(q *memQueue, s Deliverer, clk clock.Clock) (*Outbox, *bytes.Buffer) {
	var log bytes.Buffer
	o := NewOutbox(q, s, clk, slog.New(slog.NewTextHandler(&log, nil)), nil)
	return o, &log
}

func TestOutboxDelivers(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	secret := "https://idp.example/password/reset?token=SECRET"
	q := &memQueue{failed: map[string]time.Time{}, mails: []identity.Mail{
		{ID: "a", To: "Ann <ann@example.com>", Subject: "s", Text: secret, Kind: "reset-password", CreatedAt: clk.Now()},
		{ID: "b", To: "bob@example.org", Subject: "s", Text: "t", Kind: "notice", CreatedAt: clk.Now()},
		{ID: "c", To: "cy@example.net", Subject: "s", Text: "t", Kind: "notice", CreatedAt: clk.Now()},
	}}
	temporary := &Error{Step: "dial", Err: errors.New("connection refused")}
	permanent := &Error{Step: "rcpt", Err: errors.New("550 no such user"), permanent: true}
	s := &scripted{errs: []error{nil, temporary, permanent}}
	o, log := newTestOutbox(q, s, clk)
	o.Drain(context.Background())
	if len(q.sent) != 1 || q.sent[0] != "a" || len(q.dropped) != 1 || q.dropped[0] != "c" {
		t.Fatalf("sent %v, dropped %v", q.sent, q.dropped)
	}
	if next := q.failed["b"]; !next.Equal(clk.Now().Add(30 * time.Second)) {
		t.Fatalf("b's retry at %v, want 30 s on", next)
	}
	if s.got[0].ID != "a" || s.got[0].To != "Ann <ann@example.com>" || s.got[0].Text != secret {
		t.Fatalf("the message handed to the sender: %+v", s.got[0])
	}
	// Not due yet: nothing is tried; then b goes out.
	o.Drain(context.Background())
	if len(s.got) != 3 {
		t.Fatalf("a message not due was tried: %d sends", len(s.got))
	}
	clk.Advance(30 * time.Second)
	o.Drain(context.Background())
	if len(q.sent) != 2 || q.sent[1] != "b" || len(q.mails) != 0 {
		t.Fatalf("after the back-off: sent %v, queued %v", q.sent, q.mails)
	}
	lg := log.String()
	for _, want := range []string{`msg="mail sent" mail=a kind=reset-password to_domain=example.com`, `msg="mail not sent: will retry" mail=b`, `msg="mail dropped`} {
		if !strings.Contains(lg, want) {
			t.Errorf("the log does not say %s:\n%s", want, lg)
		}
	}
	if strings.Contains(lg, "SECRET") || strings.Contains(lg, "ann@example.com") {
		t.Fatalf("a link or an address reached the log:\n%s", lg)
	}
}

// A message that failed MaxAttempts times is given up on, however temporary the failure.
func TestOutboxGivesUp(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	q := &memQueue{failed: map[string]time.Time{}, mails: []identity.Mail{{ID: "a", To: "a@example.com", Text: "t", Kind: "notice", CreatedAt: clk.Now()}}}
	down := &Error{Step: "dial", Err: errors.New("connection refused")}
	s := &scripted{errs: []error{down, down, down}}
	o, _ := newTestOutbox(q, s, clk)
	o.MaxAttempts = 3
	for range 3 {
		o.Drain(context.Background())
		clk.Advance(time.Hour)
	}
	if len(s.got) != 3 || len(q.dropped) != 1 || len(q.mails) != 0 {
		t.Fatalf("%d attempts, dropped %v, queued %v", len(s.got), q.dropped, q.mails)
	}
}

// A store that cannot be read or written is logged and counted; the message stays queued for
// the lease to run out.
func TestOutboxStoreFailures(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	q := &memQueue{failed: map[string]time.Time{}, claimErr: errors.New("database down")}
	o, log := newTestOutbox(q, &scripted{}, clk)
	o.Drain(context.Background())
	q.claimErr, q.settleErr = nil, errors.New("database down")
	q.mails = []identity.Mail{{ID: "a", To: "a@example.com", Text: "t", Kind: "notice", CreatedAt: clk.Now()}}
	o.Drain(context.Background())
	if len(q.mails) != 1 || !strings.Contains(log.String(), "the queue cannot be read") || !strings.Contains(log.String(), "it may be sent again") {
		t.Fatalf("queued %v; log:\n%s", q.mails, log)
	}
}

func TestBackoff(t *testing.T) {
	for attempts, want := range map[int]time.Duration{0: 30 * time.Second, 1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute,
		7: 32 * time.Minute, 8: time.Hour, 40: time.Hour} {
		if got := Backoff(attempts); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempts, got, want)
		}
	}
}
