package identity

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

func validMail() Mail {
	return Mail{ID: "m1", To: "Alice <alice@example.com>", Subject: "Reset your password", Text: "text", HTML: "<p>html</p>",
		Kind: "reset-password", UserID: "u1", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func TestMailValidate(t *testing.T) {
	if err := validMail().Validate(); err != nil {
		t.Fatalf("a valid message: %v", err)
	}
	atBounds := validMail()
	atBounds.To, atBounds.Subject = strings.Repeat("a", MaxMailTo), strings.Repeat("s", MaxMailSubject)
	atBounds.Text, atBounds.HTML = strings.Repeat("t", MaxMailBody), strings.Repeat("h", MaxMailBody)
	atBounds.HTML, atBounds.UserID, atBounds.LastError = "", "", strings.Repeat("e", MaxMailError)
	if err := atBounds.Validate(); err != nil {
		t.Fatalf("a message at its bounds, without HTML or user: %v", err)
	}
	for _, tt := range []struct {
		name string
		bad  func(*Mail)
		want string // in the message
	}{
		{"no id", func(m *Mail) { m.ID = "" }, "id"},
		{"no recipient", func(m *Mail) { m.To = "" }, "recipient"},
		{"no kind", func(m *Mail) { m.Kind = "" }, "kind"},
		{"no creation time", func(m *Mail) { m.CreatedAt = time.Time{} }, "creation time"},
		{"negative attempts", func(m *Mail) { m.Attempts = -1 }, "attempts"},
		{"CR in To", func(m *Mail) { m.To = "a@example.com\rBcc: x@example.com" }, "one line"},
		{"LF in To", func(m *Mail) { m.To = "a@example.com\nBcc: x@example.com" }, "one line"},
		{"CRLF in Subject", func(m *Mail) { m.Subject = "hi\r\nBcc: x@example.com" }, "subject must be one line"},
		{"long To", func(m *Mail) { m.To = strings.Repeat("a", MaxMailTo+1) }, "over 320 bytes"},
		{"long Subject", func(m *Mail) { m.Subject = strings.Repeat("a", MaxMailSubject+1) }, "subject is over"},
		{"long Text", func(m *Mail) { m.Text = strings.Repeat("a", MaxMailBody+1) }, "text body is over"},
		{"long HTML", func(m *Mail) { m.HTML = strings.Repeat("a", MaxMailBody+1) }, "HTML body is over"},
		{"long id", func(m *Mail) { m.ID = strings.Repeat("a", MaxMailID+1) }, "id is over"},
		{"long kind", func(m *Mail) { m.Kind = strings.Repeat("a", MaxMailKind+1) }, "kind is over"},
		{"invalid UTF-8", func(m *Mail) { m.Subject = "\xff" }, "valid UTF-8"},
		{"NUL", func(m *Mail) { m.Text = "a\x00b" }, "without NUL"},
	} {
		m := validMail()
		tt.bad(&m)
		err := m.Validate()
		if apperr.Code(err) != apperr.EINVALID || !strings.Contains(apperr.Message(err), tt.want) {
			t.Errorf("%s: %v, want EINVALID naming %q", tt.name, err, tt.want)
		}
	}
}

func TestMailError(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"550 no such user", "550 no such user"},
		{"a\x00b\xff", "a\uFFFDb\uFFFD"},
		{strings.Repeat("x", MaxMailError+10), strings.Repeat("x", MaxMailError)},
		// 499 bytes, then a two-byte rune across the bound: cut before it.
		{strings.Repeat("x", MaxMailError-1) + "éé", strings.Repeat("x", MaxMailError-1)},
	} {
		got := MailError(tt.in)
		if got != tt.want || len(got) > MaxMailError || !utf8.ValidString(got) {
			t.Errorf("MailError(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMailOf(t *testing.T) {
	ctx := context.Background()
	if got, err := MailOf(ctx); got != nil || err != nil {
		t.Fatalf("MailOf a context without mail: %v, %v", got, err)
	}
	m := validMail()
	if got, err := MailOf(WithMail(ctx, m)); err != nil || len(got) != 1 || got[0] != m {
		t.Fatalf("MailOf(WithMail(m)): %v, %v", got, err)
	}
	calls := 0
	c := WithMailFunc(ctx, func() []Mail { calls++; return []Mail{m} })
	if _, err := MailOf(c); err != nil || calls != 1 {
		t.Fatalf("MailOf(WithMailFunc): %v after %d calls, want one", err, calls)
	}
	bad := m
	bad.Subject = "a\nb"
	if _, err := MailOf(WithMail(ctx, m, bad)); apperr.Code(err) != apperr.EINVALID {
		t.Fatalf("MailOf with an invalid message: %v, want EINVALID", err)
	}
	// WithMail replaces what ctx carried, as WithAudit does.
	if got, _ := MailOf(WithMail(WithMail(ctx, bad), m)); len(got) != 1 || got[0] != m {
		t.Fatalf("WithMail over WithMail: %v", got)
	}
}
