package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/seal"
)

func secretsKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ringOf(t *testing.T, keys ...string) *seal.Ring {
	t.Helper()
	r, err := seal.ParseKeys([]byte(strings.Join(keys, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sealedManager(t *testing.T, store identity.KeyStore, s seal.Sealer) (*Manager, error) {
	t.Helper()
	return New(context.Background(), store, Options{Bits: 2048, Policy: pol, Now: func() time.Time { return t0 },
		Random: rand.Reader, Logger: slog.New(slog.DiscardHandler), Sealer: s})
}

// storedSealing checks that every stored private key is sealed by key id and none is DER.
func storedSealing(t *testing.T, store identity.KeyStore, by seal.KeyID) {
	t.Helper()
	stored, err := store.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range stored {
		if id, ok := seal.IsSealed(k.PrivateDER); !ok || id != by {
			t.Fatalf("key %s (%s) stored sealed %v by %s, want sealed by %s", k.ID, k.State, ok, id, by)
		}
		if _, err := x509.ParsePKCS8PrivateKey(k.PrivateDER); err == nil {
			t.Fatalf("key %s is stored as plain DER", k.ID)
		}
	}
}

// Every path that writes keys (the first start, rotation, revocation, another replica's
// reload) stores them sealed, and they sign and verify as before.
func TestManagerSealsEveryWrite(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	r := ringOf(t, secretsKey(t))
	id := r.IDs()[0]
	m, err := sealedManager(t, db, r)
	if err != nil {
		t.Fatal(err)
	}
	storedSealing(t, db, id)
	if err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	storedSealing(t, db, id)
	kid, key := m.SigningKey()
	sig, err := key.Sign([]byte("sealed"))
	sum := sha256.Sum256([]byte("sealed"))
	if pub, ok := m.PublicKey(kid); err != nil || !ok || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
		t.Fatalf("the current key is not the published one: %v", err)
	}
	other, err := sealedManager(t, db, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, kid); err != nil {
		t.Fatal(err)
	}
	storedSealing(t, db, id)
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	a := m.CurrentKID()
	b := other.CurrentKID()
	if a != b || a == kid {
		t.Fatalf("the replica signs with %s, the revoker with %s (revoked %s)", b, a, kid)
	}
	// A replica whose secrets file lacks the key cannot follow: Refresh fails and says why.
	stranger := ringOf(t, secretsKey(t))
	if _, err := sealedManager(t, db, stranger); err == nil || !strings.Contains(err.Error(), id.String()) {
		t.Fatalf("a manager without the secrets key: %v, want an error naming key %s", err, id)
	}
}

// Plain DER keys stored before a secrets key was configured load, and the start seals them in
// one write; a rotated secrets file (new key first) reseals them with the new key; a start
// without the key that sealed them fails, naming the key, and writes nothing.
func TestManagerResealsAtStart(t *testing.T) {
	db := openDB(t)
	store := &countingStore{KeyStore: db}
	plain, err := sealedManager(t, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	kid := plain.CurrentKID()
	jwks, _ := plain.JWKS()
	stored, _ := db.Keys(context.Background())
	for _, k := range stored {
		if _, err := x509.ParsePKCS8PrivateKey(k.PrivateDER); err != nil {
			t.Fatalf("without a sealer key %s is not stored as DER: %v", k.ID, err)
		}
	}

	oldKey, newKey := secretsKey(t), secretsKey(t)
	writes := store.writes.Load()
	m, err := sealedManager(t, store, ringOf(t, oldKey))
	if err != nil {
		t.Fatal(err)
	}
	if got := store.writes.Load() - writes; got != 1 {
		t.Fatalf("sealing the plain keys took %d writes, want 1", got)
	}
	storedSealing(t, db, ringOf(t, oldKey).IDs()[0])
	if k := m.CurrentKID(); k != kid {
		t.Fatalf("sealing changed the signing key %s → %s", kid, k)
	}
	if j, _ := m.JWKS(); !bytes.Equal(j, jwks) {
		t.Fatal("sealing changed the JWKS")
	}
	// A start in order writes nothing.
	writes = store.writes.Load()
	if _, err := sealedManager(t, store, ringOf(t, oldKey)); err != nil || store.writes.Load() != writes {
		t.Fatalf("a start with everything sealed: %v, %d writes", err, store.writes.Load()-writes)
	}

	// Without the key, or with only the new one, the start fails and names the missing key.
	before, _ := db.Keys(context.Background())
	oldID := ringOf(t, oldKey).IDs()[0].String()
	for name, s := range map[string]seal.Sealer{"no key": nil, "new key only": ringOf(t, newKey)} {
		_, err := sealedManager(t, store, s)
		if err == nil || !strings.Contains(err.Error(), oldID) || strings.Contains(err.Error(), oldKey) {
			t.Fatalf("%s: %v, want an error naming key %s and not showing it", name, err, oldID)
		}
	}
	if after, _ := db.Keys(context.Background()); len(after) != len(before) {
		t.Fatal("a failed start changed the keys")
	}

	// The rotation: new key first, old key second.
	if _, err := sealedManager(t, store, ringOf(t, newKey, oldKey)); err != nil {
		t.Fatal(err)
	}
	storedSealing(t, db, ringOf(t, newKey).IDs()[0])
	m, err = sealedManager(t, store, ringOf(t, newKey))
	if err != nil {
		t.Fatalf("after the rotation the new key alone: %v", err)
	}
	if k := m.CurrentKID(); k != kid {
		t.Fatalf("the rotation changed the signing key %s → %s", kid, k)
	}
}

// A sealed private key copied to another key's row does not open there.
func TestSealedKeyBoundToItsKid(t *testing.T) {
	db := openDB(t)
	r := ringOf(t, secretsKey(t))
	if _, err := sealedManager(t, db, r); err != nil {
		t.Fatal(err)
	}
	err := db.UpdateKeys(context.Background(), func(keys []identity.SigningKey) ([]identity.SigningKey, error) {
		keys[0].PrivateDER, keys[1].PrivateDER = keys[1].PrivateDER, keys[0].PrivateDER
		return keys, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealedManager(t, db, r); err == nil {
		t.Fatal("keys swapped between rows loaded")
	}
}
