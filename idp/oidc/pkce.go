package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// MethodS256 is the only PKCE method accepted (RFC 7636 §4.2; "plain" is refused, as OAuth
// 2.1 allows).
const MethodS256 = "S256"

// challengeLen is the length of BASE64URL(SHA256(x)) without padding.
const challengeLen = 43

// VerifyPKCE reports whether verifier answers challenge (RFC 7636 §4.6): method is S256, the
// verifier is 43 to 128 characters of [A-Za-z0-9-._~] (§4.1), and BASE64URL(SHA256(verifier))
// equals challenge, compared in constant time.
func VerifyPKCE(challenge, method, verifier string) bool {
	if method != MethodS256 || ValidChallenge(challenge, method) != nil || !validVerifier(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// ValidChallenge checks an authorization request's code_challenge and code_challenge_method:
// the method is S256 and the challenge is 43 characters of unpadded base64url, what
// BASE64URL(SHA256(verifier)) is.
func ValidChallenge(challenge, method string) error {
	if method != MethodS256 {
		return redirecting(ErrInvalidRequest, "code_challenge_method must be S256")
	}
	if len(challenge) != challengeLen {
		return redirecting(ErrInvalidRequest, "code_challenge must be 43 characters of base64url")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(challenge)
	if err != nil || len(b) != sha256.Size {
		return redirecting(ErrInvalidRequest, "code_challenge must be 43 characters of base64url")
	}
	return nil
}

// validVerifier: code-verifier = 43*128unreserved (RFC 7636 §4.1).
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !unreserved(v[i]) {
			return false
		}
	}
	return true
}

func unreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
