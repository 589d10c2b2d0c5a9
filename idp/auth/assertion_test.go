package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ClientKeys, on a fake clock: a set is kept TTL and fetched again after; an unknown kid asks
// again at most every MinRefresh; a document over MaxBytes, a non-200 answer or a server too
// slow for Timeout is an error (and a cached set stays in use while fresh).
func TestClientKeys(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	doc, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: "a"}}})
	var body atomic.Value
	body.Store(doc)
	var status, fetches atomic.Int32
	status.Store(200)
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.URL.Path == "/slow" {
			<-block
		}
		w.WriteHeader(int(status.Load()))
		w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	defer close(block)
	now := time.Unix(1_800_000_000, 0)
	ck := NewClientKeys(func() time.Time { return now })
	ctx := context.Background()
	get := func(kid string) (int, error) {
		set, err := ck.Keys(ctx, srv.URL+"/jwks", kid)
		return len(set.Keys), err
	}
	if n, err := get("a"); n != 1 || err != nil || fetches.Load() != 1 {
		t.Fatalf("first: %d %v, %d fetches", n, err, fetches.Load())
	}
	get("a")
	get("b") // unknown, but the last fetch was just now
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches, want 1 within MinRefresh", fetches.Load())
	}
	now = now.Add(ck.MinRefresh)
	get("b")
	get("b")
	if fetches.Load() != 2 {
		t.Fatalf("%d fetches, want 2: one more for the unknown kid after MinRefresh", fetches.Load())
	}
	now = now.Add(ck.TTL)
	if n, err := get("a"); n != 1 || err != nil || fetches.Load() != 3 {
		t.Fatalf("after TTL: %d %v, %d fetches", n, err, fetches.Load())
	}

	// Failures: too big, not 200 — with a fresh set cached it stays; without, an error.
	body.Store([]byte(`{"keys":[` + strings.Repeat(" ", int(ck.MaxBytes)) + `]}`))
	now = now.Add(ck.MinRefresh)
	if n, err := get("b"); n != 1 || err != nil {
		t.Fatalf("a failed refetch with a fresh set: %d %v, want the cached set", n, err)
	}
	now = now.Add(ck.TTL)
	if _, err := get("a"); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("a document over MaxBytes: %v", err)
	}
	body.Store(doc)
	status.Store(404)
	now = now.Add(ck.MinRefresh)
	if _, err := get("a"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a 404: %v", err)
	}
	ck.Timeout = 50 * time.Millisecond
	if _, err := ck.Keys(ctx, srv.URL+"/slow", "a"); err == nil {
		t.Fatal("a server slower than Timeout answered")
	}
}

// A registered jwks is parsed once and then served from the cache; a document that is not a
// JWKS is refused, and a changed document is parsed anew.
func TestClientKeysRegistered(t *testing.T) {
	k := NewClientKeys(time.Now)
	doc := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`
	a, err := k.Registered(doc)
	if err != nil || len(a.Keys) != 1 || a.Keys[0].KeyID != "k1" {
		t.Fatalf("first read: %+v, %v", a, err)
	}
	if len(k.registered) != 1 {
		t.Fatalf("%d documents cached, want 1", len(k.registered))
	}
	if b, err := k.Registered(doc); err != nil || len(b.Keys) != 1 || len(k.registered) != 1 {
		t.Fatalf("second read: %+v, %v, %d cached", b, err, len(k.registered))
	}
	if _, err := k.Registered(`{"keys":`); err == nil {
		t.Fatal("a broken document was read")
	}
}
