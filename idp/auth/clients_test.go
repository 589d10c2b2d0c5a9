package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"jwtidp/idp/identity"
	"jwtidp/idp/storetest"
	"jwtidp/shared/apperr"
)

func TestClientSecretHashing(t *testing.T) {
	c := identity.Client{ID: "svc", SecretHash: HashClientSecret("s3cret-of-the-service-0123456789abc")}
	if !VerifyClientSecret(c, "s3cret-of-the-service-0123456789abc") {
		t.Fatal("the right secret does not verify")
	}
	for _, wrong := range []string{"", "s3cret-of-the-service-0123456789ab", "S3cret-of-the-service-0123456789abc"} {
		if VerifyClientSecret(c, wrong) {
			t.Fatalf("%q verifies", wrong)
		}
	}
	if VerifyClientSecret(identity.Client{ID: "spa", Public: true}, "") || VerifyClientSecret(identity.Client{ID: "x"}, "") {
		t.Fatal("a client without a hash verifies")
	}
	if strings.Contains(c.SecretHash, "s3cret") || len(c.SecretHash) != 43 {
		t.Fatalf("hash %q is not a base64url SHA-256", c.SecretHash)
	}
}

func TestClientCredentials(t *testing.T) {
	svc, _, _ := newService(t)
	svc.Clients = storetest.NewMemClients()
	ctx := context.Background()
	reg := func(c identity.Client) string {
		t.Helper()
		_, secret, err := svc.RegisterClient(ctx, c, "")
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	secret := reg(identity.Client{ID: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"workitems:read", "workitems:write"}})
	if len(secret) != 43 {
		t.Fatalf("generated secret %q is not 32 bytes base64url", secret)
	}
	if c, _ := svc.Clients.GetClient(ctx, "svc"); c.SecretHash != HashClientSecret(secret) || c.CreatedAt.IsZero() {
		t.Fatalf("stored %+v", c)
	}
	other := reg(identity.Client{ID: "web", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://web.example/cb"}})
	reg(identity.Client{ID: "spa", Public: true, GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://spa.example/cb"}})

	tok, err := svc.ClientCredentials(ctx, "svc", secret, "")
	if err != nil {
		t.Fatal(err)
	}
	c := claimsOf(t, tok.AccessToken)
	if c["sub"] != "svc" || c["client_id"] != "svc" || c["scope"] != "workitems:read workitems:write" || tok.Scope != c["scope"] || tok.RefreshToken != "" {
		t.Fatalf("claims %v, tokens %+v", c, tok)
	}
	if _, ok := c["preferred_username"]; ok {
		t.Fatalf("a client's token names a user: %v", c)
	}
	if aud, _ := c.GetAudience(); len(aud) != 1 || aud[0] != "a" {
		t.Fatalf("aud %v, want the configured audience", aud)
	}
	if tok, err := svc.ClientCredentials(ctx, "svc", secret, "workitems:read workitems:read"); err != nil || tok.Scope != "workitems:read" {
		t.Fatalf("narrowed: %+v %v", tok, err)
	}
	for _, tt := range []struct {
		name, id, secret, scope string
		want                    error
	}{
		{"unknown client", "nobody", secret, "", ErrInvalidClient},
		{"wrong secret", "svc", other, "", ErrInvalidClient},
		{"no secret", "svc", "", "", ErrInvalidClient},
		{"public client", "spa", "", "", ErrUnauthorizedClient},
		{"client without the grant", "web", other, "", ErrUnauthorizedClient},
		{"scope not allowed", "svc", secret, "workitems:read idp:admin", ErrInvalidScope},
		{"wrong secret and a bad scope", "svc", other, "idp:admin", ErrInvalidClient},
	} {
		if _, err := svc.ClientCredentials(ctx, tt.id, tt.secret, tt.scope); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestRegisterAndDeclareClients(t *testing.T) {
	svc, _, _ := newService(t)
	svc.Clients = storetest.NewMemClients()
	ctx := context.Background()
	cc := identity.Client{ID: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"a"}}
	const given = "a-secret-given-in-the-file-0123456789"
	if _, _, err := svc.RegisterClient(ctx, identity.Client{ID: "spa", Public: true, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{"https://spa.example/cb"}}, "x"); apperr.Code(err) != apperr.EINVALID {
		t.Fatalf("a public client with a secret: %v", err)
	}
	if _, err := svc.DeclareClient(ctx, cc, ""); apperr.Code(err) != apperr.EINVALID {
		t.Fatalf("a declared confidential client without a secret: %v", err)
	}
	if _, err := svc.DeclareClient(ctx, cc, "short"); apperr.Code(err) != apperr.EINVALID {
		t.Fatalf("a declared client with a short secret: %v", err)
	}
	created, err := svc.DeclareClient(ctx, cc, given)
	if err != nil || !created {
		t.Fatalf("declare: %v %v", created, err)
	}
	first, _ := svc.Clients.GetClient(ctx, "svc")
	cc.Scopes = []string{"a", "b"}
	if created, err := svc.DeclareClient(ctx, cc, given+"-rotated"); err != nil || created {
		t.Fatalf("declare again: %v %v", created, err)
	}
	got, _ := svc.Clients.GetClient(ctx, "svc")
	if !slices.Equal(got.Scopes, []string{"a", "b"}) || !got.CreatedAt.Equal(first.CreatedAt) || !VerifyClientSecret(got, given+"-rotated") || VerifyClientSecret(got, given) {
		t.Fatalf("after the update: %+v", got)
	}
	if _, _, err := svc.RegisterClient(ctx, cc, ""); apperr.Code(err) != apperr.ECONFLICT {
		t.Fatalf("registering a taken id: %v", err)
	}
	// A client may not take a user's id: its tokens would carry that user's sub.
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	u, _ := svc.Users.GetUserByName(ctx, "alice")
	cc.ID = u.ID
	if _, _, err := svc.RegisterClient(ctx, cc, ""); apperr.Code(err) != apperr.EINVALID {
		t.Fatalf("registering a user's id: %v", err)
	}
	if _, err := svc.DeclareClient(ctx, cc, given); apperr.Code(err) != apperr.EINVALID {
		t.Fatalf("declaring a user's id: %v", err)
	}
}

// racingClients is a store where another replica creates the client between this one's
// UpdateClient (not found) and its CreateClient.
type racingClients struct {
	*storetest.MemClients
	raced bool
}

func (s *racingClients) UpdateClient(ctx context.Context, id string, fn func(identity.Client) (identity.Client, error)) (identity.Client, error) {
	if !s.raced {
		s.raced = true
		other := identity.Client{ID: id, SecretHash: HashClientSecret("the other replica's idea, 0123456789abcdef"), GrantTypes: []string{"client_credentials"}}
		s.MemClients.CreateClient(ctx, other)
		return identity.Client{}, apperr.Errorf(apperr.ENOTFOUND, "no client")
	}
	return s.MemClients.UpdateClient(ctx, id, fn)
}

// A declaration that loses the race to create the client updates it instead.
func TestDeclareClientRacingAnotherReplica(t *testing.T) {
	svc, _, _ := newService(t)
	store := &racingClients{MemClients: storetest.NewMemClients()}
	svc.Clients = store
	const secret = "a-secret-given-in-the-file-0123456789"
	c := identity.Client{ID: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"a"}}
	if _, err := svc.DeclareClient(context.Background(), c, secret); err != nil {
		t.Fatal(err)
	}
	got, _ := store.GetClient(context.Background(), "svc")
	if !VerifyClientSecret(got, secret) || !slices.Equal(got.Scopes, []string{"a"}) {
		t.Fatalf("stored %+v", got)
	}
}
