//go:build !(cgo && linux)

package sign

import "errors"

var errNoCgo = errors.New("this binary has no OpenSSL signer: it was built without cgo (CGO_ENABLED=0, or no C compiler) or not for Linux")

// OpenSSL is the backend of the system's libcrypto 3; in this build, always an error.
func OpenSSL() (Backend, error) { return nil, errNoCgo }

// LoadOpenSSL loads libcrypto 3 from the first of names that loads; in this build, always an
// error.
func LoadOpenSSL(names ...string) (Backend, error) { return nil, errNoCgo }
