package password

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jwtidp/shared/apperr"
)

var fast = Params{Memory: 64, Time: 1, Threads: 1}

func newHasher(t *testing.T, p Params, slots int, wait time.Duration) *Hasher {
	t.Helper()
	h, err := NewHasher(p, slots, wait, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	h := newHasher(t, fast, 2, time.Second)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse ☃")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string %q", enc)
	}
	if ok, rehash, err := h.Verify(ctx, enc, "correct horse ☃"); !ok || rehash || err != nil {
		t.Fatalf("Verify(right) = %v, %v, %v", ok, rehash, err)
	}
	if ok, _, _ := h.Verify(ctx, enc, "correct horse"); ok {
		t.Fatal("a wrong password verified")
	}
	if ok, _, err := h.Verify(ctx, "", "anything"); ok || err != nil {
		t.Fatalf("unknown user: %v, %v; want false, nil (dummy hash)", ok, err)
	}
	enc2, _ := h.Hash(ctx, "correct horse ☃")
	if enc2 == enc {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

func TestRehashWhenWeaker(t *testing.T) {
	ctx := context.Background()
	old := newHasher(t, fast, 1, time.Second)
	enc, _ := old.Hash(ctx, "pw-for-rehash")
	stronger := newHasher(t, Params{Memory: 128, Time: 1, Threads: 1}, 1, time.Second)
	ok, rehash, err := stronger.Verify(ctx, enc, "pw-for-rehash")
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify = %v, %v, %v; want a match that asks for a rehash", ok, rehash, err)
	}
	if _, rehash, _ := stronger.Verify(ctx, enc, "wrong"); rehash {
		t.Fatal("a failed verification asked for a rehash")
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{
		"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
		"$argon2id$v=19$m=064,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if _, _, _, err := Decode(s); err == nil {
			t.Errorf("Decode(%q) accepted", s)
		}
	}
	if _, _, _, err := Decode("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"); err != nil {
		t.Errorf("valid string refused: %v", err)
	}
}

// The limit is counted, not timed: every hash reports its start and end.
func TestConcurrencyBounded(t *testing.T) {
	h := newHasher(t, Params{Memory: 1024, Time: 1, Threads: 1}, 3, 30*time.Second)
	var running, peak atomic.Int32
	h.OnStart = func() {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
	}
	h.OnEnd = func() { running.Add(-1) }
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Hash(context.Background(), "password-x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak concurrent hashes = %d, want exactly the limit 3", p)
	}
}

func TestBusyWhenNoSlot(t *testing.T) {
	h := newHasher(t, fast, 1, 10*time.Millisecond)
	h.slots <- struct{}{} // occupy the only slot
	_, err := h.Hash(context.Background(), "whatever-pw")
	if apperr.Code(err) != apperr.EUNAVAILABLE || apperr.RetryAfter(err) <= 0 {
		t.Fatalf("err = %v; want EUNAVAILABLE with a retry-after", err)
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name, user, pw, want string
	}{
		{"short", "alice", "abc1234", "at least 8"},
		{"short in characters though long in bytes", "alice", "☃☃☃☃☃☃☃", "at least 8"},
		// r, e + combining acute, s, u, m, e + combining acute, s: 9 characters typed, 7 in NFKC.
		{"short once accents compose", "alice", "re\u0301sume\u0301s", "at least 8"},
		{"long enough once ligatures expand", "alice", "ab\ufb00cd\ufb03", ""}, // abffcdffi
		{"too long", "alice", strings.Repeat("x", 1025), "at most 1024"},
		{"1024 bytes ok though longer in NFKC", "alice", strings.Repeat("\ufdfa", 341) + "z", ""},
		{"equals username", "alice.smith", "Alice.Smith", "username"},
		{"username in full-width letters", "alice.smith", "Ａｌｉｃｅ．Ｓｍｉｔｈ", "username"},
		{"username with spaces around", "alice.smith", " alice.smith\t", "username"},
		{"one character repeated", "alice", "aaaaaaaa", "one character repeated"},
		{"one letter repeated in both cases", "alice", "ZzZzZzZz", "one character repeated"},
		{"Kelvin signs and k", "alice", "\u212aK\u212ak\u212aK\u212ak", "one character repeated"},
		{"emoji repeated", "alice", "🙂🙂🙂🙂🙂🙂🙂🙂", "one character repeated"},
		{"spaces only", "alice", " \t        ", "only spaces"},
		{"common", "alice", "password1", "common"},
		{"common any case", "alice", "PassWord1", "common"},
		{"common with spaces around", "alice", "  password1 \t", "common"},
		{"common short once trimmed", "alice", "    abc123    ", "common"},
		{"common in full-width letters", "alice", "ｐａｓｓｗｏｒｄ１", "common"},
		{"common with a Kelvin sign", "alice", "\u212aATHERINE", "common"},
		{"common word", "alice", "Basketball", "common"},
		{"common name", "alice", "jennifer", "common"},
		{"zxcvbn's passwords only", "alice", "Liverpool1", "common"},
		{"zxcvbn's words only", "alice", "university", "common"},
		{"Openwall only", "alice", "hellohello", "common"},
		{"ok", "alice", "tr0ub4dor&3-staple", ""},
		{"unicode ok", "alice", "пароль-надёжный", ""},
		{"accents ok", "alice", "cafe\u0301-au-lait", ""},
		{"1024 bytes ok", "alice", strings.Repeat("xy", 512), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPolicy(tt.user, tt.pw)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if apperr.Code(err) != apperr.EINVALID || !strings.Contains(apperr.Message(err), tt.want) {
				t.Fatalf("err = %v; want EINVALID saying %q", err, tt.want)
			}
		})
	}
}

// The search in place finds every line of the list and nothing else.
func TestBlocklist(t *testing.T) {
	if !strings.HasSuffix(blocklist, "\n") {
		t.Fatal("blocklist.txt does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(blocklist, "\n"), "\n")
	if len(lines) < 90000 {
		t.Fatalf("blocklist has %d entries", len(lines))
	}
	set := make(map[string]bool, len(lines))
	for i, l := range lines {
		if i > 0 && lines[i-1] >= l {
			t.Fatalf("line %d %q is not after %q", i+1, l, lines[i-1])
		}
		if l == "" || l != blocklistKey(normalize(l)) {
			t.Fatalf("line %d %q is not in normal form", i+1, l)
		}
		set[l] = true
	}
	for _, l := range lines {
		for _, w := range []string{l, l[:len(l)-1], l + "!", l + "\xff", "\x00" + l, l[1:]} {
			if got := inBlocklist(blocklist, w); got != set[w] {
				t.Fatalf("inBlocklist(%q) = %v", w, got)
			}
		}
	}
	for _, w := range []string{"", "\x00", "\xff\xff", "~~~~~~~~~~~~"} {
		if inBlocklist(blocklist, w) != set[w] {
			t.Fatalf("inBlocklist(%q) wrong", w)
		}
	}
	if inBlocklist("", "x") || !inBlocklist("x\n", "x") || inBlocklist("x\n", "") {
		t.Fatal("inBlocklist on a one-line list")
	}
}

// A password hashed as typed, before passwords were normalised, still verifies, asks for a rehash,
// and the rehash is of the NFKC form, which any way of typing the password then matches.
func TestLegacyHashOfUnnormalisedPassword(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, fast, 1, time.Second)
	for _, raw := range []string{
		"\u212aelvin-secret-1",    // Kelvin sign
		"ｓｅｃｒｅｔ-full-width",       // full-width letters
		"cafe\u0301-au-lait-1984", // e + combining acute
	} {
		legacy, err := h.hash(raw) // the old Hash
		if err != nil {
			t.Fatal(err)
		}
		ok, rehash, err := h.Verify(ctx, legacy, raw)
		if !ok || !rehash || err != nil {
			t.Fatalf("Verify(legacy hash of %q) = %v, %v, %v; want a match that asks for a rehash", raw, ok, rehash, err)
		}
		if ok, rehash, _ := h.Verify(ctx, legacy, raw+"x"); ok || rehash {
			t.Fatalf("a wrong password verified against the legacy hash of %q", raw)
		}
		fresh, err := h.Hash(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, typed := range []string{raw, normalize(raw)} {
			if ok, rehash, err := h.Verify(ctx, fresh, typed); !ok || rehash || err != nil {
				t.Fatalf("Verify(new hash of %q, %q) = %v, %v, %v; want a match, no rehash", raw, typed, ok, rehash, err)
			}
		}
		if ok, rehash, err := h.Verify(ctx, "", raw); ok || rehash || err != nil {
			t.Fatalf("unknown user: %v, %v, %v", ok, rehash, err)
		}
	}
}

// A wrong password not in NFKC form costs two hashes, for a known user and an unknown one alike;
// one in NFKC form costs one.
func TestVerifyWork(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, fast, 1, time.Second)
	enc, _ := h.Hash(ctx, "right-password")
	var hashes int
	for _, tt := range []struct {
		encoded, pw string
		want        int
	}{
		{enc, "wrong-password", 1}, {"", "wrong-password", 1},
		{enc, "ｗｒｏｎｇ-password", 2}, {"", "ｗｒｏｎｇ-password", 2},
		{enc, "ｒｉｇｈｔ-password", 1},
	} {
		hashes = 0
		h.onVerify = func() { hashes++ }
		h.Verify(ctx, tt.encoded, tt.pw)
		if hashes != tt.want {
			t.Errorf("Verify(%q, %q) hashed %d times, want %d", tt.encoded, tt.pw, hashes, tt.want)
		}
	}
}
