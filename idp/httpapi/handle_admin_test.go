package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/keys"
)

// memKeys is a KeyStore whose updates are serialised like a transaction.
type memKeys struct {
	mu   sync.Mutex
	keys []identity.SigningKey
}

func (s *memKeys) Keys(context.Context) ([]identity.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys), nil
}

func (s *memKeys) UpdateKeys(_ context.Context, update func([]identity.SigningKey) ([]identity.SigningKey, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := update(slices.Clone(s.keys))
	if err != nil {
		return err
	}
	s.keys = next
	return nil
}

func TestHandleKeysRevoke(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	m, err := keys.New(context.Background(), &memKeys{}, keys.Options{Bits: 2048, Random: rand.Reader, Logger: logger,
		Now:    func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) },
		Policy: keys.Policy{Period: 7 * 24 * time.Hour, TokenTTL: 15 * time.Minute, Leeway: 11 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	// The route's pattern; the admin check in front of it is the route's (addRoutes).
	mux.Handle("POST /admin/keys/{kid}/revoke", handleKeysRevoke(logger, m))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	revoke := func(kid string) (int, []KeyInfo) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/keys/"+kid+"/revoke", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct{ Result json.RawMessage }
		json.NewDecoder(resp.Body).Decode(&env)
		var list []KeyInfo
		json.Unmarshal(env.Result, &list)
		return resp.StatusCode, list
	}

	cur := m.CurrentKID()
	status, list := revoke(cur)
	if status != http.StatusOK {
		t.Fatalf("revoking the current key answered %d, want 200", status)
	}
	// The answer is the key list after the revocation: the key is gone, another one signs.
	if len(list) != 2 || slices.ContainsFunc(list, func(k KeyInfo) bool { return k.KID == cur }) || list[0].State != string(identity.KeyCurrent) {
		t.Fatalf("key list after revoking %s: %+v", cur, list)
	}
	if kid := m.CurrentKID(); kid == cur {
		t.Fatal("still signing with the revoked key")
	}
	if status, _ := revoke(cur); status != http.StatusNotFound {
		t.Fatalf("revoking an unknown (already revoked) kid answered %d, want 404", status)
	}
}
