package token

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/idp/sign"
)

// rotatingKeys hands out a key that a rotation has just closed, then the current one.
type rotatingKeys struct {
	closed, current sign.Key
	calls           int
}

func (r *rotatingKeys) SigningKey() (string, sign.Key) {
	r.calls++
	if r.calls == 1 {
		return "old", r.closed
	}
	return "new", r.current
}

// A key closed between fetching it and signing (a rotation) is not an error: the issuer signs
// with the key that replaced it, and the token names that key.
func TestSignRetriesAKeyClosedByARotation(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	old, err := sign.Go.Load(priv, der)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	cur, err := sign.Go.Load(priv, der)
	if err != nil {
		t.Fatal(err)
	}
	keys := &rotatingKeys{closed: old, current: cur}
	iss := &Issuer{Issuer: "http://idp", TTL: time.Minute, Keys: keys, Now: time.Now, Random: rand.Reader}
	raw, _, err := iss.Access(Access{Subject: "s", ClientID: "c", Scope: "x", Audience: []string{"a"}})
	if err != nil {
		t.Fatalf("sign after a rotation closed the key: %v", err)
	}
	tok, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return &priv.PublicKey, nil }, jwt.WithValidMethods([]string{"RS256"}))
	if err != nil || tok.Header["kid"] != "new" || tok.Header["typ"] != "at+jwt" {
		t.Fatalf("token %v (kid %v): %v", tok, tok.Header["kid"], err)
	}
	// Keys that stay closed: an error, not a loop.
	keys.calls, keys.current = 0, old
	if _, _, err := iss.Access(Access{Subject: "s"}); !errors.Is(err, sign.ErrClosed) {
		t.Fatalf("every key closed: %v, want sign.ErrClosed", err)
	}
}
