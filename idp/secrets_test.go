package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/idp/seal"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// newSecretsKey writes a key file of the given keys (hex, first seals) and returns its path.
func secretsKeyFile(t *testing.T, keys ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets.key")
	content := "# secrets keys, the first seals\n" + strings.Join(keys, "\n") + "\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSecretsKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	k := hex.EncodeToString(b)
	proctest.Secret(k) // never in a log
	return k
}

func keyID(t *testing.T, key string) seal.KeyID {
	t.Helper()
	r, err := seal.ParseKeys([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return r.IDs()[0]
}

// moduli returns the modulus bytes of every key the JWKS publishes, by kid.
func moduli(t *testing.T, url string) map[string][]byte {
	t.Helper()
	got := do(t, "GET", url+"/.well-known/jwks.json", "", nil)
	var set struct{ Keys []struct{ Kid, N string } }
	if err := json.Unmarshal(got.body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS %d %s: %v", got.status, got.body, err)
	}
	out := map[string][]byte{}
	for _, k := range set.Keys {
		n, err := base64.RawURLEncoding.DecodeString(k.N)
		if err != nil {
			t.Fatal(err)
		}
		out[k.Kid] = n
	}
	return out
}

// enrolTOTP signs up a user "sealed", enrols a TOTP authenticator and returns its seed.
func enrolTOTP(t *testing.T, url string) []byte {
	t.Helper()
	signup(t, url, "sealed", "correct-horse-9")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if a := authAs(t, url, "sealed", "correct-horse-9"); a.status != 200 || json.Unmarshal(a.body, &tok) != nil {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	a := bearerJSON(t, "POST", url+"/account/totp", tok.AccessToken, `{"current_password":"correct-horse-9"}`)
	secret, _ := a.json(t)["secret"].(string)
	proctest.Secret(secret)
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if a.status != 200 || err != nil || len(seed) < 10 {
		t.Fatalf("enrol: %d %s: %v", a.status, a.body, err)
	}
	return seed
}

// holdsModulus reports whether raw holds the modulus n, as bytes or inside base64 (the bbolt
// store keeps JSON, where []byte is base64): in base64 of the DER, the modulus's bytes from the
// one of three offsets that falls on a 3-byte boundary encode to the same characters.
func holdsModulus(raw, n []byte) bool {
	if bytes.Contains(raw, n) {
		return true
	}
	for s := range 3 {
		chunk := n[s : s+3*((len(n)-3)/3)]
		if bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(chunk))) {
			return true
		}
	}
	return false
}

// startFails runs idp serve, which must refuse to start, and returns what it said.
func startFails(t *testing.T, args ...string) string {
	t.Helper()
	args = append(append([]string{"serve", "--addr", "127.0.0.1:0"}, proctest.FastArgon...), args...)
	out, err := runIDP(args)
	if err == nil {
		t.Fatalf("idp %s started\n%s", strings.Join(args, " "), out)
	}
	return out
}

// storedKeysSealedBy checks every stored signing key is sealed by the key id want.
func storedKeysSealedBy(t *testing.T, keys []identity.SigningKey, want seal.KeyID) {
	t.Helper()
	if len(keys) < 2 {
		t.Fatalf("%d stored keys", len(keys))
	}
	for _, k := range keys {
		if id, ok := seal.IsSealed(k.PrivateDER); !ok || id != want {
			t.Fatalf("key %s stored sealed %v by %s, want by %s", k.ID, ok, id, want)
		}
	}
}

// With --secrets-key-file the bbolt file holds no signing key in the clear; without it, it
// does and the start says so loudly. A restart without the key refuses to start rather than
// making new keys; a rotated file (new key first) reseals everything with the new key, after
// which the old key can go.
func TestSecretsAtRestBolt(t *testing.T) {
	oldKey, newKey := newSecretsKey(t), newSecretsKey(t)
	sealed, plain := t.TempDir(), t.TempDir()

	in := startIDP(t, sealed, "--secrets-key-file", secretsKeyFile(t, oldKey))
	ns := moduli(t, in.URL)
	ns["TOTP seed"] = enrolTOTP(t, in.URL)
	if strings.Contains(in.Log(), "unencrypted") || !strings.Contains(in.Log(), "secrets=sealed secrets_key="+keyID(t, oldKey).String()) {
		t.Fatalf("the start with a key does not say its secrets are sealed:\n%s", in.Log())
	}
	stop(t, in)
	raw, err := os.ReadFile(filepath.Join(sealed, "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	for kid, n := range ns {
		if holdsModulus(raw, n) {
			t.Fatalf("the modulus of key %s is in the bbolt file: stored in the clear", kid)
		}
	}

	// The control: without a key the DER, modulus and all, is in the file, and the start says so.
	in = startIDP(t, plain)
	ns = moduli(t, in.URL)
	ns["TOTP seed"] = enrolTOTP(t, in.URL)
	for _, want := range []string{`level=WARN msg="secrets are stored unencrypted: set --secrets-key-file"`, "secrets=unencrypted"} {
		if !strings.Contains(in.Log(), want) {
			t.Fatalf("the start without a key does not say %s:\n%s", want, in.Log())
		}
	}
	stop(t, in)
	raw, _ = os.ReadFile(filepath.Join(plain, "idp.db"))
	for kid, n := range ns {
		if !holdsModulus(raw, n) {
			t.Fatalf("without a key the modulus of key %s is not in the file: the check above proves nothing", kid)
		}
	}

	// Without the key, or with another one only: no start, and the error names the key.
	for name, args := range map[string][]string{
		"no key file":   {"--data", sealed},
		"new key alone": {"--data", sealed, "--secrets-key-file", secretsKeyFile(t, newKey)},
	} {
		out := startFails(t, args...)
		if !strings.Contains(out, keyID(t, oldKey).String()) || !strings.Contains(out, "--secrets-key-file") {
			t.Fatalf("%s: the refusal does not name the key or the setting:\n%s", name, out)
		}
	}
	// A bad file is refused by line, without its content.
	bad := secretsKeyFile(t, newKey, "zz"+oldKey[2:])
	if out := startFails(t, "--data", sealed, "--secrets-key-file", bad); !strings.Contains(out, "line 3") || strings.Contains(out, oldKey[2:]) {
		t.Fatalf("a bad key file: %s", out)
	}

	// The rotation: new key first, old key second.
	in = startIDP(t, sealed, "--secrets-key-file", secretsKeyFile(t, newKey, oldKey))
	before := moduli(t, in.URL)
	stop(t, in)
	db, err := boltdb.Open(sealed, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := db.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	storedKeysSealedBy(t, keys, keyID(t, newKey))
	u, err := db.GetUserByName(context.Background(), "sealed")
	db.Close()
	if err != nil || u.Factors.TOTP == nil {
		t.Fatalf("the enrolled user: %v", err)
	}
	if id, ok := seal.IsSealed(u.Factors.TOTP.Secret); !ok || id != keyID(t, newKey) {
		t.Fatalf("the TOTP seed is sealed %v by %s after the rotation, want by %s", ok, id, keyID(t, newKey))
	}
	// The old key can leave the file: the same keys are served.
	in = startIDP(t, sealed, "--secrets-key-file", secretsKeyFile(t, newKey))
	if after := moduli(t, in.URL); len(after) != len(before) {
		t.Fatalf("after the rotation %d keys, before %d", len(after), len(before))
	}
	delete(before, "TOTP seed")
	for kid, n := range moduli(t, in.URL) {
		if !bytes.Equal(before[kid], n) {
			t.Fatalf("key %s changed with the secrets key's rotation", kid)
		}
	}
}

// The same on PostgreSQL: the signing_keys rows hold sealed keys only, the rotation reseals
// them all, and a replica without the key refuses to start.
func TestSecretsAtRestPostgres(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	oldKey, newKey := newSecretsKey(t), newSecretsKey(t)
	in := startReplica(t, dbURL, service.Env{}, "--secrets-key-file", secretsKeyFile(t, oldKey))
	ns := moduli(t, in.URL)
	stop(t, in)
	rows := signingKeyRows(t, dbURL)
	storedKeysSealedBy(t, rows, keyID(t, oldKey))
	for _, k := range rows {
		for kid, n := range ns {
			if holdsModulus(k.PrivateDER, n) {
				t.Fatalf("row %s holds the modulus of key %s", k.ID, kid)
			}
		}
	}
	out := startFails(t, "--data", t.TempDir(), "--database-url", dbURL)
	if !strings.Contains(out, keyID(t, oldKey).String()) {
		t.Fatalf("a replica without the key: %s", out)
	}
	in = startReplica(t, dbURL, service.Env{}, "--secrets-key-file", secretsKeyFile(t, newKey, oldKey))
	stop(t, in)
	storedKeysSealedBy(t, signingKeyRows(t, dbURL), keyID(t, newKey))
}

func signingKeyRows(t *testing.T, dbURL string) []identity.SigningKey {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id, private_der FROM signing_keys`)
	if err != nil {
		t.Fatal(err)
	}
	var out []identity.SigningKey
	for rows.Next() {
		var k identity.SigningKey
		if err := rows.Scan(&k.ID, &k.PrivateDER); err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// stop stops an in-process IdP and waits until its store is closed.
func stop(t *testing.T, in *servicetest.Instance) {
	t.Helper()
	if err := in.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, in.Log())
	}
}
