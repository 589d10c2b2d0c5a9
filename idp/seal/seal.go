// Package seal encrypts secrets at rest (TOTP seeds, signing keys) with AES-256-GCM under keys
// from a file the operator provides, and leaves values alone when no key is configured.
//
// # The stored format
//
// A sealed value is
//
//	magic (0xF5 'S' 'L') | version 0x01 | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag
//
// where the key id is the first 4 bytes of SHA-256 of the key (`xxd -r -p KEYFILE | sha256sum`
// for a one-key file shows it), and the GCM associated data is the 8-byte header followed by
// the caller's associated data, which names what the value is ("signing-key:"+kid,
// "totp:"+userID): a value copied to another row does not open there.
//
// A value that does not start with the magic is plain: what was stored before a key was
// configured (a PKCS #8 DER signing key starts with 0x30, a SEQUENCE, never 0xF5) or by None.
// None stores plaintext unchanged, except a plaintext that itself starts with the magic (a
// random TOTP seed does, one time in 2^24), which it stores behind the header magic | 0x00, so
// that Open never mistakes it for a sealed value. Open therefore reads every value ever stored,
// and NeedsReseal tells the plain ones and those sealed by an older key from the rest.
//
// # Keys and rotation
//
// A key file holds one or more keys, one per line, each 64 hexadecimal characters (32 bytes;
// `openssl rand -hex 32`); blank lines and lines starting with # are ignored. The first key
// seals; every key opens. To rotate, put a new key first, restart (the owners of sealed values
// reseal what NeedsReseal at start), and once nothing needs a reseal remove the old key.
//
// Errors never carry key material: a key is named by its id, a bad line by its number.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Sealer seals and opens secrets at rest. Use LoadKeyFile or ParseKeys for a key ring, None
// for no encryption.
type Sealer interface {
	// Seal returns what to store for plaintext, bound to associatedData (what the value is).
	Seal(plaintext, associatedData []byte) ([]byte, error)
	// Open returns the plaintext of a stored value: a sealed one opened with the key that sealed
	// it and the same associated data, a plain one as it is.
	Open(sealed, associatedData []byte) ([]byte, error)
	// NeedsReseal reports whether a stored value is plain or sealed by a key other than the one
	// that seals now, so that sealing it again would change it. Always false for None.
	NeedsReseal(sealed []byte) bool
}

// Or returns s, or None when s is nil.
func Or(s Sealer) Sealer {
	if s == nil {
		return None()
	}
	return s
}

const (
	versionPlain  = 0x00
	versionSealed = 0x01
	idLen         = 4
	headerLen     = 3 + 1 + idLen // magic, version, key id
	nonceLen      = 12
	tagLen        = 16
)

var magic = []byte{0xF5, 'S', 'L'} // not 0x30 (DER's SEQUENCE) nor text

// KeyID is the name of a key in errors and logs: hex of the first 4 bytes of its SHA-256.
type KeyID [idLen]byte

func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

func idOf(key []byte) KeyID {
	sum := sha256.Sum256(key)
	return KeyID(sum[:idLen])
}

// IsSealed reports whether a stored value is sealed (as opposed to plain), and by which key.
func IsSealed(v []byte) (KeyID, bool) {
	if len(v) < headerLen || !bytes.HasPrefix(v, magic) || v[len(magic)] != versionSealed {
		return KeyID{}, false
	}
	return KeyID(v[len(magic)+1 : headerLen]), true
}

// plain returns the plaintext of a value that is not sealed, ok false when it is sealed (or
// carries the magic with a version this package does not know).
func plain(v []byte) (p []byte, ok bool, err error) {
	if !bytes.HasPrefix(v, magic) {
		return v, true, nil
	}
	if len(v) == len(magic) {
		return nil, false, errors.New("seal: truncated value")
	}
	switch v[len(magic)] {
	case versionPlain:
		return v[len(magic)+1:], true, nil
	case versionSealed:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("seal: unknown format version %d", v[len(magic)])
}

type none struct{}

// None is the sealer without a key: it stores plaintext as it is (see the package doc for the
// one exception) and opens every plain value, but no sealed one.
func None() Sealer { return none{} }

func (none) Seal(plaintext, _ []byte) ([]byte, error) {
	if bytes.HasPrefix(plaintext, magic) {
		return append(append(append([]byte{}, magic...), versionPlain), plaintext...), nil
	}
	return bytes.Clone(plaintext), nil
}

func (none) Open(v, _ []byte) ([]byte, error) {
	p, ok, err := plain(v)
	if err != nil {
		return nil, err
	}
	if !ok {
		id, _ := IsSealed(v)
		return nil, &UnknownKeyError{ID: id}
	}
	return bytes.Clone(p), nil
}

func (none) NeedsReseal([]byte) bool { return false }

// Ring is a Sealer with keys: the first seals, every one opens.
type Ring struct {
	keys []ringKey
	// Random is the source of nonces (crypto/rand when nil).
	Random io.Reader
}

type ringKey struct {
	id   KeyID
	aead cipher.AEAD
}

// LoadKeyFile reads a key file (see the package doc). Its errors name the file and a bad line
// by its number, never its content.
func LoadKeyFile(path string) (*Ring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ParseKeys reads the content of a key file.
func ParseKeys(b []byte) (*Ring, error) {
	r := &Ring{}
	seen := map[KeyID]int{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n := i + 1
		if len(line) != 2*32 {
			return nil, fmt.Errorf("line %d: not a key: a key is 64 hexadecimal characters (32 bytes; openssl rand -hex 32), this line has %d characters", n, len(line))
		}
		key, err := hex.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: not a key: a key is 64 hexadecimal characters (32 bytes; openssl rand -hex 32)", n)
		}
		id := idOf(key)
		if first, dup := seen[id]; dup {
			return nil, fmt.Errorf("line %d: the same key as line %d", n, first)
		}
		seen[id] = n
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		r.keys = append(r.keys, ringKey{id: id, aead: aead})
	}
	if len(r.keys) == 0 {
		return nil, errors.New("no key: put one key per line, 64 hexadecimal characters (openssl rand -hex 32)")
	}
	return r, nil
}

// IDs are the ids of the ring's keys in order: the first seals.
func (r *Ring) IDs() []KeyID {
	ids := make([]KeyID, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

// Seal encrypts plaintext with the first key, bound to associatedData.
func (r *Ring) Seal(plaintext, associatedData []byte) ([]byte, error) {
	k := r.keys[0]
	out := make([]byte, headerLen+nonceLen, headerLen+nonceLen+len(plaintext)+tagLen)
	copy(out, magic)
	out[len(magic)] = versionSealed
	copy(out[len(magic)+1:], k.id[:])
	rnd := r.Random
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, out[headerLen:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return k.aead.Seal(out, out[headerLen:], plaintext, ad(out[:headerLen], associatedData)), nil
}

// Open decrypts a sealed value with the key that sealed it, or returns a plain value as it is.
// A value sealed by a key not in the ring, bound to other associated data or altered fails.
func (r *Ring) Open(v, associatedData []byte) ([]byte, error) {
	p, ok, err := plain(v)
	if err != nil {
		return nil, err
	}
	if ok {
		return bytes.Clone(p), nil
	}
	id, _ := IsSealed(v)
	if len(v) < headerLen+nonceLen+tagLen {
		return nil, fmt.Errorf("seal: truncated value sealed with secrets key %s", id)
	}
	for _, k := range r.keys {
		if k.id != id {
			continue
		}
		out, err := k.aead.Open(nil, v[headerLen:headerLen+nonceLen], v[headerLen+nonceLen:], ad(v[:headerLen], associatedData))
		if err != nil {
			return nil, fmt.Errorf("seal: the value sealed with secrets key %s does not open: altered, or stored for something else", id)
		}
		return out, nil
	}
	return nil, &UnknownKeyError{ID: id, Have: r.IDs()}
}

// UnknownKeyError is Open's error for a value sealed with a key the sealer does not have: one
// removed from the file too early, or any when no key is configured.
type UnknownKeyError struct {
	ID   KeyID   // the key that sealed the value
	Have []KeyID // the sealer's keys; none for None
}

func (e *UnknownKeyError) Error() string {
	if len(e.Have) == 0 {
		return fmt.Sprintf("seal: the value is sealed with secrets key %s, but no secrets key is configured", e.ID)
	}
	have := make([]string, len(e.Have))
	for i, id := range e.Have {
		have[i] = id.String()
	}
	return fmt.Sprintf("seal: the value is sealed with secrets key %s, which is not among the configured keys (%s)", e.ID, strings.Join(have, ", "))
}

// NeedsReseal reports whether v is plain or sealed by a key other than the first.
func (r *Ring) NeedsReseal(v []byte) bool {
	id, ok := IsSealed(v)
	return !ok || id != r.keys[0].id
}

func ad(header, associatedData []byte) []byte {
	return append(append(make([]byte, 0, len(header)+len(associatedData)), header...), associatedData...)
}

// Reseal returns v sealed with s's first key if it NeedsReseal, and v itself (changed false)
// otherwise: the step of a key rotation for one stored value.
func Reseal(s Sealer, v, associatedData []byte) (out []byte, changed bool, err error) {
	if !s.NeedsReseal(v) {
		return v, false, nil
	}
	p, err := s.Open(v, associatedData)
	if err != nil {
		return nil, false, err
	}
	out, err = s.Seal(p, associatedData)
	return out, err == nil, err
}
