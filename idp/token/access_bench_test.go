package token

import (
	"crypto/rand"
	"testing"
	"time"

	"jwtidp/idp/sign"
)

// fixedKey "signs" with 256 fixed bytes: what Issuer.Access costs beside the signature.
type fixedKey struct{}

func (fixedKey) Sign([]byte) ([]byte, error) { return make([]byte, 256), nil }
func (fixedKey) Close()                      {}

type oneKey struct{}

func (oneKey) SigningKey() (string, sign.Key) { return "k2026-12-07T00:00:00Z", fixedKey{} }

// BenchmarkAccessWithoutSignature is an access token's cost beside its RSA signature: the
// claims, their JSON, the header and the base64 (a user's token of the first-party client).
func BenchmarkAccessWithoutSignature(b *testing.B) {
	iss := &Issuer{Issuer: "http://127.0.0.1:8000", TTL: 15 * time.Minute, Keys: oneKey{}, Now: time.Now, Random: rand.Reader}
	a := Access{Subject: "u_8f14e45fceea167a5a36dedd4bea2543", Username: "alice", ClientID: "idp", Scope: "openid profile workitems",
		Audience: []string{"workitems"}, AMR: []string{"pwd"}, SessionID: "fam_0123456789abcdef", Groups: []string{"admins", "staff"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := iss.Access(a); err != nil {
			b.Fatal(err)
		}
	}
}
