package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func ring(t testing.TB, keys ...string) *Ring {
	t.Helper()
	r, err := ParseKeys([]byte(strings.Join(keys, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	r := ring(t, newKey(t))
	for _, p := range [][]byte{nil, {}, []byte("a TOTP seed, 20 bytes"), bytes.Repeat([]byte{0x30}, 1200), magic} {
		s, err := r.Seal(p, []byte("totp:u1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > 4 && bytes.Contains(s, p) {
			t.Fatalf("the sealed value contains the plaintext")
		}
		if id, ok := IsSealed(s); !ok || id != r.IDs()[0] {
			t.Fatalf("IsSealed = %v, %v", id, ok)
		}
		got, err := r.Open(s, []byte("totp:u1"))
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("Open = %q, %v; want %q", got, err, p)
		}
	}
	a, _ := r.Seal([]byte("x"), nil)
	b, _ := r.Seal([]byte("x"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}
}

func TestWrongAssociatedData(t *testing.T) {
	r := ring(t, newKey(t))
	s, _ := r.Seal([]byte("seed"), []byte("totp:alice"))
	if _, err := r.Open(s, []byte("totp:bob")); err == nil {
		t.Fatal("a value moved to another row opened")
	}
	if _, err := r.Open(s, nil); err == nil {
		t.Fatal("a value opened without its associated data")
	}
}

func TestTampering(t *testing.T) {
	r := ring(t, newKey(t))
	s, _ := r.Seal([]byte("seed bytes"), []byte("totp:alice"))
	// From the key id on, every change is refused. (A change to the magic or the version can
	// make the value read as plain — as any value a writer of the store puts there would: sealing
	// keeps the secret from readers of the store, it does not authenticate its writers.)
	for i := len(magic) + 1; i < len(s); i++ {
		bad := bytes.Clone(s)
		bad[i] ^= 0x01
		if got, err := r.Open(bad, []byte("totp:alice")); err == nil {
			t.Fatalf("byte %d flipped: Open = %q, want an error", i, got)
		}
	}
	for n := 0; n < len(s); n++ {
		if _, err := r.Open(s[:n], []byte("totp:alice")); err == nil && n >= len(magic)+1 {
			t.Fatalf("truncated to %d bytes: opened", n)
		}
	}
}

func TestRemovedKey(t *testing.T) {
	old, cur := newKey(t), newKey(t)
	both := ring(t, cur, old)
	s, _ := ring(t, old).Seal([]byte("seed"), []byte("ad"))
	if got, err := both.Open(s, []byte("ad")); err != nil || string(got) != "seed" {
		t.Fatalf("the second key does not open: %q, %v", got, err)
	}
	_, err := ring(t, cur).Open(s, []byte("ad"))
	oldID := ring(t, old).IDs()[0].String()
	if err == nil || !strings.Contains(err.Error(), oldID) {
		t.Fatalf("Open with the key removed = %v, want an error naming key %s", err, oldID)
	}
	if strings.Contains(err.Error(), old) || strings.Contains(err.Error(), cur) {
		t.Fatalf("the error shows a key: %v", err)
	}
	if _, err := None().Open(s, []byte("ad")); err == nil || !strings.Contains(err.Error(), oldID) {
		t.Fatalf("None().Open of a sealed value = %v, want an error naming key %s", err, oldID)
	}
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.ID != ring(t, old).IDs()[0] {
		t.Fatalf("the error is not an UnknownKeyError for the old key: %#v", err)
	}
}

func TestPlainValuesPassThrough(t *testing.T) {
	r := ring(t, newKey(t))
	der := []byte{0x30, 0x82, 0x04, 0xbd, 0x02, 0x01, 0x00}
	for _, s := range []Sealer{r, None()} {
		for _, p := range [][]byte{der, []byte("JBSWY3DPEHPK3PXP"), {}, {0xF5}, {0xF5, 'S'}} {
			if got, err := s.Open(p, []byte("ad")); err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%T.Open(%x) = %x, %v; want it unchanged", s, p, got, err)
			}
		}
	}
	// None stores plaintext as it is, but escapes one that looks sealed.
	for _, p := range [][]byte{der, []byte("seed"), append(bytes.Clone(magic), 0x01, 1, 2, 3, 4), bytes.Clone(magic)} {
		s, err := None().Seal(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(p, magic) && !bytes.Equal(s, p) {
			t.Fatalf("None().Seal(%x) = %x, want it unchanged", p, s)
		}
		for _, o := range []Sealer{None(), r} {
			if got, err := o.Open(s, nil); err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%T.Open(None().Seal(%x)) = %x, %v", o, p, got, err)
			}
		}
	}
	if _, err := r.Open(append(bytes.Clone(magic), 0x7f, 1), nil); err == nil {
		t.Fatal("an unknown version opened")
	}
}

func TestNeedsReseal(t *testing.T) {
	old, cur := newKey(t), newKey(t)
	r := ring(t, cur, old)
	byOld, _ := ring(t, old).Seal([]byte("v"), []byte("ad"))
	byCur, _ := r.Seal([]byte("v"), []byte("ad"))
	plainEscaped, _ := None().Seal(magic, nil)
	for _, c := range []struct {
		v    []byte
		want bool
	}{{[]byte{0x30, 1}, true}, {plainEscaped, true}, {byOld, true}, {byCur, false}} {
		if got := r.NeedsReseal(c.v); got != c.want {
			t.Errorf("NeedsReseal(%x) = %v, want %v", c.v[:min(len(c.v), 8)], got, c.want)
		}
		if None().NeedsReseal(c.v) {
			t.Errorf("None().NeedsReseal = true")
		}
	}
	out, changed, err := Reseal(r, byOld, []byte("ad"))
	if err != nil || !changed || r.NeedsReseal(out) {
		t.Fatalf("Reseal = %v, %v", changed, err)
	}
	if got, _ := ring(t, cur).Open(out, []byte("ad")); string(got) != "v" {
		t.Fatalf("after a reseal the new key alone opens %q", got)
	}
	if same, changed, _ := Reseal(r, byCur, []byte("ad")); changed || !bytes.Equal(same, byCur) {
		t.Fatal("Reseal changed a value the first key sealed")
	}
}

func TestKeyFile(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("# secrets key, newest first\n\n"+k1+"\n  "+strings.ToUpper(k2)+"  \n# old\n"), 0o600)
	r, err := LoadKeyFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if ids := r.IDs(); len(ids) != 2 || ids[0] != ring(t, k1).IDs()[0] {
		t.Fatalf("IDs = %v", ids)
	}

	secretish := "not-hex-" + k1[8:]
	for name, c := range map[string]struct{ content, want string }{
		"short":     {"# c\n" + k1 + "\n" + k2[:62] + "\n", "line 3"},
		"not hex":   {k2 + "\n\n" + secretish + "\n", "line 3"},
		"16 bytes":  {k1[:32] + "\n", "line 1"},
		"duplicate": {k1 + "\n" + k1 + "\n", "line 2: the same key as line 1"},
		"empty":     {"# nothing\n\n", "no key"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(c.content), 0o600)
		_, err := LoadKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, c.want)
			continue
		}
		for _, leak := range []string{k1, k2[:62], secretish, k1[:32], k1[8:40], k2[8:40]} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%s: the error echoes the file: %v", name, err)
			}
		}
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file loaded")
	}
}

// FuzzOpen: no input makes Open panic, and whatever opens under a key was sealed by it.
func FuzzOpen(f *testing.F) {
	const key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	r, err := ParseKeys([]byte(key))
	if err != nil {
		f.Fatal(err)
	}
	s, _ := r.Seal([]byte("seed"), []byte("totp:u"))
	f.Add(s, []byte("totp:u"))
	f.Add([]byte{0x30, 0x82}, []byte{})
	f.Add(append(bytes.Clone(magic), 0), []byte("x"))
	f.Add(append(bytes.Clone(magic), 1, 0, 0, 0, 0), []byte("x"))
	f.Add(bytes.Clone(magic), []byte(nil))
	f.Fuzz(func(t *testing.T, v, ad []byte) {
		for _, s := range []Sealer{r, None()} {
			got, err := s.Open(v, ad)
			s.NeedsReseal(v)
			if err != nil {
				continue
			}
			if _, sealed := IsSealed(v); !sealed && !bytes.HasPrefix(v, magic) && !bytes.Equal(got, v) {
				t.Fatalf("a plain value opened changed")
			}
		}
	})
}
