package jwtauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"sync"
	"testing"

	"jwtidp/shared/jwtauth/forge"
)

var (
	fuzzOnce   sync.Once
	fuzzMinter forge.Minter
)

func minter() forge.Minter {
	fuzzOnce.Do(func() {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		fuzzMinter = forge.Minter{Key: k, KID: "k1", Issuer: "https://issuer.test", Audience: []string{"workitems"}}
	})
	return fuzzMinter
}

// FuzzVerify: whatever the input, the verifier does not panic, and it accepts nothing but a
// token signed with the published key whose claims are in order.
func FuzzVerify(f *testing.F) {
	m := minter()
	f.Add(m.Valid())
	for _, c := range m.Cases("http://127.0.0.1:1") {
		f.Add(c.Token)
	}
	v := NewVerifier(Config{Issuer: m.Issuer, Audience: "workitems", Keys: StaticKeys(func(kid string) (*rsa.PublicKey, bool) {
		if kid == m.KID {
			return &m.Key.PublicKey, true
		}
		return nil, false
	})})
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw)
		if err != nil {
			return
		}
		// Accepted: it must be a three-part RS256 token for our issuer and audience.
		if strings.Count(raw, ".") != 2 || c.Issuer != m.Issuer || !containsAud(c.Audience, "workitems") || c.Subject == "" {
			t.Fatalf("accepted %q with claims %+v", raw, c)
		}
	})
}

func containsAud(aud []string, want string) bool {
	for _, a := range aud {
		if a == want {
			return true
		}
	}
	return false
}
