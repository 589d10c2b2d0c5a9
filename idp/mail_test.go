package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// The owner of a verified address is told by mail, through a real SMTP server (Mailpit), when
// their password changes; the change does not wait for the mail server: with it down, the
// request succeeds, and the notice goes out once it is back, exactly once.
func TestPasswordNoticeThroughMailpit(t *testing.T) {
	mp := proctest.StartMailpit(t)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--admin-token", "cli-admin", "--rate-limit", "0",
		"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>")
	proctest.Secret("correct-horse-9")
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "mona", "password": "correct-horse-9", "email": "mona@example.com"}); a.status != 201 {
		t.Fatalf("signup: %d %s", a.status, a.body)
	}
	change := func(from, to string) {
		t.Helper()
		tok := login(t, p.URL, "mona", from)["access_token"].(string)
		b, _ := json.Marshal(map[string]string{"current_password": from, "new_password": to})
		if a := do(t, "POST", p.URL+"/account/password", "application/json", strings.NewReader(string(b)), "Authorization", "Bearer "+tok); a.status != 204 {
			t.Fatalf("password change: %d %s", a.status, a.body)
		}
	}
	// An unverified address hears nothing: it may not be mona's.
	change("correct-horse-9", "second-horse-10")
	if out, err := runIDP([]string{"users", "verify-email", "mona", "mona@example.com", "--url", p.URL, "--admin-token", "cli-admin"}); err != nil {
		t.Fatalf("users verify-email: %v\n%s", err, out)
	}
	change("second-horse-10", "third-horse-11")
	got := mp.WaitFor(t, "mona@example.com", 1)
	if len(got) != 1 || got[0].Subject != "Your password was changed" || got[0].From.Address != "login@example.com" {
		t.Fatalf("the notice: %+v", got)
	}
	text, html, _ := mp.Message(t, got[0].ID)
	if !strings.Contains(text, "Hello mona") || !strings.Contains(html, "Your password was changed") {
		t.Fatalf("the notice's bodies:\n%s\n%s", text, html)
	}

	// The mail server is down: the change succeeds, and its notice waits in the store.
	mp.Stop()
	change("third-horse-11", "fourth-horse-12")
	if !proctest.Eventually(10*time.Second, func() bool { return strings.Contains(p.Log(), "mail not sent: will retry") }) {
		t.Fatalf("no failed delivery logged:\n%s", p.Log())
	}
	mp.Start()
	// Back: the retry is due 30 s later, on the IdP's clock; the poll finds it.
	if !proctest.Eventually(20*time.Second, func() bool {
		clk.Advance(10 * time.Second)
		return len(mp.To(t, "mona@example.com")) >= 2
	}) {
		t.Fatalf("the notice was not delivered once the server was back:\n%s", p.Log())
	}
	// Exactly once: two sent, nothing left in the queue to send again.
	if !proctest.Eventually(10*time.Second, func() bool {
		m := string(do(t, "GET", p.URL+"/metrics", "", nil).body)
		return strings.Contains(m, `idp_mail_deliveries_total{outcome="sent"} 2`) && strings.Contains(m, "idp_mail_queued 0")
	}) {
		t.Fatalf("the metrics do not show two sent and an empty queue")
	}
	clk.Advance(time.Hour)
	if n := len(mp.To(t, "mona@example.com")); n != 2 {
		t.Fatalf("%d notices, want 2", n)
	}

	// Turning TOTP on is told too; the writes after it (the code's throttle) carry no mail.
	tok := login(t, p.URL, "mona", "fourth-horse-12")["access_token"].(string)
	a := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"fourth-horse-12"}`)
	if a.status != 200 {
		t.Fatalf("enrol: %d %s", a.status, a.body)
	}
	secret := a.json(t)["secret"].(string)
	proctest.Secret(secret)
	code, _ := totp.GenerateCode(secret, clk.Now())
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code+`"}`); a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	if got := mp.WaitFor(t, "mona@example.com", 3); got[0].Subject != "Your second factors were changed" {
		t.Fatalf("the second-factor notice: %+v", got[0])
	}
	lg := p.Log()
	for _, s := range []string{"correct-horse-9", "second-horse-10", "third-horse-11", "fourth-horse-12"} {
		if strings.Contains(lg, s) {
			t.Fatal("a password reached the log")
		}
	}
	if !strings.Contains(lg, `msg="mail sent"`) || !strings.Contains(lg, "to_domain=example.com") || strings.Contains(lg, "mona@example.com") {
		t.Fatalf("the delivery's log lines:\n%s", lg)
	}
}
