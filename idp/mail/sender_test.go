package mail

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

func newSender(t *testing.T, cfg Config) (*Sender, *proctest.LogBuffer) {
	t.Helper()
	log := &proctest.LogBuffer{}
	s, err := New(cfg, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s.WithClock(func() time.Time { return when }), log
}

// noSecrets fails when a body, a link's token or the password is in the error or the log.
func noSecrets(t *testing.T, err error, log *proctest.LogBuffer, cfg Config) {
	t.Helper()
	secrets := []string{"SECRET-TOKEN", "password/reset"}
	if cfg.Password != "" {
		secrets = append(secrets, cfg.Password)
	}
	for _, s := range secrets {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Fatalf("the error holds %q: %v", s, err)
		}
		if strings.Contains(log.String(), s) {
			t.Fatalf("the log holds %q:\n%s", s, log)
		}
	}
}

// A 5xx to the recipient or to the message is permanent: the caller drops the message. A 4xx
// is temporary, and so is a 5xx to MAIL FROM or AUTH, which is about this configuration: the
// message waits for it to be fixed. After the server accepted the message, a failed QUIT is
// not an error, so the message is not sent again.
func TestSendReplies(t *testing.T) {
	tests := []struct {
		name      string
		replies   map[string]string
		auth      bool
		step      string // "" when Send succeeds
		permanent bool
	}{
		{"accepted", nil, false, "", false},
		{"accepted with auth", nil, true, "", false},
		{"accepted, QUIT refused", map[string]string{"QUIT": "500 what"}, false, "", false},
		{"recipient unknown", map[string]string{"RCPT": "550 5.1.1 no such user"}, false, "rcpt to", true},
		{"mailbox full", map[string]string{"RCPT": "452 4.2.2 mailbox full"}, false, "rcpt to", false},
		{"greylisted", map[string]string{"RCPT": "451 4.7.1 try later"}, false, "rcpt to", false},
		{"message refused", map[string]string{"DATAEND": "554 5.7.1 spam"}, false, "data", true},
		{"message deferred", map[string]string{"DATAEND": "451 4.3.0 later"}, false, "data", false},
		{"DATA refused", map[string]string{"DATA": "554 5.5.1 no valid recipients"}, false, "data", true},
		{"sender refused", map[string]string{"MAIL": "550 5.7.1 not your domain"}, false, "mail from", false},
		{"credentials refused", map[string]string{"AUTH": "535 5.7.8 bad credentials"}, true, "auth", false},
		{"no service", map[string]string{"GREETING": "554 no service"}, false, "greeting", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSMTP{replies: tt.replies}
			if tt.auth {
				f.ext = []string{"AUTH PLAIN"}
			}
			startFake(t, f, nil)
			cfg := f.config()
			if tt.auth {
				cfg.Username, cfg.Password = "jwtidp", "smtp-password-123"
			}
			s, log := newSender(t, cfg)
			err := s.Send(context.Background(), goodMessage())
			noSecrets(t, err, log, cfg)
			cmds, data := f.got()
			if tt.step == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if len(data) != 1 || !strings.Contains(data[0], "Message-ID: <01J9ZK.reset-7f3a@example.com>") {
					t.Fatalf("the server got %q", data)
				}
				want := []string{"EHLO localhost", "MAIL FROM:<login@example.com>", "RCPT TO:<ann@example.org>", "DATA", "QUIT"}
				if tt.auth {
					want = []string{"EHLO localhost", "AUTH PLAIN AGp3dGlkcABzbXRwLXBhc3N3b3JkLTEyMw==", "MAIL FROM:<login@example.com>", "RCPT TO:<ann@example.org>", "DATA", "QUIT"}
				}
				if strings.Join(cmds, "|") != strings.Join(want, "|") {
					t.Fatalf("commands %q, want %q", cmds, want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Step != tt.step {
				t.Fatalf("Send: %v, want an *Error at %q", err, tt.step)
			}
			if Permanent(err) != tt.permanent {
				t.Fatalf("Permanent(%v) = %v", err, !tt.permanent)
			}
			if len(data) != 0 {
				t.Fatalf("the server accepted %q", data)
			}
		})
	}
}

// A message Build refuses is a permanent error, and no connection is made.
func TestSendRefusesBadMessage(t *testing.T) {
	f := startFake(t, &fakeSMTP{}, nil)
	s, log := newSender(t, f.config())
	m := goodMessage()
	m.To = "ann@example.org\r\nBcc: eve@evil.example"
	err := s.Send(context.Background(), m)
	if !Permanent(err) || !strings.Contains(err.Error(), "smtp build:") {
		t.Fatalf("Send: %v (permanent %v)", err, Permanent(err))
	}
	noSecrets(t, err, log, f.config())
	if len(f.accepted) != 0 {
		t.Fatal("Send connected for a message it cannot build")
	}
}

// tls: starttls requires STARTTLS: a server that does not offer it gets neither the password
// nor the message.
func TestSendRequiresStartTLS(t *testing.T) {
	f := startFake(t, &fakeSMTP{ext: []string{"AUTH PLAIN"}}, nil)
	cfg := f.config()
	cfg.TLS, cfg.Username, cfg.Password = "starttls", "jwtidp", "smtp-password-123"
	s, log := newSender(t, cfg)
	err := s.Send(context.Background(), goodMessage())
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") || Permanent(err) {
		t.Fatalf("Send: %v", err)
	}
	noSecrets(t, err, log, cfg)
	if cmds, data := f.got(); len(cmds) != 1 || !strings.HasPrefix(cmds[0], "EHLO") || len(data) != 0 {
		t.Fatalf("the server got %q and %q", cmds, data)
	}
}

// STARTTLS and implicit TLS to a server whose certificate Config.RootCAs trusts deliver, with
// the password sent only inside TLS; the same server with the system's roots is refused
// before anything is sent.
func TestSendTLS(t *testing.T) {
	serverConf, roots, _, _ := testCA(t)
	for _, mode := range []string{"starttls", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			for _, trusted := range []bool{true, false} {
				f := &fakeSMTP{ext: []string{"AUTH PLAIN"}, tlsConf: serverConf}
				implicit := serverConf
				if mode == "starttls" {
					f.ext = append(f.ext, "STARTTLS")
					implicit = nil
				}
				startFake(t, f, implicit)
				cfg := f.config()
				cfg.TLS, cfg.Username, cfg.Password = mode, "jwtidp", "smtp-password-123"
				if trusted {
					cfg.RootCAs = roots
				}
				s, log := newSender(t, cfg)
				err := s.Send(context.Background(), goodMessage())
				noSecrets(t, err, log, cfg)
				cmds, data := f.got()
				if trusted {
					if err != nil || len(data) != 1 {
						t.Fatalf("Send: %v; the server got %q", err, data)
					}
					continue
				}
				if err == nil || Permanent(err) || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("Send to an untrusted server: %v", err)
				}
				for _, c := range cmds {
					if strings.HasPrefix(c, "AUTH") || strings.HasPrefix(c, "MAIL") {
						t.Fatalf("the untrusted server got %q", cmds)
					}
				}
			}
		})
	}
}

// A server that never answers: Send ends when the context is cancelled, or at Config.Timeout,
// with a temporary error.
func TestSendCancelAndTimeout(t *testing.T) {
	f := startFake(t, &fakeSMTP{silent: true}, nil)
	s, _ := newSender(t, f.config())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Send(ctx, goodMessage()) }()
	<-f.accepted
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || Permanent(err) {
		t.Fatalf("Send after cancel: %v", err)
	}

	cfg := f.config()
	cfg.Timeout = 50 * time.Millisecond
	s, _ = newSender(t, cfg)
	err = s.Send(context.Background(), goodMessage())
	if !errors.Is(err, context.DeadlineExceeded) || Permanent(err) {
		t.Fatalf("Send to a silent server: %v", err)
	}
}
