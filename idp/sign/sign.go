// Package sign makes RS256 signatures (RSASSA-PKCS1-v1_5 with SHA-256) with the IdP's signing
// keys. Two backends, chosen at build time: Go's crypto/rsa (the default, everywhere) and the
// system's OpenSSL 3 libcrypto through its EVP interface (build tag openssl, with cgo), about
// three times faster per signature. PKCS#1 v1.5 is deterministic, so both make the same bytes.
package sign

import (
	"crypto/rsa"
	"errors"
)

// Key is a private key loaded into a backend, ready to sign. Sign may be called from many
// goroutines at once. Close releases what the backend holds; a Sign in flight when Close is
// called finishes first, and a Sign after it returns ErrClosed (the caller takes the key that
// replaced it). Close is idempotent.
type Key interface {
	// Sign returns the RS256 signature of msg: PKCS #1 v1.5 over SHA-256(msg).
	Sign(msg []byte) ([]byte, error)
	Close()
}

// Backend loads keys.
type Backend interface {
	// Name is what the IdP logs at start and /metrics reports: "go" or "openssl".
	Name() string
	// Load readies priv (whose PKCS #8 DER encoding is der) for signing.
	Load(priv *rsa.PrivateKey, der []byte) (Key, error)
}

// ErrClosed is Sign's answer after Close.
var ErrClosed = errors.New("sign: key closed")

// Default is the backend this binary was built with: OpenSSL with the openssl build tag and
// cgo, Go's crypto/rsa otherwise.
var Default Backend = defaultBackend
