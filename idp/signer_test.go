package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/sign"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// testSigner is the backend this test run's IdPs sign with: --signer's default, which
// JWTIDP_TEST_SIGNER sets (CI runs the suite with auto, OpenSSL there, and again with go).
func testSigner(t *testing.T) sign.Backend {
	t.Helper()
	b, _, err := sign.Choose(defaultSigner)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The IdP says which signer it signs with and why: in its start-up line and on /metrics. With
// --signer auto (the default) it is OpenSSL's libcrypto when libcrypto 3 loads, else Go's
// crypto/rsa; a login's token verifies against the JWKS either way.
func TestTheSignerIsNamed(t *testing.T) {
	p := startIDP(t, t.TempDir())
	name := testSigner(t).Name()
	if !strings.Contains(p.Log(), "msg=listening") || !strings.Contains(p.Log(), "signer="+name+" signer_reason=") {
		t.Fatalf("the start-up line does not name the signer %q and why:\n%s", name, p.Log())
	}
	if os.Getenv("JWTIDP_REQUIRE_INTEGRATION") != "" && os.Getenv("JWTIDP_TEST_SIGNER") == "" && name != "openssl" {
		t.Fatalf("JWTIDP_REQUIRE_INTEGRATION is set and the default build signs with %s:\n%s", name, p.Log())
	}
	a := do(t, "GET", p.URL+"/metrics", "", nil)
	if !strings.Contains(string(a.body), `idp_signer_info{signer="`+name+`"} 1`) {
		t.Fatalf("/metrics does not name the signer %q", name)
	}
	signup(t, p.URL, "sig", "correct-horse-9")
	verifyWithJWKS(t, p.URL, p.URL, login(t, p.URL, "sig", "correct-horse-9")["access_token"].(string))
}

// --signer chooses the backend at start whatever libcrypto the machine has: go always signs
// with Go; openssl refuses to start, naming the library, when libcrypto 3 cannot be loaded
// (here a library name that does not exist, as on a machine without libssl3), and auto then
// signs with Go and says why.
func TestSignerChoice(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--signer", "go")
	if !strings.Contains(p.Log(), `signer=go signer_reason="asked for (--signer go)"`) {
		t.Fatalf("--signer go:\n%s", p.Log())
	}

	missing := func() (sign.Backend, error) { return sign.LoadOpenSSL("libcrypto-jwtidp-missing.so.3") }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	args := append([]string{"idp", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--signer", "openssl"}, proctest.FastArgon...)
	err := programOf(&config{openssl: missing}).Run(ctx, args, service.Env{Stdout: &out, Stderr: &out})
	if err == nil || !strings.Contains(err.Error(), `invalid --signer (IDP_SIGNER) "openssl": the OpenSSL signer cannot be loaded: `) ||
		!strings.Contains(err.Error(), "libcrypto-jwtidp-missing.so.3") && !strings.Contains(err.Error(), "no OpenSSL signer") {
		t.Fatalf("--signer openssl without libcrypto: %v\n%s", err, out.String())
	}
	t.Log(err)

	in := servicetest.StartEnv(t, context.Background(), programOf(&config{openssl: missing}), service.Env{},
		append([]string{"idp", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--signer", "auto"}, proctest.FastArgon...)...)
	if !strings.Contains(in.Log(), `signer=go signer_reason="libcrypto-jwtidp-missing.so.3: cannot open shared object file`) &&
		!strings.Contains(in.Log(), `signer=go signer_reason="this binary has no OpenSSL signer`) {
		t.Fatalf("--signer auto without libcrypto:\n%s", in.Log())
	}
}
