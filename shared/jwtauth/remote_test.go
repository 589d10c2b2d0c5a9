package jwtauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"jwtidp/shared/jwtauth/forge"
)

// A key the IdP revokes leaves the work-item service's trust with the first JWKS refresh that
// no longer lists it, even for a token that was verified and cached before: the refresh
// changes RemoteKeys' generation, which empties the verified-token cache.
func TestRevokedKeyLeavesVerifiedTokenCache(t *testing.T) {
	const iss = "https://iss.test"
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	var published atomic.Pointer[[]byte]
	publish := func(keys map[string]*rsa.PrivateKey) {
		var set jose.JSONWebKeySet
		for kid, k := range keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		b, err := json.Marshal(set)
		if err != nil {
			t.Fatal(err)
		}
		published.Store(&b)
	}
	publish(map[string]*rsa.PrivateKey{"k1": k1, "k2": k2})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(*published.Load())
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Loaded here rather than in the background, so the test needs no wait.
	rk := newRemoteKeys(RemoteConfig{Issuer: iss, JWKSURL: srv.URL, UnknownKIDEvery: time.Millisecond})
	if err := rk.start(ctx); err != nil {
		t.Fatal(err)
	}
	// The tokens are minted at the wall clock's time (forge): the verifier reads the same clock,
	// so a second that turns between minting and verifying cannot make one "not valid yet".
	v := NewVerifier(Config{Issuer: iss, Audience: "svc", Keys: rk, CacheSize: 100, Now: time.Now})

	tok := forge.Minter{Key: k1, KID: "k1", Issuer: iss, Audience: []string{"svc"}}.Valid()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 1 {
		t.Fatal("the verified token was not cached")
	}

	// The IdP revokes k1, then the service refreshes its JWKS. A token with a kid it does not
	// know makes it refresh at once; the scheduled refresh (--jwks-refresh) replaces the set
	// through the same storage.
	publish(map[string]*rsa.PrivateKey{"k2": k2})
	gen := rk.Generation()
	unknown := forge.Minter{Key: k2, KID: "k3", Issuer: iss, Audience: []string{"svc"}}.Valid()
	if _, err := v.Verify(ctx, unknown); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a token with an unpublished kid: %v, want refused", err)
	}
	if rk.Generation() == gen {
		t.Fatal("a JWKS refresh that dropped a kid did not change the generation")
	}
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a cached token signed by the revoked key: %v, want refused", err)
	}
	// The key that stays is still trusted.
	if _, err := v.Verify(ctx, forge.Minter{Key: k2, KID: "k2", Issuer: iss, Audience: []string{"svc"}}.Valid()); err != nil {
		t.Fatalf("a token signed by the remaining key: %v", err)
	}
}
