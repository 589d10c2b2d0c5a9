package oidc

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// RFC 7636 Appendix B. (The challenge is the RFC's own; a value quoted elsewhere,
// "E9Melhoa2OwvFrEZTbLUX2OdbJhgh0BpFRJyBd0vcWQ", is not SHA-256 of this verifier.)
const (
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func TestPKCERFC7636AppendixB(t *testing.T) {
	// The octets the RFC lists for the verifier and for its SHA-256.
	verifierOctets := []byte{116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173,
		187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121}
	hashOctets := []byte{19, 211, 30, 150, 26, 26, 216, 236, 47, 22, 177, 12, 76, 152, 46,
		8, 118, 168, 120, 173, 109, 241, 68, 86, 110, 225, 137, 74, 203, 112, 249, 195}
	if got := base64.RawURLEncoding.EncodeToString(verifierOctets); got != rfcVerifier {
		t.Fatalf("verifier octets encode to %q", got)
	}
	if got := base64.RawURLEncoding.EncodeToString(hashOctets); got != rfcChallenge {
		t.Fatalf("hash octets encode to %q", got)
	}
	if VerifyPKCE("E9Melhoa2OwvFrEZTbLUX2OdbJhgh0BpFRJyBd0vcWQ", "S256", rfcVerifier) {
		t.Fatal("accepted a challenge that is not the verifier's hash")
	}
	if !VerifyPKCE(rfcChallenge, "S256", rfcVerifier) {
		t.Fatal("RFC 7636 Appendix B's verifier is refused")
	}
	if err := ValidChallenge(rfcChallenge, "S256"); err != nil {
		t.Fatalf("RFC 7636 Appendix B's challenge is refused: %v", err)
	}
}

func challengeOf(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func TestPKCERefusals(t *testing.T) {
	long := strings.Repeat("a", 128)
	for _, tc := range []struct {
		name, challenge, method, verifier string
	}{
		{"plain", rfcVerifier, "plain", rfcVerifier},
		{"no method", rfcChallenge, "", rfcVerifier},
		{"lower-case method", rfcChallenge, "s256", rfcVerifier},
		{"wrong verifier", rfcChallenge, "S256", strings.Repeat("a", 43)},
		{"verifier one byte off", rfcChallenge, "S256", rfcVerifier[:42] + "j"},
		{"42-char verifier", challengeOf(rfcVerifier[:42]), "S256", rfcVerifier[:42]},
		{"129-char verifier", challengeOf(long + "a"), "S256", long + "a"},
		{"verifier with '+'", challengeOf(rfcVerifier[:42] + "+"), "S256", rfcVerifier[:42] + "+"},
		{"verifier with '/'", challengeOf(rfcVerifier[:42] + "/"), "S256", rfcVerifier[:42] + "/"},
		{"verifier with '='", challengeOf(rfcVerifier[:42] + "="), "S256", rfcVerifier[:42] + "="},
		{"verifier with space", challengeOf(rfcVerifier[:42] + " "), "S256", rfcVerifier[:42] + " "},
		{"verifier with non-ASCII", challengeOf(rfcVerifier[:41] + "é"), "S256", rfcVerifier[:41] + "é"},
		{"padded challenge", rfcChallenge + "=", "S256", rfcVerifier},
		{"standard base64 challenge", strings.NewReplacer("-", "+", "_", "/").Replace(challengeOf("a~" + long[:41])), "S256", "a~" + long[:41]},
		{"empty challenge", "", "S256", rfcVerifier},
		{"empty verifier", rfcChallenge, "S256", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if VerifyPKCE(tc.challenge, tc.method, tc.verifier) {
				t.Fatalf("VerifyPKCE(%q, %q, %q) = true", tc.challenge, tc.method, tc.verifier)
			}
		})
	}
	// The bounds themselves are accepted.
	for _, v := range []string{long, long[:43], "-._~" + long[:39], rfcVerifier} {
		if !VerifyPKCE(challengeOf(v), "S256", v) {
			t.Errorf("verifier %q refused", v)
		}
	}
}

func TestValidChallenge(t *testing.T) {
	for _, tc := range []struct {
		challenge, method string
		ok                bool
	}{
		{rfcChallenge, "S256", true},
		{rfcChallenge, "plain", false},
		{rfcChallenge, "", false},
		{rfcChallenge[:42], "S256", false},
		{rfcChallenge + "A", "S256", false},
		{rfcChallenge[:42] + "+", "S256", false},
		{rfcChallenge[:42] + "=", "S256", false},
		// 43 base64url characters whose last one carries non-zero padding bits: not the
		// encoding of any SHA-256 sum.
		{rfcChallenge[:42] + "R", "S256", false},
		{"", "S256", false},
	} {
		err := ValidChallenge(tc.challenge, tc.method)
		if (err == nil) != tc.ok {
			t.Errorf("ValidChallenge(%q, %q) = %v, want ok=%v", tc.challenge, tc.method, err, tc.ok)
		}
		if err != nil {
			if e := err.(*Error); e.Code != ErrInvalidRequest || !e.Redirect {
				t.Errorf("ValidChallenge(%q, %q) = %+v, want a redirecting invalid_request", tc.challenge, tc.method, e)
			}
		}
	}
}

func FuzzPKCE(f *testing.F) {
	f.Add(rfcChallenge, "S256", rfcVerifier)
	f.Add(rfcVerifier, "plain", rfcVerifier)
	f.Add(rfcChallenge, "S256", strings.Repeat("a", 43))
	f.Add(challengeOf(strings.Repeat("~", 128)), "S256", strings.Repeat("~", 128))
	f.Fuzz(func(t *testing.T, challenge, method, verifier string) {
		ok := VerifyPKCE(challenge, method, verifier)
		match := method == "S256" && challengeOf(verifier) == challenge
		if ok {
			if !validVerifier(verifier) {
				t.Fatalf("accepted a verifier that is not 43–128 unreserved characters: %q", verifier)
			}
			if !match {
				t.Fatalf("accepted verifier %q that does not hash to %q (method %q)", verifier, challenge, method)
			}
			if ValidChallenge(challenge, method) != nil {
				t.Fatalf("accepted challenge %q that ValidChallenge refuses", challenge)
			}
		}
		if !match && ok {
			t.Fatal("a verifier that does not match was accepted")
		}
		// A correct pair over a valid verifier is always accepted.
		if validVerifier(verifier) && !VerifyPKCE(challengeOf(verifier), "S256", verifier) {
			t.Fatalf("refused the right challenge for %q", verifier)
		}
	})
}
