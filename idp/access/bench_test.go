package access_test

import (
	"testing"

	"jwtidp/idp/access"
	"jwtidp/idp/access/accesstest"
)

// BenchmarkDecide50 decides against 50 rules where only the 50th matches: the worst case of a
// realistic configuration.
func BenchmarkDecide50(b *testing.B) {
	p, probs := access.Compile(accesstest.Fifty())
	if probs != nil {
		b.Fatal(probs)
	}
	r, err := access.NewRequest("app49.example.com", "/admin/users?page=2", "GET", "10.1.2.3")
	if err != nil {
		b.Fatal(err)
	}
	s := access.Subject{SignedIn: true, Username: "alice", Groups: []string{"staff", "admins"}, AMR: []string{"pwd", "otp", "mfa"}}
	b.ReportAllocs()
	for b.Loop() {
		if p.Decide(r, s) != access.Allow {
			b.Fatal("not allowed")
		}
	}
}

// BenchmarkNewRequest is the reading of a proxy's description of a request, as /verify does
// it for every request behind the proxy.
func BenchmarkNewRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := access.NewRequest("app49.example.com:8443", "/admin/users?page=2", "GET", "10.1.2.3"); err != nil {
			b.Fatal(err)
		}
	}
}
