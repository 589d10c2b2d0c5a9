package keys

import (
	"crypto/rsa"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/idp/sign"
	"jwtidp/idp/token"
	"jwtidp/shared/clock"
)

// Tokens signed while keys rotate underneath: the manager closes the handle of a key that
// stops signing, and a signature that fetched it just before gets sign.ErrClosed and signs with
// the new current key. Every token verifies with the key its kid names; none fails.
func TestSigningThroughRotations(t *testing.T) {
	clk := clock.NewFake(time.Now())
	m, _ := newManager(t, t.TempDir(), clk.Now)
	if m.SignerName() != sign.Go.Name() {
		t.Fatalf("signer %q, want Options.Backend's default %q", m.SignerName(), sign.Go.Name())
	}
	iss := &token.Issuer{Issuer: "http://idp", TTL: time.Minute, Keys: m, Now: clk.Now, Random: randReader{}}
	public := sync.Map{} // kid → *rsa.PublicKey, recorded while the key is published
	record := func() {
		for _, k := range m.Keys() {
			if pk, ok := m.PublicKey(k.ID); ok {
				public.Store(k.ID, pk)
			}
		}
	}
	record()
	stop := make(chan struct{})
	var signed, failed atomic.Int64
	var tokens sync.Map
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				raw, _, err := iss.Access(token.Access{Subject: "s", ClientID: "c", Scope: "x", Audience: []string{"a"}})
				if err != nil {
					failed.Add(1)
					t.Errorf("sign during a rotation: %v", err)
					return
				}
				if n := signed.Add(1); n%50 == 0 {
					tokens.Store(n, raw)
				}
			}
		}()
	}
	for range 4 {
		if err := m.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		record()
	}
	close(stop)
	wg.Wait()
	if signed.Load() == 0 || failed.Load() != 0 {
		t.Fatalf("%d signed, %d failed", signed.Load(), failed.Load())
	}
	tokens.Range(func(_, v any) bool {
		_, err := jwt.Parse(v.(string), func(tk *jwt.Token) (any, error) {
			pk, ok := public.Load(tk.Header["kid"])
			if !ok {
				t.Fatalf("kid %v was never published", tk.Header["kid"])
			}
			return pk.(*rsa.PublicKey), nil
		}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(clk.Now))
		if err != nil {
			t.Errorf("a token signed during the rotations does not verify: %v", err)
		}
		return true
	})
}

type randReader struct{}

func (randReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i)
	}
	return len(b), nil
}
