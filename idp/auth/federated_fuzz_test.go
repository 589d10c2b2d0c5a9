package auth

import (
	"crypto/rand"
	"strings"
	"testing"

	"jwtidp/idp/identity"
)

// FuzzUsernameFrom: whatever an upstream calls a person, the username made of it — and each
// candidate tried when it is taken — is one our rules take, so a just-in-time sign-in never
// fails on the name alone.
func FuzzUsernameFrom(f *testing.F) {
	for _, s := range []string{"alice", "alice@corp.example", "", "é", "a", strings.Repeat("x", 200), "@@", "a@b", "Jean Dupont", "../..", strings.Repeat("ab@", 40)} {
		f.Add(s)
	}
	s := &SignIn{&core{Config: Config{Random: rand.Reader}}}
	f.Fuzz(func(t *testing.T, upstream string) {
		base := usernameFrom(upstream)
		for n := 1; n <= 12; n++ {
			name, err := s.candidate(base, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := identity.ValidateUsername(name); err != nil {
				t.Fatalf("usernameFrom(%q) = %q, candidate %d %q: %v", upstream, base, n, name, err)
			}
		}
	})
}
