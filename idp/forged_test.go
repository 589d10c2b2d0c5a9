package main

import (
	"crypto/rsa"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/shared/jwtauth/forge"
)

// The forged-token suite against /verify, the hot path of every proxied request: each forgery
// is a 401 (never a 5xx, which nginx would turn into a 500), from the header and from the
// session cookie alike. The valid-signature cases are signed with the IdP's own key, read from
// its store between two runs.
func TestVerifyRefusesForgedTokens(t *testing.T) {
	dir := t.TempDir()
	const iss = "http://issuer.forge.test"
	first := startIDP(t, dir, "--issuer", iss)
	// /verify lets a bearer token in only when its sub is an active user: the baseline names one.
	signup(t, first.URL, "forger", "correct-horse-9")
	first.Stop()
	db, err := boltdb.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := db.Keys(t.Context())
	user, err := db.GetUserByName(t.Context(), "forger")
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var m forge.Minter
	for _, k := range keys {
		if k.State == identity.KeyCurrent {
			priv, err := x509.ParsePKCS8PrivateKey(k.PrivateDER)
			if err != nil {
				t.Fatal(err)
			}
			m = forge.Minter{Key: priv.(*rsa.PrivateKey), KID: k.ID, Issuer: iss, Subject: user.ID}
		}
	}
	p := startIDP(t, dir, "--issuer", iss)
	var lured atomic.Int64
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { lured.Add(1) }))
	defer lure.Close()
	if a := do(t, "GET", p.URL+"/verify", "", nil, "Authorization", "Bearer "+m.Valid()); a.status != 200 {
		t.Fatalf("the baseline token is refused: %d", a.status)
	}
	for _, c := range m.Cases(lure.URL) {
		t.Run(c.Name, func(t *testing.T) {
			if a := do(t, "GET", p.URL+"/verify", "", nil, "Authorization", "Bearer "+c.Token); a.status != 401 || len(a.body) != 0 {
				t.Fatalf("as a bearer token: %d %q; want 401 with no body", a.status, a.body)
			}
			if strings.ContainsAny(c.Token, "\x00\r\n; \"\\,") {
				return // not a valid cookie value at all
			}
			if a := do(t, "GET", p.URL+"/verify", "", nil, "Cookie", "jwtidp_session="+c.Token); a.status != 401 {
				t.Fatalf("as the session cookie: %d", a.status)
			}
		})
	}
	if n := lured.Load(); n != 0 {
		t.Fatalf("the attacker's key URLs received %d requests", n)
	}
}
