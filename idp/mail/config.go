// Package mail turns a queued message into MIME (Build) and delivers it over SMTP (Sender). It
// knows nothing of the store: the outbox hands it a Message and decides from Permanent whether
// a failed one is dropped or retried.
package mail

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"
)

// The values of Config.TLS.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS, which the server must offer
	TLSImplicit = "implicit" // TLS from the first byte (port 465)
	TLSNone     = "none"     // no TLS at all: only to a loopback host
)

// DefaultTimeout bounds a whole delivery (dial, TLS, the SMTP exchange) when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Config is how to reach the SMTP server and who the mail is from.
type Config struct {
	Host      string
	Port      int
	TLS       string // "starttls" | "implicit" | "none"
	Username  string // AUTH PLAIN when set, only ever over TLS or to loopback
	Password  string
	From      string // "Example login <login@example.com>"
	HelloName string // the EHLO name; net/smtp's "localhost" when empty
	Timeout   time.Duration

	// RootCAs verifies the server's certificate instead of the system's roots (tests, a private CA).
	RootCAs *x509.CertPool
}

// Validate reports the first thing wrong with c, naming the setting.
func (c Config) Validate() error {
	if c.Host == "" {
		return errors.New("smtp host is required")
	}
	if strings.ContainsFunc(c.Host, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune("/@[]", r) }) {
		return fmt.Errorf("smtp host %q is not a host name or IP address (an IPv6 address without brackets)", c.Host)
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("smtp port %d is not between 1 and 65535", c.Port)
	}
	switch c.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !IsLoopback(c.Host) {
			return fmt.Errorf("smtp tls: none is only allowed for a loopback host (localhost, 127.0.0.0/8, ::1), not %q: use starttls or implicit", c.Host)
		}
	default:
		return fmt.Errorf("smtp tls %q is not one of starttls, implicit, none", c.TLS)
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("smtp username and password go together: set both or neither")
	}
	// net/smtp's PlainAuth sends the password without TLS only to these names; say so now
	// rather than fail at every delivery.
	if c.TLS == TLSNone && c.Username != "" && c.Host != "localhost" && c.Host != "127.0.0.1" && c.Host != "::1" {
		return fmt.Errorf("smtp username with tls: none needs host localhost, 127.0.0.1 or ::1, not %q: the password is sent without TLS only there", c.Host)
	}
	if strings.ContainsAny(c.Username, "\r\n\x00") || strings.ContainsAny(c.Password, "\r\n\x00") {
		return errors.New("smtp username or password holds a line break or NUL")
	}
	if strings.ContainsAny(c.HelloName, "\r\n") || strings.ContainsFunc(c.HelloName, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return fmt.Errorf("smtp hello name %q is not a host name", c.HelloName)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("smtp timeout %s is negative", c.Timeout)
	}
	if _, err := fromAddress(c.From); err != nil {
		return err
	}
	return nil
}

// IsLoopback reports whether host is "localhost" or a loopback IP address (127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fromAddress parses the configured From: one address, no line break anywhere, not even in a
// display name that RFC 2047 decoding produced.
func fromAddress(from string) (*mail.Address, error) {
	if from == "" {
		return nil, errors.New("smtp from is required")
	}
	if strings.ContainsAny(from, "\r\n") {
		return nil, errors.New("smtp from holds a line break")
	}
	a, err := parseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("smtp from %q: %w", from, err)
	}
	return a, nil
}

// parseAddress is net/mail.ParseAddress plus what an SMTP envelope needs: an ASCII address
// (no SMTPUTF8) with a domain, and a display name without control characters.
func parseAddress(s string) (*mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, err
	}
	if hasControl(a.Name) {
		return nil, errors.New("the display name holds a control character")
	}
	for _, r := range a.Address {
		if r <= ' ' || r >= 0x7f {
			return nil, errors.New("the address is not plain ASCII")
		}
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return nil, errors.New("the address has no domain")
	}
	if len(a.Address) > maxAddress {
		return nil, fmt.Errorf("the address is longer than %d bytes", maxAddress)
	}
	return a, nil
}

// hasControl reports a C0 control character (tab aside) or DEL in s.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f })
}
