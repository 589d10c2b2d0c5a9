package proctest

import (
	"net"
	"net/smtp"
	"strings"
	"testing"
)

// The harness as the mail tests use it: a message sent over SMTP is listed and read back
// through Mailpit's API; after Stop the SMTP port refuses connections, and after Start, on the
// same ports and database, the earlier message is still there and new ones arrive.
func TestMailpitStopStart(t *testing.T) {
	mp := StartMailpit(t)
	send := func(to, subject, body string) {
		t.Helper()
		msg := "From: sender@example.com\r\nTo: " + to + "\r\nSubject: " + subject +
			"\r\nMessage-ID: <" + subject + "@example.com>\r\n\r\n" + body + "\r\n"
		if err := smtp.SendMail(mp.SMTPAddr, nil, "sender@example.com", []string{to}, []byte(msg)); err != nil {
			t.Fatalf("send %s: %v", subject, err)
		}
	}
	send("Ann@Example.com", "first", "hello ann")
	got := mp.WaitFor(t, "ann@example.com", 1)
	if len(got) != 1 || got[0].Subject != "first" || got[0].MessageID != "first@example.com" || got[0].From.Address != "sender@example.com" {
		t.Fatalf("listed %+v", got)
	}
	text, html, h := mp.Message(t, got[0].ID)
	if strings.TrimSpace(text) != "hello ann" || html != "" || h.Get("Message-ID") != "<first@example.com>" || h.Get("Subject") != "first" {
		t.Fatalf("read back text %q html %q headers %v", text, html, h)
	}
	if len(mp.To(t, "bob@example.com")) != 0 {
		t.Fatal("To lists another recipient's mail")
	}

	mp.Stop()
	if c, err := net.Dial("tcp", mp.SMTPAddr); err == nil {
		c.Close()
		t.Fatal("the SMTP port accepts connections after Stop")
	}
	mp.Start()
	if got := mp.To(t, "ann@example.com"); len(got) != 1 || got[0].Subject != "first" {
		t.Fatalf("after a restart: %+v", got)
	}
	send("ann@example.com", "second", "hello again")
	got = mp.WaitFor(t, "ann@example.com", 2)
	if len(got) != 2 || got[0].Subject != "second" {
		t.Fatalf("after a restart, a new message: %+v", got)
	}
	mp.DeleteAll(t)
	if n := len(mp.Messages(t)); n != 0 {
		t.Fatalf("%d messages after DeleteAll", n)
	}
}
