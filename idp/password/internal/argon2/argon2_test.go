package argon2

import (
	"bytes"
	"testing"

	upstream "golang.org/x/crypto/argon2"
)

// TestSameAsUpstream: the same key as golang.org/x/crypto/argon2.IDKey, with a fresh Memory, with
// one reused across hashes of different sizes and parallelism (a reused Memory holds the previous
// hash's blocks, which the first pass must overwrite, not XOR into), and with none.
func TestSameAsUpstream(t *testing.T) {
	cases := []struct {
		pw, salt     string
		time, memory uint32
		threads      uint8
		keyLen       uint32
	}{
		{"password", "somesaltsomesalt", 2, 19456, 1, 32}, // the IdP's parameters
		{"password", "somesaltsomesalt", 2, 19456, 1, 32}, // again, in the memory it just used
		{"other", "somesaltsomesalt", 1, 64, 1, 16},
		{"", "s", 3, 1024, 4, 64},
		{"x", "saltsalt", 1, 8, 1, 32}, // memory below the minimum: raised to 8 blocks per thread
		{"password", "somesaltsomesalt", 2, 19456, 1, 32},
		{"wide", "somesaltsomesalt", 2, 4096, 3, 33},
	}
	var reused Memory
	defer reused.Release()
	for i, c := range cases {
		want := upstream.IDKey([]byte(c.pw), []byte(c.salt), c.time, c.memory, c.threads, c.keyLen)
		if got := IDKey(&reused, []byte(c.pw), []byte(c.salt), c.time, c.memory, c.threads, c.keyLen); !bytes.Equal(got, want) {
			t.Fatalf("case %d, reused memory: %x, upstream %x", i, got, want)
		}
		if got := IDKey(nil, []byte(c.pw), []byte(c.salt), c.time, c.memory, c.threads, c.keyLen); !bytes.Equal(got, want) {
			t.Fatalf("case %d, fresh memory: %x, upstream %x", i, got, want)
		}
	}
	if reused.Size() < 19456*1024 {
		t.Fatalf("the reused memory holds %d bytes, want at least the largest hash's", reused.Size())
	}
}

func FuzzSameAsUpstream(f *testing.F) {
	f.Add([]byte("password"), []byte("somesalt"), uint8(1), uint16(64), uint8(1), uint8(32))
	f.Add([]byte(""), []byte(""), uint8(3), uint16(9), uint8(2), uint8(4))
	var reused Memory // one memory for the whole run: every input also meets an earlier one's blocks
	f.Fuzz(func(t *testing.T, pw, salt []byte, time uint8, memory uint16, threads uint8, keyLen uint8) {
		tm, mem, th, kl := uint32(time%4)+1, uint32(memory%2048), threads%4+1, uint32(keyLen)%96+4
		want := upstream.IDKey(pw, salt, tm, mem, th, kl)
		if got := IDKey(&reused, pw, salt, tm, mem, th, kl); !bytes.Equal(got, want) {
			t.Fatalf("IDKey(t=%d m=%d p=%d len=%d) = %x, upstream %x", tm, mem, th, kl, got, want)
		}
	})
}

func BenchmarkIDKey(b *testing.B) {
	salt := []byte("somesaltsomesalt")
	b.Run("upstream", func(b *testing.B) {
		for range b.N {
			upstream.IDKey([]byte("password"), salt, 2, 19456, 1, 32)
		}
	})
	b.Run("reused", func(b *testing.B) {
		var m Memory
		defer m.Release()
		for range b.N {
			IDKey(&m, []byte("password"), salt, 2, 19456, 1, 32)
		}
	})
}
