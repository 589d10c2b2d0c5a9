package sign

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"sync/atomic"
)

// Go is the crypto/rsa backend.
var Go Backend = goBackend{}

type goBackend struct{}

func (goBackend) Name() string { return "go" }

func (goBackend) Load(priv *rsa.PrivateKey, _ []byte) (Key, error) {
	priv.Precompute()
	return &goKey{priv: priv}, nil
}

type goKey struct {
	priv   *rsa.PrivateKey
	closed atomic.Bool
}

func (k *goKey) Sign(msg []byte) ([]byte, error) {
	if k.closed.Load() {
		return nil, ErrClosed
	}
	sum := sha256.Sum256(msg)
	return rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, sum[:])
}

func (k *goKey) Close() { k.closed.Store(true) }
