package main

import (
	"strings"
	"testing"

	"jwtidp/idp/sign"
)

// The IdP says which signer this build signs with: in its start-up line and on /metrics. With
// -tags openssl (and cgo) it is OpenSSL's libcrypto, else Go's crypto/rsa; a login's token
// verifies against the JWKS either way.
func TestTheSignerIsNamed(t *testing.T) {
	p := startIDP(t, t.TempDir())
	name := sign.Default.Name()
	if !strings.Contains(p.Log(), "msg=listening") || !strings.Contains(p.Log(), "signer="+name) {
		t.Fatalf("the start-up line does not name the signer %q:\n%s", name, p.Log())
	}
	a := do(t, "GET", p.URL+"/metrics", "", nil)
	if !strings.Contains(string(a.body), `idp_signer_info{signer="`+name+`"} 1`) {
		t.Fatalf("/metrics does not name the signer %q", name)
	}
	signup(t, p.URL, "sig", "correct-horse-9")
	verifyWithJWKS(t, p.URL, p.URL, login(t, p.URL, "sig", "correct-horse-9")["access_token"].(string))
}
