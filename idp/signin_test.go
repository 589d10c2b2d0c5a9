package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// Every way to sign in ends in the one finisher (auth's Complete): each leaves exactly one
// `login` success event naming its method, the user's last_login_at at that moment, and what it
// asked for — a session the edge accepts, or tokens. A browser's password step for an account
// with a second factor records nothing yet: only the code step completes the sign-in. (Passkeys
// are signed in with a real authenticator in TestPasskeysInChromium, which checks the same.)
func TestEverySignInEndsInTheFinisher(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second).Add(5 * time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--rate-limit", "0", "--trusted-proxies", "127.0.0.1", "--admin-token", "audit-admin")
	const pw = "correct-horse-9"
	signup(t, p.URL, "pia", pw)
	signup(t, p.URL, "tom", pw)
	tok := login(t, p.URL, "tom", pw)["access_token"].(string)
	a := bearerJSON(t, "POST", p.URL+"/account/totp", tok, `{"current_password":"`+pw+`"}`)
	secret := a.json(t)["secret"].(string)
	proctest.Secret(secret)
	code := func() string {
		clk.Advance(30 * time.Second) // a fresh step: a code is accepted once
		c, err := totp.GenerateCode(secret, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if a := bearerJSON(t, "POST", p.URL+"/account/totp/confirm", tok, `{"code":"`+code()+`"}`); a.status != 200 {
		t.Fatalf("confirm TOTP: %d %s", a.status, a.body)
	}
	if out, err := runIDP([]string{"users", "grant-admin", "pia", "--url", p.URL, "--admin-token", "audit-admin"}); err != nil {
		t.Fatalf("grant-admin: %v\n%s", err, out)
	}

	signIns := func(user, method string) int {
		t.Helper()
		events, _ := auditEvents(t, p.URL, "type=login&user="+userOf(t, p.URL, user))
		n := 0
		for _, e := range events {
			if e.Outcome == "success" && e.Detail == method {
				n++
			}
		}
		return n
	}
	edge := func(cookie string) int {
		return do(t, "GET", p.URL+"/verify", "", nil, "Cookie", "jwtidp_session="+cookie).status
	}
	for _, m := range []struct {
		name, user, method string
		signIn             func() bool // true: what it asked for was made
	}{
		{"/auth with a password", "pia", "password", func() bool {
			return login(t, p.URL, "pia", pw)["refresh_token"] != ""
		}},
		{"/auth for an admin credential", "pia", "password", func() bool {
			a := postJSON(t, p.URL+"/auth", map[string]string{"username": "pia", "password": pw, "scope": "idp:admin"})
			return a.status == 200 && a.json(t)["scope"] == "idp:admin"
		}},
		{"/auth with a password and a code", "tom", "password and one-time code", func() bool {
			return authOTP(t, http.DefaultClient, p.URL, "tom", pw, code(), "192.0.2.10").status == 200
		}},
		{"the browser's password", "pia", "password", func() bool {
			return edge(browserSession(t, p.URL, "pia", pw)) == 200
		}},
		{"the browser's password, then its code", "tom", "password and one-time code", func() bool {
			c := newJar()
			a := browserOTPLogin(t, c, p.URL, "tom", pw, code(), "192.0.2.11")
			for _, ck := range a.header.Values("Set-Cookie") {
				if v, ok := cookieValue(ck, "jwtidp_session"); ok && v != "" {
					proctest.Secret(v)
					return a.status == 303 && edge(v) == 200
				}
			}
			return false
		}},
	} {
		clk.Advance(time.Minute)
		before := signIns(m.user, m.method)
		if !m.signIn() {
			t.Fatalf("%s: nothing made", m.name)
		}
		if got := signIns(m.user, m.method); got != before+1 {
			t.Errorf("%s: %d login events of %q, want %d", m.name, got, m.method, before+1)
		}
		at, _ := adminUser(t, p.URL, m.user)["last_login_at"].(string)
		last, _ := time.Parse(time.RFC3339Nano, at)
		if !last.Equal(clk.Now().UTC().Truncate(time.Microsecond)) {
			t.Errorf("%s: last_login_at %v, want %v", m.name, last, clk.Now().UTC())
		}
	}
}

// cookieValue is the value of a Set-Cookie header's cookie when it is named name.
func cookieValue(setCookie, name string) (string, bool) {
	c, err := http.ParseSetCookie(setCookie)
	if err != nil || c.Name != name {
		return "", false
	}
	return c.Value, true
}
