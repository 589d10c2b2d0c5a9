package main

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/clock"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// The refresh grant returns a fresh ID token when the family holds openid, as kubectl and
// kubelogin demand of every refresh answer: go-oidc verifies it (signature, issuer, audience,
// expiry on the fake clock), and it names the same subject, the original sign-in's auth_time,
// amr and sid, and no nonce. A refresh narrowed to a scope without openid gets none.
func TestIDTokenOnRefresh(t *testing.T) {
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	p := startIDPEnv(t, t.TempDir(), service.Env{Clock: clk}, "--clients", oidcClients(t), "--rate-limit", "0")
	signup(t, p.URL, "alice", "correct-horse-9")
	r := newRP(t, p.URL, "webapp", webSecret, webCallback, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	verifier := oauth2.GenerateVerifier()
	pg := r.signIn(r.get(r.cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"))), "alice", "correct-horse-9")
	signedIn := clk.Now()
	clk.Advance(30 * time.Second) // the consent, and so the family, comes later than the sign-in
	tok, first := r.exchange(r.callback(r.submit(pg, "decision", "allow"), "st"), verifier, "n-1")
	var c1 idClaims
	first.Claims(&c1)

	// Two hours on, past the first ID token's expiry (1h): the library refreshes.
	clk.Advance(2 * time.Hour)
	old := *tok
	old.Expiry = time.Now().Add(-time.Minute) // x/oauth2 reads the real clock: an expired token to it
	fresh, err := r.cfg.TokenSource(r.ctx, &old).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	proctest.Secret(fresh.AccessToken, fresh.RefreshToken)
	raw, _ := fresh.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("the refresh answer has no id_token")
	}
	proctest.Secret(raw)
	verifier2 := r.provider.Verifier(&oidc.Config{ClientID: "webapp", Now: clk.Now})
	idt, err := verifier2.Verify(r.ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc verifies the refreshed ID token: %v", err)
	}
	if err := idt.VerifyAccessToken(fresh.AccessToken); err != nil {
		t.Fatalf("at_hash of the refreshed ID token: %v", err)
	}
	var c idClaims
	idt.Claims(&c)
	if idt.Subject != first.Subject || idt.Nonce != "" || c.AuthTime != signedIn.Unix() || c.AuthTime != c1.AuthTime ||
		!slices.Equal(c.AMR, c1.AMR) || c.SID != c1.SID || c.AZP != "webapp" || c.PreferredUsername != "alice" ||
		!idt.IssuedAt.Equal(clk.Now()) {
		t.Fatalf("refreshed ID token: %+v %+v, first %+v %+v", idt, c, first, c1)
	}

	// A refresh narrowed to a scope without openid: an access token, no ID token.
	a := tokenCall(t, p.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}, "scope": {"profile"}}, "webapp", webSecret)
	if a.status != 200 {
		t.Fatalf("narrowed refresh: %d %s", a.status, a.body)
	}
	j := a.json(t)
	proctest.Secret(j["access_token"].(string), j["refresh_token"].(string))
	if _, ok := j["id_token"]; ok || j["scope"] != "profile" {
		t.Fatalf("a refresh without openid: %s", strings.ReplaceAll(string(a.body), j["access_token"].(string), "…"))
	}
}
