package auth

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/keys"
	"jwtidp/idp/storetest"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
)

func TestSetAndVerifyEmail(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	if err := svc.Signup(ctx, "alice", "correct-horse-9", "Alice@Example.com"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Signup(ctx, "bob", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	alice, _ := svc.Users.GetUserByName(ctx, "alice")
	bob, _ := svc.Users.GetUserByName(ctx, "bob")
	if alice.Email != "Alice@Example.com" || alice.EmailVerified {
		t.Fatalf("after signup: %+v", alice)
	}
	owner := Reauth{Password: "correct-horse-9"}
	// A stale token's holder, who does not know the password, changes nothing.
	if _, err := svc.SetEmail(ctx, alice.ID, "mallory@example.com", Reauth{Password: "not-the-password"}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("a wrong current password: %v", err)
	}
	if _, err := svc.SetEmail(ctx, alice.ID, "mallory@example.com", Reauth{AuthTime: svc.Now().Add(-FreshSignIn - time.Second)}); !errors.Is(err, ErrNotFresh) {
		t.Fatalf("no password and an old sign-in: %v", err)
	}
	if u, _ := svc.Users.GetUser(ctx, alice.ID); u.Email != "Alice@Example.com" {
		t.Fatalf("a refused change changed the email: %q", u.Email)
	}
	if _, err := svc.SetEmail(ctx, alice.ID, "Alice@Example.com", Reauth{AuthTime: svc.Now().Add(-time.Minute)}); err != nil {
		t.Fatalf("a fresh browser sign-in stands in for the password: %v", err)
	}
	for _, tt := range []struct {
		name, user, email, code string
	}{
		{"taken in another letter case", bob.ID, "alice@EXAMPLE.com", apperr.ECONFLICT},
		{"malformed", bob.ID, "bob at example.com", apperr.EINVALID},
		{"no domain", bob.ID, "bob@", apperr.EINVALID},
		{"no such user", "nobody", "nobody@example.com", apperr.ENOTFOUND},
	} {
		if _, err := svc.SetEmail(ctx, tt.user, tt.email, owner); apperr.Code(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if _, err := svc.SetEmail(ctx, bob.ID, "ALICE@example.com", owner); !errors.Is(err, identity.ErrEmailTaken) || apperr.Message(err) != "Email is already in use" {
		t.Fatalf("taken: %v", err)
	}
	// By sub only, naming the address in any letter case; again is no error.
	for _, email := range []string{"alice@EXAMPLE.com", "Alice@Example.com"} {
		u, err := svc.VerifyEmail(ctx, alice.ID, email)
		if err != nil || !u.EmailVerified || u.ID != alice.ID || u.Email != "Alice@Example.com" {
			t.Fatalf("verify %s: %+v %v", email, u, err)
		}
	}
	for _, tt := range []struct{ user, email, code string }{
		{"ALICE", "Alice@Example.com", apperr.ENOTFOUND}, // a username is not an id
		{bob.ID, "bob@example.com", apperr.ECONFLICT},    // bob has no email
		{alice.ID, "", apperr.EINVALID},
		{"nobody", "a@example.com", apperr.ENOTFOUND},
		{"", "a@example.com", apperr.ENOTFOUND},
	} {
		if _, err := svc.VerifyEmail(ctx, tt.user, tt.email); apperr.Code(err) != tt.code {
			t.Errorf("verify %q %q: %v, want %s", tt.user, tt.email, err, tt.code)
		}
	}
	// The same address again changes nothing; another letter case is stored but stays verified;
	// a new address is unverified; "" removes it.
	if u, err := svc.SetEmail(ctx, alice.ID, "Alice@Example.com", owner); err != nil || !u.EmailVerified {
		t.Fatalf("the same email: %+v %v", u, err)
	}
	if u, err := svc.SetEmail(ctx, alice.ID, "alice@example.com", owner); err != nil || !u.EmailVerified || u.Email != "alice@example.com" {
		t.Fatalf("another letter case: %+v %v", u, err)
	}
	if u, err := svc.SetEmail(ctx, alice.ID, "alice@example.org", owner); err != nil || u.EmailVerified || u.Email != "alice@example.org" {
		t.Fatalf("a new email: %+v %v", u, err)
	}
	// The admin verifies the address they saw before the swap: refused, the new one unverified.
	if _, err := svc.VerifyEmail(ctx, alice.ID, "alice@example.com"); !errors.Is(err, identity.ErrEmailNotCurrent) {
		t.Fatalf("verifying the swapped-out address: %v, want ErrEmailNotCurrent", err)
	}
	if u, _ := svc.Users.GetUser(ctx, alice.ID); u.EmailVerified || u.Email != "alice@example.org" {
		t.Fatalf("after the refused verification: %+v", u)
	}
	if u, err := svc.SetEmail(ctx, alice.ID, "", owner); err != nil || u.EmailVerified || u.Email != "" {
		t.Fatalf("removed: %+v %v", u, err)
	}
	// Freed: bob may take alice's old address now.
	if u, err := svc.SetEmail(ctx, bob.ID, "alice@example.org", owner); err != nil || u.Email != "alice@example.org" {
		t.Fatalf("a freed email: %+v %v", u, err)
	}
}

func TestUserinfoClaimsByScope(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	svc.Signup(ctx, "carol", "correct-horse-9", "carol@example.com")
	svc.Signup(ctx, "dave", "correct-horse-9", "")
	carol, _ := svc.Users.GetUserByName(ctx, "carol")
	dave, _ := svc.Users.GetUserByName(ctx, "dave")
	for _, tt := range []struct {
		name, sub, client, scope string
		want                     map[string]any
		err                      error
	}{
		{"first party", carol.ID, "idp", "workitems:read", map[string]any{"sub": carol.ID, "preferred_username": "carol", "email": "carol@example.com", "email_verified": false}, nil},
		{"first party, no email", dave.ID, "idp", "", map[string]any{"sub": dave.ID, "preferred_username": "dave"}, nil},
		{"openid only", carol.ID, "grafana", "openid", map[string]any{"sub": carol.ID}, nil},
		{"profile", carol.ID, "grafana", "openid profile", map[string]any{"sub": carol.ID, "preferred_username": "carol"}, nil},
		{"email", carol.ID, "grafana", "email openid", map[string]any{"sub": carol.ID, "email": "carol@example.com", "email_verified": false}, nil},
		{"email, none set", dave.ID, "grafana", "openid email profile", map[string]any{"sub": dave.ID, "preferred_username": "dave"}, nil},
		{"no openid", carol.ID, "grafana", "profile email", nil, ErrInsufficientScope},
		{"a client's own token", "reporter", "reporter", "workitems:read", nil, errNoUser},
		{"a deleted user", "gone", "idp", "", nil, errNoUser},
	} {
		got, err := svc.Userinfo(ctx, tt.sub, tt.client, tt.scope)
		if !errors.Is(err, tt.err) || (tt.err == nil && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("%s: %v %v, want %v %v", tt.name, got, err, tt.want, tt.err)
		}
	}
	if _, err := svc.Userinfo(ctx, "gone", "idp", ""); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("a deleted user: %v, want ENOTFOUND", err)
	}
	svc.VerifyEmail(ctx, carol.ID, carol.Email)
	if got, _ := svc.Userinfo(ctx, carol.ID, "grafana", "openid email"); got["email_verified"] != true {
		t.Fatalf("after verification: %v", got)
	}
}

// Introspection answers for every kind of token, on the IdP's clock, and only to an
// authenticated confidential client: about the tokens issued to it and the access tokens whose
// aud names it (it is their resource server). Here "rs" is both a client with tokens of its own
// and, through the first-party audience, the resource server of the IdP's own access tokens.
func TestIntrospect(t *testing.T) {
	svc, db, clk := newService(t)
	ctx := context.Background()
	svc.Clients = storetest.NewMemClients()
	svc.FirstParty.Audience = []string{"a", "rs"}
	km := svc.Issuer.Keys.(*keys.Manager)
	verify := jwtauth.NewVerifier(jwtauth.Config{Issuer: "http://idp", Leeway: 30 * time.Second, Now: clk.now,
		Keys: jwtauth.StaticKeys(km.PublicKey)}).Verify
	_, rsSecret, err := svc.RegisterClient(ctx, identity.Client{ID: "rs", GrantTypes: []string{"client_credentials", "refresh_token"}, Scopes: []string{"workitems:read"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	rs := ClientAuth{ID: "rs", Secret: rsSecret}
	svc.RegisterClient(ctx, identity.Client{ID: "spa", Public: true, GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://spa.example/cb"}}, "")
	svc.Signup(ctx, "erin", "correct-horse-9", "")
	erin, _ := svc.Users.GetUserByName(ctx, "erin")
	login := func() Tokens {
		tok, _, err := svc.Login(ctx, creds("erin", "correct-horse-9"))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// A family of rs's: its refresh tokens are rs's to introspect.
	viaRS := func() Tokens {
		tok, err := svc.Issue(ctx, Grant{User: erin, Client: Client{ID: "rs", Scope: "s", Audience: []string{"a"}}, Refresh: true})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	introspect := func(tok, hint string) Introspection {
		t.Helper()
		in, err := svc.Introspect(ctx, "rs", rsSecret, tok, hint, verify)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	inactive := func(name string, in Introspection) {
		t.Helper()
		if !reflect.DeepEqual(in, Introspection{}) {
			t.Errorf("%s: %+v, want inactive and nothing else", name, in)
		}
	}
	now := clk.now().Truncate(time.Second)
	first := login()
	in := introspect(first.AccessToken, "")
	want := Introspection{Active: true, TokenType: "access_token", Scope: "s", ClientID: "idp", Username: "erin", Subject: erin.ID,
		Audience: []string{"a", "rs"}, Issuer: "http://idp", IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute)}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("an access token for rs:\n%+v, want\n%+v", in, want)
	}
	inactive("the IdP's own refresh token (not issued to rs)", introspect(first.RefreshToken, ""))
	mine := viaRS()
	// rs was not granted profile: introspection does not name the user to it (as its tokens do not).
	for _, hint := range []string{"", "refresh_token", "access_token", "nonsense"} {
		in := introspect(mine.RefreshToken, hint)
		want := Introspection{Active: true, TokenType: "refresh_token", Scope: "s", ClientID: "rs", Subject: erin.ID,
			Audience: []string{"a"}, Issuer: "http://idp", ExpiresAt: clk.now().Add(24 * time.Hour)}
		if !reflect.DeepEqual(in, want) {
			t.Fatalf("refresh token, hint %q:\n%+v, want\n%+v", hint, in, want)
		}
		if in := introspect(first.AccessToken, hint); in.TokenType != "access_token" {
			t.Fatalf("access token, hint %q: %+v", hint, in)
		}
	}
	if in := introspect(mine.AccessToken, ""); !in.Active || in.ClientID != "rs" || in.Username != "" {
		t.Fatalf("a user's token issued to rs (aud without rs): %+v", in)
	}
	cc, err := svc.ClientCredentials(ctx, "rs", rsSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	if in := introspect(cc.AccessToken, ""); !in.Active || in.Subject != "rs" || in.ClientID != "rs" || in.Username != "" {
		t.Fatalf("a client's own token: %+v", in)
	}
	// Introspecting changes nothing: the refresh token is still live.
	next, err := svc.RefreshGrant(ctx, RefreshRequest{Token: mine.RefreshToken, Client: rs})
	if err != nil {
		t.Fatalf("refresh after introspection: %v", err)
	}
	inactive("a spent refresh token", introspect(mine.RefreshToken, ""))
	if in := introspect(next.RefreshToken, ""); !in.Active {
		t.Fatalf("the family's next token: %+v", in)
	}
	revoked := viaRS()
	if err := svc.RevokeAs(ctx, rs, revoked.RefreshToken); err != nil {
		t.Fatal(err)
	}
	inactive("a revoked family", introspect(revoked.RefreshToken, "refresh_token"))
	inactive("unknown", introspect("no-such-token-0123456789abcdefghijklmnopqrstuv", ""))
	inactive("garbage JWT", introspect("x.y.z", "access_token"))
	inactive("empty", introspect("", ""))
	// The access token ends at exp on the IdP's clock, whatever the verifier's leeway.
	clk.add(15 * time.Minute)
	inactive("an expired access token", introspect(first.AccessToken, ""))
	if in := introspect(next.RefreshToken, ""); !in.Active {
		t.Fatalf("the family outlives its access tokens: %+v", in)
	}
	clk.add(24 * time.Hour)
	inactive("an expired family", introspect(next.RefreshToken, ""))
	// A family of older credentials (a password change revokes it in the same transaction: this
	// is the belt to those braces).
	live := viaRS()
	svc.Families = staleOwner{db}
	inactive("a family of older credentials", introspect(live.RefreshToken, ""))
	svc.Families = db

	// Another client's tokens are not rs's business, active or not (finding 6: any client could
	// introspect any token).
	_, otherSecret, err := svc.RegisterClient(ctx, identity.Client{ID: "other", GrantTypes: []string{"client_credentials", "refresh_token"}, Scopes: []string{"workitems:read"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	svc.FirstParty.Audience = []string{"a"} // a client's own tokens are for the configured audience
	othersCC, err := svc.ClientCredentials(ctx, "other", otherSecret, "")
	svc.FirstParty.Audience = []string{"a", "rs"}
	if err != nil {
		t.Fatal(err)
	}
	inactive("another client's own token", introspect(othersCC.AccessToken, ""))
	others, err := svc.Issue(ctx, Grant{User: erin, Client: Client{ID: "other", Scope: "s", Audience: []string{"a"}}, Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	inactive("another client's access token for another audience", introspect(others.AccessToken, ""))
	inactive("another client's refresh token", introspect(others.RefreshToken, ""))
	forRS, err := svc.Issue(ctx, Grant{User: erin, Client: Client{ID: "other", Scope: "s", Audience: []string{"rs"}}, Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if in := introspect(forRS.AccessToken, ""); !in.Active || in.ClientID != "other" {
		t.Fatalf("another client's access token for rs (its resource server): %+v", in)
	}
	inactive("another client's refresh token, even of an access token for rs", introspect(forRS.RefreshToken, ""))
	if in, err := svc.Introspect(ctx, "other", otherSecret, others.RefreshToken, "", verify); err != nil || !in.Active {
		t.Fatalf("the other client's own refresh token, to it: %+v %v", in, err)
	}

	// A disabled user's tokens are inactive (finding 6), access and refresh alike.
	disabledLive, disabledAccess := viaRS(), login().AccessToken
	if _, err := svc.DisableUser(ctx, erin.ID); err != nil {
		t.Fatal(err)
	}
	inactive("a disabled user's access token", introspect(disabledAccess, ""))
	inactive("a disabled user's access token issued to rs", introspect(disabledLive.AccessToken, ""))
	inactive("a disabled user's refresh token", introspect(disabledLive.RefreshToken, ""))
	if _, err := svc.EnableUser(ctx, erin.ID); err != nil {
		t.Fatal(err)
	}
	if in := introspect(disabledAccess, ""); !in.Active {
		t.Fatalf("an enabled user's unexpired access token: %+v", in)
	}
	erin, _ = svc.Users.GetUser(ctx, erin.ID) // the disable moved the credential epoch

	// A deleted user's tokens, a removed client's.
	live = viaRS()
	liveAccess := login().AccessToken
	if err := db.DeleteUser(ctx, erin.ID); err != nil {
		t.Fatal(err)
	}
	inactive("a deleted user's access token", introspect(liveAccess, ""))
	inactive("a deleted user's refresh token", introspect(live.RefreshToken, ""))
	inactive("a deleted user's token through a registered client", introspect(live.AccessToken, ""))
	cc, _ = svc.ClientCredentials(ctx, "rs", rsSecret, "")
	_, goneSecret, _ := svc.RegisterClient(ctx, identity.Client{ID: "gone2", GrantTypes: []string{"client_credentials"}, Scopes: []string{"workitems:read"}}, "")
	gone, err := svc.ClientCredentials(ctx, "gone2", goneSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	svc.DeleteClient(ctx, "gone2")
	inactive("a removed client's token", introspect(gone.AccessToken, ""))

	// Only an authenticated confidential client may ask.
	for _, tt := range []struct{ name, id, secret string }{
		{"a public client", "spa", ""},
		{"a wrong secret", "rs", rsSecret + "x"},
		{"no secret", "rs", ""},
		{"an unknown client", "nobody", rsSecret},
	} {
		if _, err := svc.Introspect(ctx, tt.id, tt.secret, cc.AccessToken, "", verify); !errors.Is(err, ErrInvalidClient) {
			t.Errorf("%s: %v, want ErrInvalidClient", tt.name, err)
		}
	}
}

// staleOwner shows every family's user one credential change later than stored.
type staleOwner struct{ Families }

func (s staleOwner) UpdateFamilyByToken(ctx context.Context, hash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, error) {
	return s.Families.UpdateFamilyByToken(ctx, hash, func(f identity.Family, u identity.User) (identity.Family, error) {
		u.Epoch++
		return step(f, u)
	})
}
