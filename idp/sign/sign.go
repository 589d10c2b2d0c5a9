// Package sign makes RS256 signatures (RSASSA-PKCS1-v1_5 with SHA-256) with the IdP's signing
// keys. Two backends, chosen at start (Choose): the system's OpenSSL 3 libcrypto through its EVP
// interface, about three times faster per signature, loaded at run time (dlopen, so a build
// needs neither its headers nor the library; cgo on Linux), and Go's crypto/rsa, everywhere —
// the fallback when libcrypto 3 is not there or the binary has no cgo. PKCS#1 v1.5 is
// deterministic, so both make the same bytes.
package sign

import (
	"crypto/rsa"
	"errors"
	"fmt"
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

// The choices of Choose (the IdP's --signer).
const (
	ChooseAuto    = "auto"    // OpenSSL when libcrypto 3 loads, else Go
	ChooseOpenSSL = "openssl" // OpenSSL, or an error
	ChooseGo      = "go"
)

// Choose returns the backend that choice names (auto, openssl or go) and why it is that one,
// for the start-up log: with auto, where libcrypto was loaded from or why it could not be. An
// error when choice is openssl and libcrypto 3 cannot be loaded, or choice is none of the three.
func Choose(choice string) (b Backend, why string, err error) {
	return ChooseWith(choice, OpenSSL)
}

// ChooseWith is Choose with another loader of the OpenSSL backend (a test's: LoadOpenSSL of a
// library that is not there).
func ChooseWith(choice string, openssl func() (Backend, error)) (Backend, string, error) {
	switch choice {
	case ChooseGo:
		return Go, "asked for (--signer go)", nil
	case ChooseOpenSSL:
		b, err := openssl()
		if err != nil {
			return nil, "", fmt.Errorf("the OpenSSL signer cannot be loaded: %w", err)
		}
		return b, fmt.Sprint(b), nil
	case ChooseAuto, "":
		b, err := openssl()
		if err != nil {
			return Go, err.Error(), nil
		}
		return b, fmt.Sprint(b), nil
	}
	return nil, "", fmt.Errorf("%q is not auto, openssl or go", choice)
}
