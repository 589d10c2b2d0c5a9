package mail

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSMTP is a scripted SMTP server for what Mailpit cannot be made to do: refuse a recipient
// with 550, lack STARTTLS, never answer. It serves one connection at a time and records the
// commands it got.
type fakeSMTP struct {
	ln       net.Listener
	ext      []string          // EHLO extensions besides the name, e.g. "STARTTLS", "AUTH PLAIN"
	replies  map[string]string // a verb (or "GREETING", "DATAEND") → its reply line instead of the usual
	tlsConf  *tls.Config       // for STARTTLS
	silent   bool              // accept, then never answer
	accepted chan struct{}     // one value per connection accepted

	mu   sync.Mutex
	cmds []string // every command line received
	data []string // every message accepted after DATA
}

func startFake(t *testing.T, f *fakeSMTP, implicit *tls.Config) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit != nil {
		ln = tls.NewListener(ln, implicit)
	}
	f.ln = ln
	f.accepted = make(chan struct{}, 16)
	if f.replies == nil {
		f.replies = map[string]string{}
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted <- struct{}{}
			f.serve(c)
		}
	}()
	return f
}

// config is a Config for this server: tls none, to 127.0.0.1.
func (f *fakeSMTP) config() Config {
	port := f.ln.Addr().(*net.TCPAddr).Port
	return Config{Host: "127.0.0.1", Port: port, TLS: "none", From: "Example login <login@example.com>"}
}

func (f *fakeSMTP) reply(verb, usual string) string {
	if r, ok := f.replies[verb]; ok {
		return r
	}
	return usual
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	if f.silent {
		io.Copy(io.Discard, c) // until the client hangs up
		return
	}
	tc := textproto.NewConn(c)
	tc.PrintfLine("%s", f.reply("GREETING", "220 fake ESMTP"))
	for {
		line, err := tc.ReadLine()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.cmds = append(f.cmds, line)
		f.mu.Unlock()
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO", "HELO":
			lines := append([]string{"fake"}, f.ext...)
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				tc.PrintfLine("250%s%s", sep, l)
			}
		case "STARTTLS":
			tc.PrintfLine("%s", f.reply(verb, "220 go ahead"))
			ts := tls.Server(c, f.tlsConf)
			if ts.Handshake() != nil {
				return
			}
			c = ts
			tc = textproto.NewConn(ts)
		case "AUTH":
			tc.PrintfLine("%s", f.reply(verb, "235 2.7.0 ok"))
		case "MAIL", "RCPT", "RSET", "NOOP":
			tc.PrintfLine("%s", f.reply(verb, "250 ok"))
		case "DATA":
			r := f.reply(verb, "354 go on")
			tc.PrintfLine("%s", r)
			if !strings.HasPrefix(r, "354") {
				continue
			}
			b, err := io.ReadAll(tc.DotReader())
			if err != nil {
				return
			}
			r = f.reply("DATAEND", "250 2.0.0 queued")
			if strings.HasPrefix(r, "250") { // accepted
				f.mu.Lock()
				f.data = append(f.data, string(b))
				f.mu.Unlock()
			}
			tc.PrintfLine("%s", r)
		case "QUIT":
			tc.PrintfLine("%s", f.reply(verb, "221 bye"))
			return
		default:
			tc.PrintfLine("502 not here")
		}
	}
}

// got returns the commands and messages received so far.
func (f *fakeSMTP) got() (cmds, data []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...), append([]string(nil), f.data...)
}

// testCA makes a CA and a server certificate from it for 127.0.0.1 and localhost: the server's
// tls.Config, a pool that trusts it, and the certificate and key as PEM files (for Mailpit).
func testCA(t *testing.T) (server *tls.Config, roots *x509.CertPool, certFile, keyFile string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(caCert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}}, roots, certFile, keyFile
}
