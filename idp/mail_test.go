package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	got := mp.WaitFor(t, "mona@example.com", 2) // the signup's confirmation link, then the notice
	if len(got) != 2 || got[0].Subject != "Your password was changed" || got[0].From.Address != "login@example.com" {
		t.Fatalf("the notice: %+v", got)
	}
	text, html, _ := mp.Message(t, got[0].ID)
	if !strings.Contains(text, "Hello mona") || !strings.Contains(html, "Your password was changed") {
		t.Fatalf("the notice's bodies:\n%s\n%s", text, html)
	}

	// The mail server is down: the change succeeds, and its notice waits in the store.
	mp.Stop()
	change("third-horse-11", "fourth-horse-12")
	if !p.WaitLog(10*time.Second, func(log string) bool { return strings.Contains(log, "mail not sent: will retry") }) {
		t.Fatalf("no failed delivery logged:\n%s", p.Log())
	}
	mp.Start()
	// Back: the retry is due 30 s later, on the IdP's clock; the poll finds it.
	if !proctest.Eventually(20*time.Second, func() bool {
		clk.Advance(10 * time.Second)
		return len(mp.To(t, "mona@example.com")) >= 3
	}) {
		t.Fatalf("the notice was not delivered once the server was back:\n%s", p.Log())
	}
	// Exactly once: three sent (the confirmation, two notices), nothing left to send again.
	if !proctest.Eventually(10*time.Second, func() bool {
		m := string(do(t, "GET", p.URL+"/metrics", "", nil).body)
		return strings.Contains(m, `idp_mail_deliveries_total{outcome="sent"} 3`) && strings.Contains(m, "idp_mail_queued 0")
	}) {
		t.Fatalf("the metrics do not show three sent and an empty queue")
	}
	clk.Advance(time.Hour)
	if n := len(mp.To(t, "mona@example.com")); n != 3 {
		t.Fatalf("%d messages, want the confirmation and two notices", n)
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
	if got := mp.WaitFor(t, "mona@example.com", 4); got[0].Subject != "Your second factors were changed" {
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

var resetLink = regexp.MustCompile(`http://\S+/password/reset\?token=[A-Za-z0-9_-]+`)

// A forgotten password, through a real SMTP server: the same answer for an account and for
// none; the mailed link sets a new password once (the old one and every old session dead), and
// not again, nor after 30 minutes, nor with a password the policy refuses (which leaves it
// live). An admin can print a link instead, also where no mail is set up.
func TestPasswordResetThroughMailpit(t *testing.T) {
	mp := proctest.StartMailpit(t)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--admin-token", "audit-admin", "--rate-limit", "0",
		"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>")
	proctest.Secret("correct-horse-9")
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "ann", "password": "correct-horse-9", "email": "Ann@Example.com"}); a.status != 201 {
		t.Fatalf("signup: %d %s", a.status, a.body)
	}
	if out, err := runIDP([]string{"users", "verify-email", "ann", "Ann@Example.com", "--url", p.URL, "--admin-token", "audit-admin"}); err != nil {
		t.Fatalf("users verify-email: %v\n%s", err, out)
	}
	old := login(t, p.URL, "ann", "correct-horse-9")
	forgot := func(login string) answer {
		t.Helper()
		return postJSON(t, p.URL+"/password/forgot", map[string]string{"login": login})
	}
	first := forgot("stranger@example.com")
	if a := forgot("ANN@example.com"); a.status != 202 || first.status != 202 || string(a.body) != string(first.body) ||
		!strings.Contains(string(a.body), "If the account exists") {
		t.Fatalf("an account and none answer apart: %d %s / %d %s", a.status, a.body, first.status, first.body)
	}
	for _, bad := range []string{"", strings.Repeat("a", 321), "ann\r\nBcc: x@evil.example"} {
		if a := forgot(bad); a.status != 400 {
			t.Errorf("login %q: %d %s", bad, a.status, a.body)
		}
	}
	got := mp.WaitFor(t, "ann@example.com", 2) // the signup's confirmation link, then the reset
	text, _, _ := mp.Message(t, got[0].ID)
	link := resetLink.FindString(text)
	if got[0].Subject != "Reset your password" || link == "" {
		t.Fatalf("the reset mail: %+v\n%s", got[0], text)
	}
	proctest.Secret(link)
	tok := tokenIn(link)
	reset := func(tok, pw string) answer {
		t.Helper()
		return postJSON(t, p.URL+"/password/reset", map[string]string{"token": tok, "new_password": pw})
	}
	if a := reset(tok, "ann"); a.status != 400 {
		t.Fatalf("a password the policy refuses: %d %s", a.status, a.body)
	}
	if a := reset(tok+"x", "brand-new-horse-5"); a.status != 400 || !strings.Contains(string(a.body), "not valid") {
		t.Fatalf("a token that is no link's: %d %s", a.status, a.body)
	}
	if a := reset(tok, "brand-new-horse-5"); a.status != 204 {
		t.Fatalf("the reset: %d %s", a.status, a.body)
	}
	if a := reset(tok, "another-horse-6"); a.status != 400 {
		t.Fatalf("the link a second time: %d %s", a.status, a.body)
	}
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "ann", "password": "correct-horse-9"}); a.status != 401 {
		t.Fatalf("the old password: %d", a.status)
	}
	login(t, p.URL, "ann", "brand-new-horse-5")
	if a := refreshGrant(t, p.URL, old["refresh_token"].(string)); a.status != 400 {
		t.Fatalf("a refresh token from before the reset: %d %s", a.status, a.body)
	}
	// The owner is told; a stranger's address got nothing.
	if got := mp.WaitFor(t, "ann@example.com", 3); got[0].Subject != "Your password was changed" {
		t.Fatalf("the notice after the reset: %+v", got[0])
	}
	if n := len(mp.To(t, "stranger@example.com")); n != 0 {
		t.Fatalf("%d messages to an address no account has", n)
	}

	// An expired link is refused.
	forgot("ann")
	got = mp.WaitFor(t, "ann@example.com", 4)
	text, _, _ = mp.Message(t, got[0].ID)
	late := resetLink.FindString(text)
	proctest.Secret(late)
	clk.Advance(31 * time.Minute)
	if a := reset(tokenIn(late), "late-horse-7"); a.status != 400 {
		t.Fatalf("a link after 30 minutes: %d %s", a.status, a.body)
	}

	// The admin prints a link for an account (the CLI resolves the name).
	out, err := runIDP([]string{"users", "reset-password", "ann", "--print-link", "--url", p.URL, "--admin-token", "audit-admin"})
	printed := resetLink.FindString(out)
	if err != nil || printed == "" {
		t.Fatalf("users reset-password --print-link: %v\n%s", err, out)
	}
	proctest.Secret(printed)
	if a := reset(tokenIn(printed), "printed-horse-8"); a.status != 204 {
		t.Fatalf("the printed link: %d %s", a.status, a.body)
	}
	if out, err := runIDP([]string{"users", "reset-password", "ann", "--url", p.URL, "--admin-token", "audit-admin"}); err != nil || !strings.Contains(out, "mailed") {
		t.Fatalf("users reset-password: %v\n%s", err, out)
	}
	mp.WaitFor(t, "ann@example.com", 6) // the printed link's notice, and the admin's link
	events, _ := auditEvents(t, p.URL, "type=password_reset")
	if len(events) != 2 {
		t.Fatalf("password_reset events: %+v", events)
	}
	if lg := p.Log(); strings.Contains(lg, tok) || strings.Contains(lg, "ann@example.com") {
		t.Fatal("a link's token or the address reached the log")
	}
}

// Without a mail server, asking for a reset by mail says so; an admin can still print a link.
func TestPasswordResetWithoutMail(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin")
	signup(t, p.URL, "bea", "correct-horse-9")
	if a := postJSON(t, p.URL+"/password/forgot", map[string]string{"login": "bea"}); a.status != 503 || !strings.Contains(string(a.body), "ask an administrator") {
		t.Fatalf("forgot without mail: %d %s", a.status, a.body)
	}
	if out, err := runIDP([]string{"users", "reset-password", "bea", "--url", p.URL, "--admin-token", "cli-admin"}); err == nil || !strings.Contains(out, "--print-link") {
		t.Fatalf("users reset-password without mail: %v\n%s", err, out)
	}
	out, err := runIDP([]string{"users", "reset-password", "bea", "--print-link", "--url", p.URL, "--admin-token", "cli-admin"})
	link := resetLink.FindString(out)
	if err != nil || link == "" {
		t.Fatalf("users reset-password --print-link: %v\n%s", err, out)
	}
	proctest.Secret(link)
	tok := tokenIn(link)
	// bea turns TOTP on: that change of credentials kills the link printed before it.
	at := login(t, p.URL, "bea", "correct-horse-9")["access_token"].(string)
	secret := bearerJSON(t, "POST", p.URL+"/account/totp", at, `{"current_password":"correct-horse-9"}`).json(t)["secret"].(string)
	proctest.Secret(secret)
	code, _ := totp.GenerateCode(secret, time.Now())
	confirmed := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", at, `{"code":"`+code+`"}`)
	if confirmed.status != 200 {
		t.Fatalf("confirm: %d %s", confirmed.status, confirmed.body)
	}
	recovery := confirmed.json(t)["recovery_codes"].([]any)[0].(string)
	proctest.Secret(recovery)
	reset := func(otp string) answer {
		return postJSON(t, p.URL+"/password/reset", map[string]string{"token": tok, "new_password": "brand-new-horse-5", "otp": otp})
	}
	if a := reset(recovery); a.status != 400 {
		t.Fatalf("a link older than the second factor: %d %s", a.status, a.body)
	}
	// A new link: a reset does not get around the second factor, and a refused code leaves the
	// link live.
	out, err = runIDP([]string{"users", "reset-password", "bea", "--print-link", "--url", p.URL, "--admin-token", "cli-admin"})
	if link = resetLink.FindString(out); err != nil || link == "" {
		t.Fatalf("users reset-password --print-link: %v\n%s", err, out)
	}
	proctest.Secret(link)
	tok = tokenIn(link)
	for _, otp := range []string{"", "000000"} {
		if a := reset(otp); a.status != 401 {
			t.Fatalf("a reset with the code %q: %d %s", otp, a.status, a.body)
		}
	}
	if a := reset(recovery); a.status != 204 {
		t.Fatalf("a reset with a recovery code: %d %s", a.status, a.body)
	}
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "bea", "password": "brand-new-horse-5"}); a.status != 401 ||
		!strings.Contains(string(a.body), "One-time code required") {
		t.Fatalf("the new password still asks for the code: %d %s", a.status, a.body)
	}
	// A disabled user gets no link: it could never be used.
	if out, err := runIDP([]string{"users", "disable", "bea", "--url", p.URL, "--admin-token", "cli-admin"}); err != nil {
		t.Fatalf("users disable: %v\n%s", err, out)
	}
	if out, err := runIDP([]string{"users", "reset-password", "bea", "--print-link", "--url", p.URL, "--admin-token", "cli-admin"}); err == nil || !strings.Contains(out, "disabled") {
		t.Fatalf("a reset link for a disabled user: %v\n%s", err, out)
	}
}

// The browser test: Chromium follows "Forgot your password?" from the login page, the
// link arrives in Mailpit, the page it opens sets a new password; the old password is dead and
// the link is refused a second time.
func TestPasswordResetInChromium(t *testing.T) {
	mp := proctest.StartMailpit(t)
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin", "--rate-limit", "0",
		"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>")
	proctest.Secret("correct-horse-9")
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "cleo", "password": "correct-horse-9", "email": "cleo@example.com"}); a.status != 201 {
		t.Fatalf("signup: %d %s", a.status, a.body)
	}
	if out, err := runIDP([]string{"users", "verify-email", "cleo", "cleo@example.com", "--url", p.URL, "--admin-token", "cli-admin"}); err != nil {
		t.Fatalf("users verify-email: %v\n%s", err, out)
	}
	br := proctest.NewBrowser(t, 60*time.Second)
	step, value := br.Step, br.Value
	step("the login page's link", chromedp.Navigate(p.URL+"/login"), chromedp.WaitVisible(`#forgot`), chromedp.Click(`#forgot`),
		chromedp.WaitVisible(`input[name=login]`))
	step("ask for a link", chromedp.SendKeys(`input[name=login]`, "cleo"), chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#done`))
	got := mp.WaitFor(t, "cleo@example.com", 2) // the signup's confirmation link, then the reset
	text, _, _ := mp.Message(t, got[0].ID)
	link := resetLink.FindString(text)
	if link == "" {
		t.Fatalf("no link in the mail:\n%s", text)
	}
	proctest.Secret(link)
	step("the link's page", chromedp.Navigate(link), chromedp.WaitVisible(`input[name=new_password]`))
	// API.md: the form's answer is the signed-in page — the account page, signed in with the
	// new password.
	step("a new password", chromedp.SendKeys(`input[name=new_password]`, "brand-new-horse-5"), chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`#username`))
	if who := value(chromedp.Text(`#username`)); who != "cleo" {
		t.Fatalf("after the reset, signed in as %q", who)
	}
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "cleo", "password": "correct-horse-9"}); a.status != 401 {
		t.Fatalf("the old password: %d", a.status)
	}
	login(t, p.URL, "cleo", "brand-new-horse-5")
	step("the link again", chromedp.Navigate(link), chromedp.WaitVisible(`input[name=new_password]`),
		chromedp.SendKeys(`input[name=new_password]`, "another-horse-6"), chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`p.error`))
	if msg := value(chromedp.Text(`p.error`)); !strings.Contains(msg, "not valid") {
		t.Fatalf("the link a second time: %q", msg)
	}
}

var verifyLink = regexp.MustCompile(`http://\S+/email/verify\?token=[A-Za-z0-9_-]+`)

// An address given at signup or changed later gets a confirmation link; its page changes
// nothing until its button is pressed, which verifies that exact address once. A link for an
// address changed since verifies nothing; the old verified address is told of the change.
func TestEmailVerificationThroughMailpit(t *testing.T) {
	mp := proctest.StartMailpit(t)
	p := startIDP(t, t.TempDir(), "--rate-limit", "0",
		"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>")
	proctest.Secret("correct-horse-9")
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "dora", "password": "correct-horse-9", "email": "dora@example.com"}); a.status != 201 {
		t.Fatalf("signup: %d %s", a.status, a.body)
	}
	linkIn := func(to string, n int) string {
		t.Helper()
		got := mp.WaitFor(t, to, n)
		text, _, _ := mp.Message(t, got[0].ID)
		link := verifyLink.FindString(text)
		if got[0].Subject != "Confirm your email address" || link == "" {
			t.Fatalf("the confirmation mail: %+v\n%s", got[0], text)
		}
		proctest.Secret(link)
		return link
	}
	verified := func() any {
		tok := login(t, p.URL, "dora", "correct-horse-9")["access_token"].(string)
		return userinfoOf(t, p.URL, tok)["email_verified"]
	}
	link := linkIn("dora@example.com", 1)
	if a := do(t, "GET", link, "", nil); a.status != 200 || !strings.Contains(string(a.body), `id="confirm"`) || verified() != false {
		t.Fatalf("the link's page: %d, verified %v\n%s", a.status, verified(), a.body)
	}
	tok := tokenIn(link)
	confirm := func(tok string) answer {
		return postForm(t, p.URL+"/email/verify", url.Values{"token": {tok}})
	}
	if a := confirm(tok); a.status != 200 || !strings.Contains(string(a.body), `id="done"`) || verified() != true {
		t.Fatalf("the confirmation: %d, verified %v\n%s", a.status, verified(), a.body)
	}
	if a := confirm(tok); a.status != 400 || !strings.Contains(string(a.body), "not valid") {
		t.Fatalf("the link a second time: %d %s", a.status, a.body)
	}

	// A new address: unverified, a link to it, and the old (verified) address told.
	at := login(t, p.URL, "dora", "correct-horse-9")["access_token"].(string)
	if a := putEmail(t, p.URL, at, "dora@example.org"); a.status != 200 {
		t.Fatalf("a new address: %d %s", a.status, a.body)
	}
	if got := mp.WaitFor(t, "dora@example.com", 2); got[0].Subject != "Your email address was changed" {
		t.Fatalf("the old address's notice: %+v", got[0])
	}
	stale := linkIn("dora@example.org", 1)
	// Changed again before confirming: the first link verifies nothing now.
	if a := putEmail(t, p.URL, at, "dora@example.net"); a.status != 200 {
		t.Fatalf("another address: %d %s", a.status, a.body)
	}
	if a := confirm(tokenIn(stale)); a.status != 400 || verified() != false {
		t.Fatalf("a link for an address changed since: %d, verified %v", a.status, verified())
	}
	fresh := linkIn("dora@example.net", 1)
	if a := postJSON(t, p.URL+"/email/verify", map[string]string{"token": tokenIn(fresh)}); a.status != 200 ||
		!strings.Contains(string(a.body), `"email_verified":true`) || verified() != true {
		t.Fatalf("the JSON confirmation: %d %s", a.status, a.body)
	}
	// A sign-up with dora's address: the same answer as with a free one, the address not
	// attached, and dora told.
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "mallory", "password": "correct-horse-9", "email": "DORA@example.net"}); a.status != 201 {
		t.Fatalf("a sign-up with dora's address: %d %s", a.status, a.body)
	}
	if got := mp.WaitFor(t, "dora@example.net", 2); !strings.HasPrefix(got[0].Subject, "Someone signed up with your email address") {
		t.Fatalf("dora's note: %+v", got[0])
	}
}

var inviteLink = regexp.MustCompile(`http://\S+/signup\?invitation=[A-Za-z0-9_-]+`)

// Sign-up by invitation only: without one /signup is refused; the mailed link's page makes the
// account once, with the invitation's address verified and its group; a withdrawn invitation
// and a used one make nothing.
func TestInvitationThroughMailpit(t *testing.T) {
	mp := proctest.StartMailpit(t)
	p := startIDP(t, t.TempDir(), "--admin-token", "audit-admin", "--rate-limit", "0", "--signup", "invite",
		"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>")
	proctest.Secret("correct-horse-9")
	cli := func(args ...string) string {
		t.Helper()
		out, err := runIDP(append(args, "--url", p.URL, "--admin-token", "audit-admin"))
		if err != nil {
			t.Fatalf("idp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	cli("groups", "add", "ops")
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "mallory", "password": "correct-horse-9"}); a.status != 403 ||
		!strings.Contains(string(a.body), "needs an invitation") {
		t.Fatalf("a sign-up without an invitation: %d %s", a.status, a.body)
	}
	if out, err := runIDP([]string{"users", "invite", "eve@example.com", "--group", "nope", "--url", p.URL, "--admin-token", "audit-admin"}); err == nil || !strings.Contains(out, `No group "nope"`) {
		t.Fatalf("an invitation into no group: %v\n%s", err, out)
	}
	cli("users", "invite", "Eve@Example.com", "--group", "ops")
	got := mp.WaitFor(t, "eve@example.com", 1)
	text, _, _ := mp.Message(t, got[0].ID)
	link := inviteLink.FindString(text)
	if link == "" || !strings.HasPrefix(got[0].Subject, "You are invited") {
		t.Fatalf("the invitation mail: %+v\n%s", got[0], text)
	}
	proctest.Secret(link)
	if a := do(t, "GET", link, "", nil); a.status != 200 || !strings.Contains(string(a.body), `id="make"`) {
		t.Fatalf("the invitation's page: %d %s", a.status, a.body)
	}
	inv := tokenIn(link)
	signupForm := func(user string) answer {
		return postForm(t, p.URL+"/signup", url.Values{"invitation": {inv}, "username": {user}, "password": {"correct-horse-9"}})
	}
	if a := signupForm("eve"); a.status != 201 || !strings.Contains(string(a.body), `id="done"`) {
		t.Fatalf("the invitation's sign-up: %d %s", a.status, a.body)
	}
	tok := login(t, p.URL, "eve", "correct-horse-9")["access_token"].(string)
	if info := userinfoOf(t, p.URL, tok); info["email"] != "Eve@Example.com" || info["email_verified"] != true {
		t.Fatalf("eve's address: %v", info)
	}
	if g := payload(t, tok)["groups"]; fmt.Sprint(g) != "[ops]" {
		t.Fatalf("eve's groups: %v", g)
	}
	if a := signupForm("eve2"); a.status != 400 || !strings.Contains(string(a.body), "not valid") {
		t.Fatalf("the invitation a second time: %d %s", a.status, a.body)
	}
	// A printed invitation, withdrawn, makes nothing.
	out := cli("users", "invite", "fay@example.com", "--print-link")
	printed := inviteLink.FindString(out)
	if printed == "" {
		t.Fatalf("users invite --print-link:\n%s", out)
	}
	proctest.Secret(printed)
	list := do(t, "GET", p.URL+"/admin/invitations", "", nil, "Authorization", "Bearer audit-admin")
	var invs struct {
		Result struct {
			Invitations []struct {
				ID, Email string
				Used      bool
			}
		} `json:"result"`
	}
	if err := json.Unmarshal(list.body, &invs); err != nil || len(invs.Result.Invitations) != 2 || !invs.Result.Invitations[0].Used ||
		invs.Result.Invitations[1].Email != "fay@example.com" || invs.Result.Invitations[1].Used {
		t.Fatalf("GET /admin/invitations: %d %s", list.status, list.body)
	}
	if a := do(t, "DELETE", p.URL+"/admin/invitations/"+invs.Result.Invitations[1].ID, "", nil, "Authorization", "Bearer audit-admin"); a.status != 204 {
		t.Fatalf("DELETE the invitation: %d %s", a.status, a.body)
	}
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "fay", "password": "correct-horse-9",
		"invitation": tokenIn(printed)}); a.status != 400 {
		t.Fatalf("a withdrawn invitation: %d %s", a.status, a.body)
	}
}

// An open sign-up limited to domains takes only addresses there.
func TestSignupEmailDomains(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--signup-email-domains", "Example.com,example.org")
	proctest.Secret("correct-horse-9")
	for email, want := range map[string]int{"": 403, "gil@example.net": 403, "gil@sub.example.com": 403, "gil@EXAMPLE.com": 201} {
		if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "gil", "password": "correct-horse-9", "email": email}); a.status != want {
			t.Errorf("signup with %q: %d %s, want %d", email, a.status, a.body, want)
		}
	}
	if out, err := runIDP([]string{"serve", "--signup", "sometimes", "--data", t.TempDir()}); err == nil || !strings.Contains(out, "be open, invite or closed") {
		t.Fatalf("--signup sometimes: %v\n%s", err, out)
	}
}

// What an attacker could do with the forgotten-password flow, and cannot: learn that an account
// exists from the login throttle (a reset moves no counter a login shares), flood its owner's
// mailbox (three links an hour, from anywhere), make a visitor's browser ask for one from another
// site, or use a link after the address it went to changed.
func TestPasswordResetAbuse(t *testing.T) {
	mp := proctest.StartMailpit(t)
	p := startIDP(t, t.TempDir(), "--admin-token", "cli-admin", "--rate-limit", "0",
		"--smtp-host", mp.SMTPHost, "--smtp-port", strconv.Itoa(mp.SMTPPort), "--smtp-tls", "none",
		"--smtp-from", "Example login <login@example.com>")
	proctest.Secret("correct-horse-9")
	if a := postJSON(t, p.URL+"/signup", map[string]string{"username": "hal", "password": "correct-horse-9", "email": "hal@example.com"}); a.status != 201 {
		t.Fatalf("signup: %d %s", a.status, a.body)
	}
	verify := func(address string) {
		t.Helper()
		if out, err := runIDP([]string{"users", "verify-email", "hal", address, "--url", p.URL, "--admin-token", "cli-admin"}); err != nil {
			t.Fatalf("users verify-email: %v\n%s", err, out)
		}
	}
	verify("hal@example.com")
	mp.WaitFor(t, "hal@example.com", 1) // the confirmation link of the signup
	forgot := func() {
		t.Helper()
		if a := postJSON(t, p.URL+"/password/forgot", map[string]string{"login": "hal"}); a.status != 202 {
			t.Fatalf("forgot: %d %s", a.status, a.body)
		}
	}

	// A link for the address hal had is dead once the address changes.
	forgot()
	got := mp.WaitFor(t, "hal@example.com", 2)
	text, _, _ := mp.Message(t, got[0].ID)
	link := resetLink.FindString(text)
	proctest.Secret(link)
	tok := login(t, p.URL, "hal", "correct-horse-9")["access_token"].(string)
	if a := putEmail(t, p.URL, tok, "hal@example.org"); a.status != 200 {
		t.Fatalf("a new address: %d %s", a.status, a.body)
	}
	if a := postJSON(t, p.URL+"/password/reset", map[string]string{"token": tokenIn(link), "new_password": "brand-new-horse-5"}); a.status != 400 {
		t.Fatalf("a link to the old address: %d %s", a.status, a.body)
	}
	verify("hal@example.org")
	mp.WaitFor(t, "hal@example.org", 1) // its confirmation link

	// 29 failed logins from this address: one short of its lock.
	for i := range 29 {
		if a := postJSON(t, p.URL+"/auth", map[string]string{"username": fmt.Sprintf("nobody%d", i), "password": "wrong-horse-1"}); a.status != 401 {
			t.Fatalf("failed login %d: %d", i, a.status)
		}
	}
	// A form from another site is refused, and asks for nothing.
	if a := do(t, "POST", p.URL+"/password/forgot", "application/x-www-form-urlencoded", strings.NewReader("login=hal"), "Sec-Fetch-Site", "cross-site"); a.status != 403 {
		t.Fatalf("a cross-site form: %d %s", a.status, a.body)
	}
	// Three links an hour: one went out above, so two of these five go.
	for range 5 {
		forgot()
	}
	mp.WaitFor(t, "hal@example.org", 3)
	if !p.WaitLog(10*time.Second, func(log string) bool { return strings.Count(log, "too many links this hour") == 3 }) {
		t.Fatalf("the per-account cap did not refuse three of five:\n%s", p.Log())
	}
	if n := len(mp.To(t, "hal@example.org")); n != 3 {
		t.Fatalf("%d messages to hal's new address, want its confirmation and two links", n)
	}
	// The login throttle moved for none of it: the 30th failure is the first that locks.
	if a := postJSON(t, p.URL+"/auth", map[string]string{"username": "nobody-else", "password": "wrong-horse-1"}); a.status != 401 {
		t.Fatalf("a failed login after the resets: %d, want 401 as without them", a.status)
	}
}

// The refusals of the mail flows, each a 4xx that changes nothing: malformed and over-long
// addresses, header injection in an address or a login, a link of a deleted user.
func TestMailRefusals(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--admin-token", "audit-admin", "--rate-limit", "0")
	admin := []string{"Authorization", "Bearer audit-admin"}
	invite := func(email string) answer {
		b, _ := json.Marshal(map[string]any{"email": email, "groups": []string{}})
		return do(t, "POST", p.URL+"/admin/invitations?print=1", "application/json", strings.NewReader(string(b)), admin...)
	}
	for _, bad := range []string{"", "ivy", "ivy@", "@example.com", "ivy@example..com", "ivy@example.com\r\nBcc: x@evil.example",
		"Ivy <ivy@example.com>", "ivy@example.com\n", strings.Repeat("i", 300) + "@example.com", "ïvy@example.com"} {
		if a := invite(bad); a.status != 400 {
			t.Errorf("an invitation for %q: %d %s", bad, a.status, a.body)
		}
	}
	if a := do(t, "GET", p.URL+"/admin/invitations", "", nil, admin...); a.status != 200 || !strings.Contains(string(a.body), `"invitations":[]`) {
		t.Fatalf("invitations after the refusals: %d %s", a.status, a.body)
	}
	for _, bad := range []map[string]string{
		{"login": "ivy\r\nBcc: x@evil.example"}, {"login": strings.Repeat("a", 321)}, {"login": "  "}, {"user": "ivy"},
	} {
		if a := postJSON(t, p.URL+"/password/forgot", bad); a.status != 400 {
			t.Errorf("forgot %q: %d %s", bad, a.status, a.body)
		}
	}
	for _, bad := range []map[string]string{
		{"token": "", "new_password": "brand-new-horse-5"}, {"token": strings.Repeat("t", 101), "new_password": "brand-new-horse-5"},
		{"token": "x\r\ny", "new_password": "brand-new-horse-5"}, {"token": "nothing", "new_password": ""},
	} {
		if a := postJSON(t, p.URL+"/password/reset", bad); a.status != 400 {
			t.Errorf("reset %q: %d %s", bad, a.status, a.body)
		}
	}
	if a := postJSON(t, p.URL+"/email/verify", map[string]string{"token": "\x00"}); a.status != 400 {
		t.Errorf("verify a NUL: %d %s", a.status, a.body)
	}
	// A deleted user's link is dead.
	signup(t, p.URL, "ivy", "correct-horse-9")
	out, err := runIDP([]string{"users", "reset-password", "ivy", "--print-link", "--url", p.URL, "--admin-token", "audit-admin"})
	link := resetLink.FindString(out)
	if err != nil || link == "" {
		t.Fatalf("users reset-password --print-link: %v\n%s", err, out)
	}
	proctest.Secret(link)
	if out, err := runIDP([]string{"users", "delete", "ivy", "--url", p.URL, "--admin-token", "audit-admin"}); err != nil {
		t.Fatalf("users delete: %v\n%s", err, out)
	}
	if a := postJSON(t, p.URL+"/password/reset", map[string]string{"token": tokenIn(link), "new_password": "brand-new-horse-5"}); a.status != 400 {
		t.Fatalf("a deleted user's link: %d %s", a.status, a.body)
	}
}

// tokenIn is the token a mailed or printed link carries: what follows its "=".
func tokenIn(link string) string { return link[strings.LastIndexByte(link, '=')+1:] }
