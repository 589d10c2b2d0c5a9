package mail

import (
	"context"
	"strings"
	"testing"

	"jwtidp/shared/proctest"
)

// mailpitConfig is a Config for mp: tls none to its loopback address.
func mailpitConfig(mp *proctest.Mailpit) Config {
	return Config{Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: "none", From: "Example login <login@example.com>"}
}

// checkDelivered reads m back from Mailpit and compares it with what Build made.
func checkDelivered(t *testing.T, mp *proctest.Mailpit, m Message, username string) {
	t.Helper()
	got := mp.WaitFor(t, "ann@example.org", 1)
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1: %+v", len(got), got)
	}
	s := got[0]
	if s.Subject != m.Subject || s.MessageID != m.ID+"@example.com" || s.Username != username ||
		s.From.Address != "login@example.com" || s.From.Name != "Example login" ||
		len(s.To) != 1 || s.To[0].Address != "ann@example.org" || s.To[0].Name != "Ann" {
		t.Fatalf("Mailpit lists %+v", s)
	}
	text, html, h := mp.Message(t, s.ID)
	crlf := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
	if crlf(text) != crlf(m.Text) || crlf(html) != crlf(m.HTML) {
		t.Fatalf("bodies read back:\ntext %q\nhtml %q", text, html)
	}
	if h.Get("Message-Id") != "<"+m.ID+"@example.com>" || h.Get("Date") != "Sat, 14 Mar 2026 15:09:26 +0100" || h.Get("Mime-Version") != "1.0" {
		t.Fatalf("headers %v", h)
	}
}

// Through Sender to a real SMTP server, over plain SMTP to loopback, with and without AUTH
// PLAIN: the message arrives as built.
func TestSendToMailpit(t *testing.T) {
	mp := proctest.StartMailpit(t)
	for _, username := range []string{"", "jwtidp"} {
		t.Run("username="+username, func(t *testing.T) {
			mp.DeleteAll(t)
			cfg := mailpitConfig(mp)
			if username != "" {
				cfg.Username, cfg.Password = username, "smtp-password-123"
			}
			s, log := newSender(t, cfg)
			m := goodMessage()
			m.Subject = "Réinitialisez votre mot de passe ✓"
			m.Text += "\nÉlodie — second line"
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			noSecrets(t, nil, log, cfg)
			checkDelivered(t, mp, m, username)
		})
	}
}

// With STARTTLS required by Mailpit and its certificate trusted through Config.RootCAs, the
// message and the password go over TLS; tls none to the same server is refused, temporarily
// (the server, not the message, is the problem).
func TestSendStartTLSToMailpit(t *testing.T) {
	_, roots, certFile, keyFile := testCA(t)
	mp := proctest.StartMailpit(t, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls")
	cfg := mailpitConfig(mp)
	cfg.Username, cfg.Password = "jwtidp", "smtp-password-123"

	plain, _ := newSender(t, cfg)
	if err := plain.Send(context.Background(), goodMessage()); err == nil || Permanent(err) {
		t.Fatalf("plain SMTP to a server requiring STARTTLS: %v (permanent %v)", err, Permanent(err))
	}

	cfg.TLS, cfg.RootCAs = "starttls", roots
	s, log := newSender(t, cfg)
	m := goodMessage()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	noSecrets(t, nil, log, cfg)
	checkDelivered(t, mp, m, "jwtidp")
}

// While the server is down, Send fails temporarily; once it is back, the same message goes
// through, and a resend carries the same Message-ID, so the receiver can tell.
func TestSendWhileMailpitDown(t *testing.T) {
	mp := proctest.StartMailpit(t)
	s, _ := newSender(t, mailpitConfig(mp))
	m := goodMessage()
	mp.Stop()
	err := s.Send(context.Background(), m)
	if err == nil || Permanent(err) || !strings.Contains(err.Error(), "smtp dial") {
		t.Fatalf("Send with the server down: %v (permanent %v)", err, Permanent(err))
	}
	mp.Start()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, mp, m, "")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := mp.WaitFor(t, "ann@example.org", 2)
	if len(got) != 2 || got[0].MessageID != got[1].MessageID {
		t.Fatalf("a resend: %+v", got)
	}
}
