package mail

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

var when = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("", 3600))

func goodMessage() Message {
	return Message{ID: "01J9ZK.reset-7f3a", To: "Ann <ann@example.org>", Subject: "Reset your password",
		Text: "Open https://idp.example.com/password/reset?token=SECRET-TOKEN within 30 minutes.",
		HTML: `<p><a href="https://idp.example.com/password/reset?token=SECRET-TOKEN">Reset</a></p>`}
}

// part is one decoded part of a built message.
type part struct{ contentType, encoding, body string }

// parse reads a built message back as a receiver would: its headers and its decoded parts.
func parse(t testing.TB, raw []byte) (mail.Header, []part) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	var parts []part
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart() // raw: NextPart would decode quoted-printable itself and drop the header
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v\n%s", err, raw)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatalf("decode part: %v\n%s", err, raw)
		}
		parts = append(parts, part{p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), string(body)})
	}
	return msg.Header, parts
}

func TestBuild(t *testing.T) {
	cfg := goodConfig()
	m := goodMessage()
	raw, err := Build(cfg, m, when)
	if err != nil {
		t.Fatal(err)
	}
	h, parts := parse(t, raw)
	for name, want := range map[string]string{
		"From":         `"Example login" <login@example.com>`,
		"To":           `"Ann" <ann@example.org>`,
		"Subject":      "Reset your password",
		"Date":         "Sat, 14 Mar 2026 15:09:26 +0100",
		"Message-ID":   "<01J9ZK.reset-7f3a@example.com>",
		"MIME-Version": "1.0",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts, want text and HTML:\n%s", len(parts), raw)
	}
	for i, want := range []part{
		{"text/plain; charset=utf-8", "quoted-printable", m.Text},
		{"text/html; charset=utf-8", "quoted-printable", m.HTML},
	} {
		if parts[i] != want {
			t.Errorf("part %d: %+v, want %+v", i, parts[i], want)
		}
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 78 && !strings.HasPrefix(line, "Content-Type: multipart") {
			t.Errorf("line of %d bytes: %q", len(line), line)
		}
	}

	// The same message built again, later, for a resend: the same Message-ID.
	again, err := Build(cfg, m, when.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := parse(t, again); h2.Get("Message-ID") != h.Get("Message-ID") {
		t.Fatalf("a resend's Message-ID %q, first %q", h2.Get("Message-ID"), h.Get("Message-ID"))
	}
	if other, _ := Build(cfg, Message{ID: "another", To: m.To, Text: "x"}, when); bytes.Contains(other, []byte(h.Get("Message-ID"))) {
		t.Fatal("another message has the same Message-ID")
	}
}

func TestBuildEncodes(t *testing.T) {
	cfg := goodConfig()
	cfg.From = "Connexion Élodie <login@example.com>"
	m := Message{ID: "m1", To: "Zoë <zoe@example.org>", Subject: "Réinitialisez votre mot de passe ✓",
		Text: "Ligne un\nligne deux — é\r\n" + strings.Repeat("long ", 40) + "\nfin = ok", HTML: "<p>é</p>"}
	raw, err := Build(cfg, m, when)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("Subject: =?utf-8?q?")) {
		t.Fatalf("the subject is not Q-encoded:\n%s", raw)
	}
	if i := bytes.IndexFunc(raw, func(r rune) bool { return r > 0x7e }); i >= 0 {
		t.Fatalf("non-ASCII byte at %d:\n%s", i, raw)
	}
	h, parts := parse(t, raw)
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(h.Get("Subject")); err != nil || s != m.Subject {
		t.Fatalf("subject decodes to %q, %v", s, err)
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Connexion Élodie" || from[0].Address != "login@example.com" {
		t.Fatalf("From %v, %v", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Zoë" || to[0].Address != "zoe@example.org" {
		t.Fatalf("To %v, %v", to, err)
	}
	// Line breaks become CRLF, as SMTP wants; nothing else changes.
	if want := strings.ReplaceAll(strings.ReplaceAll(m.Text, "\r\n", "\n"), "\n", "\r\n"); parts[0].body != want {
		t.Fatalf("text part %q, want %q", parts[0].body, want)
	}
	// Without HTML, the text part alone.
	m.HTML = ""
	raw, err = Build(cfg, m, when)
	if err != nil {
		t.Fatal(err)
	}
	if _, parts := parse(t, raw); len(parts) != 1 || !strings.HasPrefix(parts[0].contentType, "text/plain") {
		t.Fatalf("parts %+v", parts)
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config, *Message)
		want string
	}{
		{"CRLF in To", func(c *Config, m *Message) { m.To = "ann@example.org\r\nBcc: eve@evil.example" }, "line break"},
		{"LF in To", func(c *Config, m *Message) { m.To = "ann@example.org\nBcc: eve@evil.example" }, "line break"},
		{"CR in To's name", func(c *Config, m *Message) { m.To = "\"Ann\rX\" <ann@example.org>" }, "line break"},
		{"encoded CRLF in To's name", func(c *Config, m *Message) { m.To = "=?utf-8?q?Ann=0D=0ABcc=3A_x?= <ann@example.org>" }, "control character"},
		{"two recipients", func(c *Config, m *Message) { m.To = "ann@example.org, eve@evil.example" }, "not one address"},
		{"a group", func(c *Config, m *Message) { m.To = "team: ann@example.org, eve@evil.example;" }, "not one address"},
		{"no recipient", func(c *Config, m *Message) { m.To = "" }, "no recipient"},
		{"unparsable recipient", func(c *Config, m *Message) { m.To = "ann at example.org" }, "not one address"},
		{"recipient without domain", func(c *Config, m *Message) { m.To = "ann" }, "not one address"},
		{"non-ASCII address", func(c *Config, m *Message) { m.To = "zoë@example.org" }, "not one address"},
		{"long recipient", func(c *Config, m *Message) { m.To = strings.Repeat("a", 250) + "@example.org" }, "longer than"},
		{"CRLF in Subject", func(c *Config, m *Message) { m.Subject = "Hi\r\nBcc: eve@evil.example" }, "line break"},
		{"LF in Subject", func(c *Config, m *Message) { m.Subject = "Hi\nBcc: eve@evil.example" }, "line break"},
		{"CR in Subject", func(c *Config, m *Message) { m.Subject = "Hi\rBcc: eve@evil.example" }, "line break"},
		{"NUL in Subject", func(c *Config, m *Message) { m.Subject = "Hi\x00" }, "control character"},
		{"long Subject", func(c *Config, m *Message) { m.Subject = strings.Repeat("é", 200) }, "longer than"},
		{"invalid UTF-8 in Subject", func(c *Config, m *Message) { m.Subject = "\xff" }, "UTF-8"},
		{"CRLF in From's name", func(c *Config, m *Message) { c.From = "Login\r\nBcc: eve@evil.example <login@example.com>" }, "line break"},
		{"LF in From's quoted name", func(c *Config, m *Message) { c.From = "\"Log\nin\" <login@example.com>" }, "line break"},
		{"bad From", func(c *Config, m *Message) { c.From = "login" }, "smtp from"},
		{"no id", func(c *Config, m *Message) { m.ID = "" }, "no id"},
		{"id with @", func(c *Config, m *Message) { m.ID = "a@b" }, "may hold only"},
		{"id with >", func(c *Config, m *Message) { m.ID = "a>\r\nBcc: x" }, "may hold only"},
		{"id with ..", func(c *Config, m *Message) { m.ID = "a..b" }, "misplaced"},
		{"long id", func(c *Config, m *Message) { m.ID = strings.Repeat("a", 129) }, "longer than"},
		{"no text", func(c *Config, m *Message) { m.Text = "" }, "text part is empty"},
		{"invalid UTF-8 in HTML", func(c *Config, m *Message) { m.HTML = "<p>\xc3</p>" }, "UTF-8"},
		{"huge text", func(c *Config, m *Message) { m.Text = strings.Repeat("x", maxBody+1) }, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, m := goodConfig(), goodMessage()
			tt.edit(&c, &m)
			raw, err := Build(c, m, when)
			if err == nil {
				t.Fatalf("built:\n%s", raw)
			}
			if raw != nil {
				t.Fatal("an error and a message")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET-TOKEN") {
				t.Fatalf("the error holds the body: %v", err)
			}
		})
	}
}

// The header lines Build writes, each once.
var ourHeaders = []string{"From: ", "To: ", "Subject: ", "Date: ", "Message-ID: ", "MIME-Version: ", "Content-Type: "}

// checkHeaderSection fails unless raw's header section is exactly the headers Build writes,
// one line each, with no stray CR or LF and no line over 998 bytes.
func checkHeaderSection(t *testing.T, raw []byte) {
	t.Helper()
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no end of the header section:\n%q", raw)
	}
	lines := strings.Split(string(raw[:end]), "\r\n")
	if len(lines) != len(ourHeaders) {
		t.Fatalf("%d header lines, want %d:\n%q", len(lines), len(ourHeaders), raw[:end])
	}
	for i, line := range lines {
		if !strings.HasPrefix(line, ourHeaders[i]) || strings.ContainsAny(line, "\r\n") || len(line) > 998 {
			t.Fatalf("header line %d is %q, want %q…", i, line, ourHeaders[i])
		}
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("ann@example.org", "Reset your password", "text", "<p>html</p>")
	f.Add("Ann <ann@example.org>\r\nBcc: eve@evil.example", "Hi\r\nBcc: eve@evil.example", "a\r\n.\r\nQUIT", "")
	f.Add("\"Zoë\n\" <zoe@example.org>", "Réinitialiser ✓", "\r\n\r\nX-Injected: 1", "--=_")
	f.Add("=?utf-8?q?a=0D=0Ab?= <a@b.c>", strings.Repeat("é", 128), "=_", "=\r\n")
	f.Fuzz(func(t *testing.T, to, subject, text, html string) {
		raw, err := Build(goodConfig(), Message{ID: "fuzz", To: to, Subject: subject, Text: text, HTML: html}, when)
		if err != nil {
			if raw != nil {
				t.Fatal("an error and a message")
			}
			return
		}
		checkHeaderSection(t, raw)
		h, parts := parse(t, raw)
		// A reader trims the spaces around a header's value; nothing else may change.
		if s, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); err != nil || s != strings.Trim(subject, " \t") {
			t.Fatalf("subject %q reads back as %q, %v", subject, s, err)
		}
		crlf := func(s string) string {
			return strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n"), "\n", "\r\n")
		}
		want := 1
		if html != "" {
			want = 2
		}
		if len(parts) != want || parts[0].body != crlf(text) || (html != "" && parts[1].body != crlf(html)) {
			t.Fatalf("parts %q for text %q html %q", parts, text, html)
		}
	})
}
