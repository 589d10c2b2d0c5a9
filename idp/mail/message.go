package mail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on what Build accepts.
const (
	maxID      = 128
	maxAddress = 254     // RFC 5321's path limit, less the brackets
	maxTo      = 512     // the whole To value, display name included
	maxSubject = 256     // bytes before encoding: the encoded header stays one line under 998
	maxBody    = 1 << 20 // each of Text and HTML
)

var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// Message is one mail to one recipient.
type Message struct {
	ID      string // stable per queued message: the Message-ID's left part, the same on every attempt
	To      string // one address, optionally with a display name
	Subject string
	Text    string // the text/plain part (required)
	HTML    string // the text/html part (optional)
}

// Build returns m as a MIME message from cfg.From, dated now: multipart/alternative with the
// text part and then the HTML part, each UTF-8 and quoted-printable, and the Message-ID
// <ID@from's domain>, so a receiver can recognise a resend. It refuses, building nothing, a line
// break or control character in To, Subject or a display name, an address net/mail refuses,
// more than one recipient and anything over the bounds. The same (cfg, m, now) builds the same
// bytes.
func Build(cfg Config, m Message, now time.Time) ([]byte, error) {
	from, err := fromAddress(cfg.From)
	if err != nil {
		return nil, err
	}
	to, err := recipient(m.To)
	if err != nil {
		return nil, err
	}
	if err := checkID(m.ID); err != nil {
		return nil, err
	}
	if err := checkSubject(m.Subject); err != nil {
		return nil, err
	}
	if m.Text == "" {
		return nil, errors.New("mail: the text part is empty")
	}
	for _, p := range []struct{ name, body string }{{"text", m.Text}, {"html", m.HTML}} {
		if len(p.body) > maxBody {
			return nil, fmt.Errorf("mail: the %s part is longer than %d bytes", p.name, maxBody)
		}
		if !utf8.ValidString(p.body) {
			return nil, fmt.Errorf("mail: the %s part is not valid UTF-8", p.name)
		}
	}

	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	sum := sha256.Sum256([]byte(m.ID))
	// "=_" never occurs in quoted-printable output ("=" is always followed by hex digits or a
	// line break there), so no body can contain the boundary.
	boundary := "=_" + hex.EncodeToString(sum[:16])

	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+m.ID+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": boundary}))
	b.WriteString("\r\n")

	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("mail: boundary: %w", err)
	}
	parts := []struct{ typ, body string }{{"text/plain", m.Text}}
	if m.HTML != "" {
		parts = append(parts, struct{ typ, body string }{"text/html", m.HTML})
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", p.typ+"; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := mw.CreatePart(h)
		if err != nil {
			return nil, fmt.Errorf("mail: part: %w", err)
		}
		qp := quotedprintable.NewWriter(w)
		// Every line break, CR LF, lone CR or lone LF, as LF, which the writer sends as CR LF: its
		// own handling of a lone CR loses the next LF when a byte it escapes comes between.
		if _, err := qp.Write([]byte(lineBreaks.Replace(p.body))); err != nil {
			return nil, fmt.Errorf("mail: encode: %w", err)
		}
		if err := qp.Close(); err != nil {
			return nil, fmt.Errorf("mail: encode: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	return b.Bytes(), nil
}

// recipient parses To: exactly one address, no line break or control character.
func recipient(s string) (*mail.Address, error) {
	if s == "" {
		return nil, errors.New("mail: no recipient")
	}
	if len(s) > maxTo {
		return nil, fmt.Errorf("mail: the recipient is longer than %d bytes", maxTo)
	}
	if strings.ContainsAny(s, "\r\n") || hasControl(s) {
		return nil, errors.New("mail: the recipient holds a line break or control character")
	}
	a, err := parseAddress(s)
	if err != nil {
		// net/mail's error may quote the input; the recipient is not a secret, but keep it short.
		return nil, fmt.Errorf("mail: the recipient is not one address: %w", err)
	}
	return a, nil
}

// checkID accepts what may stand left of the @ in a Message-ID without quoting.
func checkID(id string) error {
	if id == "" {
		return errors.New("mail: the message has no id")
	}
	if len(id) > maxID {
		return fmt.Errorf("mail: the message id is longer than %d bytes", maxID)
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-' || r == '_') {
			return errors.New("mail: the message id may hold only letters, digits, '.', '-' and '_'")
		}
	}
	if id[0] == '.' || id[len(id)-1] == '.' || strings.Contains(id, "..") {
		return errors.New("mail: the message id has a misplaced '.'")
	}
	return nil
}

func checkSubject(s string) error {
	if len(s) > maxSubject {
		return fmt.Errorf("mail: the subject is longer than %d bytes", maxSubject)
	}
	if !utf8.ValidString(s) {
		return errors.New("mail: the subject is not valid UTF-8")
	}
	if strings.ContainsAny(s, "\r\n") || hasControl(s) {
		return errors.New("mail: the subject holds a line break or control character")
	}
	return nil
}
