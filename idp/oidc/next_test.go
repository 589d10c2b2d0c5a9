package oidc

import (
	"slices"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
)

func TestNext(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	asked := now.Add(-2 * time.Minute) // when the request sent the browser to sign in
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	age := func(n int) *int { return &n }

	pwd := []string{"pwd"}
	otp := []string{"pwd", "otp", "mfa"}
	passkey := []string{"hwk", "user", "mfa"}
	// Sessions: signed in an hour ago, before the request asked for a sign-in; or since.
	var (
		none       = Session{}
		old        = Session{Present: true, AuthTime: ago(time.Hour), AMR: pwd}
		oldFactor  = Session{Present: true, AuthTime: ago(time.Hour), AMR: pwd, HasSecondFactor: true}
		oldOTP     = Session{Present: true, AuthTime: ago(time.Hour), AMR: otp, HasSecondFactor: true}
		oldPasskey = Session{Present: true, AuthTime: ago(time.Hour), AMR: passkey, HasSecondFactor: true}
		since      = Session{Present: true, AuthTime: asked.Add(time.Second), AMR: pwd}
		sinceAt    = Session{Present: true, AuthTime: asked, AMR: pwd} // at the very instant: since
		sinceFac   = Session{Present: true, AuthTime: asked.Add(time.Second), AMR: pwd, HasSecondFactor: true}
		fresh      = Session{Present: true, AuthTime: ago(10 * time.Second), AMR: pwd}
	)
	scopes := []string{"openid", "profile"}
	var (
		remembered = Consent{Remembered: []string{"email", "openid", "profile"}}
		partly     = Consent{Remembered: []string{"openid"}}
		never      = Consent{}
		firstParty = Consent{FirstParty: true}
		given      = Consent{Given: true}
	)
	type req struct {
		prompt      string
		maxAge      *int
		acr         []string
		signInAfter time.Time
	}
	for _, tc := range []struct {
		name    string
		r       req
		s       Session
		c       Consent
		want    Step
		errCode string
	}{
		// No session.
		{"no session", req{}, none, remembered, StepLogin, ""},
		{"no session, prompt=none", req{prompt: "none"}, none, remembered, StepError, ErrLoginRequired},
		{"no session, first-party", req{}, none, firstParty, StepLogin, ""},
		{"no session, acr mfa", req{acr: []string{"mfa"}}, none, remembered, StepLogin, ""},
		{"no session, after asking", req{signInAfter: asked}, none, remembered, StepLogin, ""},

		// A session, consent remembered or not.
		{"consent remembered", req{}, old, remembered, StepCode, ""},
		{"consent not remembered", req{}, old, never, StepConsent, ""},
		{"consent for some of the scopes", req{}, old, partly, StepConsent, ""},
		{"first-party", req{}, old, firstParty, StepCode, ""},
		{"consent given on the page", req{}, old, given, StepCode, ""},
		{"prompt=none, consent remembered", req{prompt: "none"}, old, remembered, StepCode, ""},
		{"prompt=none, no consent", req{prompt: "none"}, old, never, StepError, ErrConsentRequired},
		{"prompt=none, first-party", req{prompt: "none"}, old, firstParty, StepCode, ""},

		// prompt=consent asks again unless first-party or given.
		{"prompt=consent, remembered", req{prompt: "consent"}, old, remembered, StepConsent, ""},
		{"prompt=consent, given", req{prompt: "consent"}, old, given, StepCode, ""},
		{"prompt=consent, first-party", req{prompt: "consent"}, old, firstParty, StepCode, ""},

		// prompt=login and select_account: Login once, satisfied by a sign-in since it asked.
		{"prompt=login", req{prompt: "login"}, old, remembered, StepLogin, ""},
		{"prompt=login, first-party", req{prompt: "login"}, old, firstParty, StepLogin, ""},
		{"prompt=login, a recent sign-in from before it asked", req{prompt: "login", signInAfter: asked}, fresh, remembered, StepCode, ""},
		{"prompt=login, a sign-in from before it asked", req{prompt: "login", signInAfter: asked}, old, remembered, StepLogin, ""},
		{"prompt=login, signed in since", req{prompt: "login", signInAfter: asked}, since, remembered, StepCode, ""},
		{"prompt=login, signed in the instant it asked", req{prompt: "login", signInAfter: asked}, sinceAt, remembered, StepCode, ""},
		{"prompt=login, a session and a fresh one", req{prompt: "login"}, fresh, remembered, StepLogin, ""},
		{"prompt=select_account", req{prompt: "select_account"}, old, remembered, StepLogin, ""},
		{"prompt=select_account, signed in since", req{prompt: "select_account", signInAfter: asked}, since, remembered, StepCode, ""},
		{"prompt=login consent", req{prompt: "login consent"}, old, remembered, StepLogin, ""},
		{"prompt=login consent, signed in since", req{prompt: "login consent", signInAfter: asked}, since, remembered, StepConsent, ""},
		{"prompt=login consent, signed in since, given", req{prompt: "login consent", signInAfter: asked}, since, given, StepCode, ""},
		{"prompt=consent select_account, signed in since, never allowed", req{prompt: "consent select_account", signInAfter: asked}, since, never, StepConsent, ""},

		// max_age.
		{"max_age, a sign-in older", req{maxAge: age(300)}, old, remembered, StepLogin, ""},
		{"max_age, a sign-in newer", req{maxAge: age(300)}, fresh, remembered, StepCode, ""},
		{"max_age exactly the sign-in's age", req{maxAge: age(10)}, fresh, remembered, StepCode, ""},
		{"max_age a second short", req{maxAge: age(9)}, fresh, remembered, StepLogin, ""},
		{"max_age=0", req{maxAge: age(0)}, fresh, remembered, StepLogin, ""},
		{"max_age=0, signed in since", req{maxAge: age(0), signInAfter: asked}, since, remembered, StepCode, ""},
		{"max_age, signed in since, consent needed", req{maxAge: age(0), signInAfter: asked}, since, never, StepConsent, ""},
		{"max_age, older, prompt=none", req{maxAge: age(300), prompt: "none"}, old, remembered, StepError, ErrLoginRequired},
		{"max_age, newer, prompt=none", req{maxAge: age(300), prompt: "none"}, fresh, remembered, StepCode, ""},
		{"max_age, older, first-party", req{maxAge: age(300)}, old, firstParty, StepLogin, ""},

		// acr_values and the session's amr.
		{"acr mfa, pwd session, a second factor", req{acr: []string{"mfa"}}, oldFactor, remembered, StepSecondFactor, ""},
		{"acr mfa, pwd session, no second factor", req{acr: []string{"mfa"}}, old, remembered, StepCode, ""},
		{"acr mfa, no second factor, consent needed", req{acr: []string{"mfa"}}, old, never, StepConsent, ""},
		{"acr mfa, otp session", req{acr: []string{"mfa"}}, oldOTP, remembered, StepCode, ""},
		{"acr mfa, passkey session", req{acr: []string{"mfa"}}, oldPasskey, remembered, StepCode, ""},
		{"acr mfa, signed in since with one factor", req{acr: []string{"mfa"}, signInAfter: asked}, sinceFac, remembered, StepCode, ""},
		{"acr mfa, signed in before it asked", req{acr: []string{"mfa"}, signInAfter: asked}, oldFactor, remembered, StepSecondFactor, ""},
		{"acr mfa, first-party", req{acr: []string{"mfa"}}, oldFactor, firstParty, StepSecondFactor, ""},
		{"acr mfa, prompt=none", req{acr: []string{"mfa"}, prompt: "none"}, oldFactor, remembered, StepCode, ""},
		{"acr mfa, prompt=none, no consent", req{acr: []string{"mfa"}, prompt: "none"}, oldFactor, never, StepError, ErrConsentRequired},
		{"acr sfa", req{acr: []string{"sfa"}}, oldFactor, remembered, StepCode, ""},
		{"acr sfa before mfa", req{acr: []string{"sfa", "mfa"}}, oldFactor, remembered, StepCode, ""},
		{"acr mfa before sfa", req{acr: []string{"mfa", "sfa"}}, oldFactor, remembered, StepSecondFactor, ""},
		{"acr unknown", req{acr: []string{"urn:example:loa:3"}}, oldFactor, remembered, StepCode, ""},
		{"acr unknown before mfa", req{acr: []string{"urn:example:loa:3", "mfa"}}, oldFactor, remembered, StepSecondFactor, ""},
		{"acr mfa and prompt=login", req{acr: []string{"mfa"}, prompt: "login"}, oldFactor, remembered, StepLogin, ""},
		{"acr mfa and max_age newer", req{acr: []string{"mfa"}, maxAge: age(300)}, Session{Present: true, AuthTime: ago(time.Second), AMR: pwd, HasSecondFactor: true}, remembered, StepSecondFactor, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := identity.AuthRequest{ID: "r", ClientID: "app", RedirectURI: "https://app.example/cb", Scopes: scopes,
				Prompt: tc.r.prompt, MaxAge: tc.r.maxAge, ACRValues: tc.r.acr, SignInAfter: tc.r.signInAfter,
				CreatedAt: ago(5 * time.Minute), ExpiresAt: ago(5 * time.Minute).Add(identity.AuthRequestTTL)}
			got, err := Next(r, tc.s, tc.c, now)
			if got != tc.want {
				t.Fatalf("Next = %v (%v), want %v", got, err, tc.want)
			}
			switch {
			case tc.errCode == "" && err != nil:
				t.Fatalf("error %v with %v", err, got)
			case tc.errCode != "" && (err == nil || err.Code != tc.errCode || !err.Redirect):
				t.Fatalf("error %+v, want a redirected %s", err, tc.errCode)
			}
		})
	}
}

func TestACR(t *testing.T) {
	for amr, want := range map[string]string{"pwd": "sfa", "pwd otp mfa": "mfa", "hwk user mfa": "mfa", "swk user mfa": "mfa", "": "sfa"} {
		if got := ACR(strings.Fields(amr)); got != want {
			t.Errorf("ACR(%q) = %q, want %q", amr, got, want)
		}
	}
}

// A stored request continues only while its client still allows what it asked: a client gone
// or a redirect URI dropped is a page; a grant or a scope taken away is redirected.
func TestRecheck(t *testing.T) {
	r := identity.AuthRequest{ID: "r", ClientID: confidential.ID, RedirectURI: confidential.RedirectURIs[0], Scopes: []string{"openid", "profile"}}
	if err := Recheck(r, confidential); err != nil {
		t.Fatalf("the client as it was: %v", err)
	}
	changed := func(f func(*identity.Client)) identity.Client {
		c := confidential
		c.RedirectURIs, c.GrantTypes, c.Scopes = slices.Clone(c.RedirectURIs), slices.Clone(c.GrantTypes), slices.Clone(c.Scopes)
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name     string
		c        identity.Client
		code     string
		redirect bool
	}{
		{"client gone", identity.Client{}, ErrInvalidClient, false},
		{"another client", public, ErrInvalidClient, false},
		{"redirect URI dropped", changed(func(c *identity.Client) { c.RedirectURIs = c.RedirectURIs[1:] }), ErrInvalidRequest, false},
		{"code grant dropped", changed(func(c *identity.Client) { c.GrantTypes = []string{identity.GrantRefreshToken} }), ErrUnauthorizedClient, true},
		{"scope dropped", changed(func(c *identity.Client) { c.Scopes = []string{"openid"} }), ErrInvalidScope, true},
	} {
		err := Recheck(r, tc.c)
		if err == nil || err.Code != tc.code || err.Redirect != tc.redirect {
			t.Errorf("%s: %+v, want %s (redirect %t)", tc.name, err, tc.code, tc.redirect)
		}
	}
}
