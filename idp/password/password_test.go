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
		{"too long", "alice", strings.Repeat("x", 1025), "at most 1024"},
		{"equals username", "alice.smith", "Alice.Smith", "username"},
		{"common", "alice", "password1", "common"},
		{"common any case", "alice", "PassWord1", "common"},
		{"ok", "alice", "tr0ub4dor&3-staple", ""},
		{"unicode ok", "alice", "пароль-надёжный", ""},
		{"1024 bytes ok", "alice", strings.Repeat("y", 1024), ""},
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
	if len(common) < 3000 {
		t.Fatalf("common list has %d entries", len(common))
	}
}
