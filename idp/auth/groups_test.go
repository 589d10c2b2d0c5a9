package auth

import (
	"context"
	"reflect"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
)

// groupsService is newService with groups kept, workitems:admin limited to ops, the first-party
// client granted it, and a relying party that may ask for it; alice is in ops (and dev), bob in
// no group.
func groupsService(t *testing.T) (*Service, *identity.Client, map[string]identity.User) {
	t.Helper()
	svc, db, _ := newService(t)
	ctx := context.Background()
	svc.Groups, svc.Clients, svc.Codes, svc.Consents, svc.Sessions, svc.IDTokenTTL = db, db, db, db, db, time.Hour
	svc.Scopes = func() map[string]ScopeRule {
		return map[string]ScopeRule{"workitems:admin": {Groups: []string{"ops", "sre"}}}
	}
	svc.FirstParty.Scope = "workitems:read workitems:admin"
	cl := &identity.Client{ID: "web", SecretHash: HashClientSecret(rpSecret), RedirectURIs: []string{"https://rp.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, CreatedAt: time.Now(),
		Scopes: []string{"openid", "profile", "groups", "offline_access", "workitems:admin"}}
	users := map[string]identity.User{}
	for _, name := range []string{"alice", "bob"} {
		if err := svc.Signup(ctx, name, "correct-horse-9", ""); err != nil {
			t.Fatal(err)
		}
		users[name], _ = db.GetUserByName(ctx, name)
	}
	for _, step := range []error{db.CreateClient(ctx, *cl), db.CreateGroup(ctx, identity.Group{Name: "ops", CreatedAt: time.Now()}),
		db.CreateGroup(ctx, identity.Group{Name: "dev", CreatedAt: time.Now()}),
		db.AddMember(ctx, "ops", users["alice"].ID), db.AddMember(ctx, "dev", users["alice"].ID)} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return svc, cl, users
}

const rpSecret = "s3cret-of-the-web-app-0123456789abcdef"

// codeFlow is the relying party's sign-in of u, asking for scopes: the tokens of the code.
func codeFlow(t *testing.T, svc *Service, cl *identity.Client, u identity.User, scopes ...string) Tokens {
	t.Helper()
	ctx := context.Background()
	code, err := svc.IssueCode(ctx, CodeRequest{Client: *cl, Request: identity.AuthRequest{RedirectURI: "https://rp.example/cb",
		Scopes: scopes}, Session: Resolved{UserID: u.ID, Epoch: u.Epoch, AuthTime: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := svc.ExchangeCode(ctx, Exchange{Client: ClientAuth{ID: cl.ID, Secret: rpSecret}, Code: code, RedirectURI: "https://rp.example/cb"})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func wantScope(t *testing.T, what string, tk Tokens, want string) {
	t.Helper()
	if tk.Scope != want || claimsOf(t, tk.AccessToken)["scope"] != want {
		t.Fatalf("%s: scope %q, access token's %q; want %q", what, tk.Scope, claimsOf(t, tk.AccessToken)["scope"], want)
	}
}

// A scope limited to groups is granted to a member and left out for anyone else — at /auth
// (the first-party client's scopes), at the code exchange (the code's scopes) and at every
// refresh, by the memberships read then: removing a member stops their next refresh carrying it.
func TestScopeLimitedToGroups(t *testing.T) {
	svc, cl, users := groupsService(t)
	ctx := context.Background()
	alice, bob := users["alice"], users["bob"]

	// /auth: the first-party client's tokens carry the user's groups too.
	atAuth, _, err := svc.Login(ctx, creds("alice", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	wantScope(t, "alice at /auth", atAuth, "workitems:read workitems:admin")
	if g := claimsOf(t, atAuth.AccessToken)["groups"]; !reflect.DeepEqual(g, []any{"dev", "ops"}) {
		t.Fatalf("alice's first-party access token: groups %v", g)
	}
	bobAuth, _, err := svc.Login(ctx, creds("bob", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	wantScope(t, "bob at /auth", bobAuth, "workitems:read")
	if g, ok := claimsOf(t, bobAuth.AccessToken)["groups"]; ok {
		t.Fatalf("bob's first-party access token: groups %v, want none", g)
	}

	// The code flow: the code asks for it, only the member gets it; a relying party's access
	// token carries no groups, its ID token does with scope groups.
	rpAlice := codeFlow(t, svc, cl, alice, "openid", "groups", "offline_access", "workitems:admin")
	wantScope(t, "alice at the code exchange", rpAlice, "openid groups offline_access workitems:admin")
	if g, ok := claimsOf(t, rpAlice.AccessToken)["groups"]; ok {
		t.Fatalf("a relying party's access token: groups %v, want none", g)
	}
	if g := claimsOf(t, rpAlice.IDToken)["groups"]; !reflect.DeepEqual(g, []any{"dev", "ops"}) {
		t.Fatalf("alice's ID token with scope groups: groups %v", g)
	}
	rpBob := codeFlow(t, svc, cl, bob, "openid", "groups", "offline_access", "workitems:admin")
	wantScope(t, "bob at the code exchange", rpBob, "openid groups offline_access")
	if g, ok := claimsOf(t, rpBob.IDToken)["groups"]; ok {
		t.Fatalf("bob's ID token: groups %v, want none (he has none)", g)
	}
	noGroups := codeFlow(t, svc, cl, alice, "openid", "profile")
	if g, ok := claimsOf(t, noGroups.IDToken)["groups"]; ok {
		t.Fatalf("an ID token without scope groups: groups %v", g)
	}

	// Refresh: a member refreshes with it; removed from the group, the next refresh has it no
	// more, and the family survives.
	again, err := svc.Refresh(ctx, atAuth.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	wantScope(t, "alice's refresh while a member", again, "workitems:read workitems:admin")
	if _, err := svc.Admin.RemoveMember(ctx, "ops", alice.ID); err != nil {
		t.Fatal(err)
	}
	after, err := svc.Refresh(ctx, again.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	wantScope(t, "alice's refresh after her removal", after, "workitems:read")
	if g := claimsOf(t, after.AccessToken)["groups"]; !reflect.DeepEqual(g, []any{"dev"}) {
		t.Fatalf("alice's groups after her removal: %v", g)
	}
	rpAfter, err := svc.RefreshGrant(ctx, RefreshRequest{Token: rpAlice.RefreshToken, Client: ClientAuth{ID: cl.ID, Secret: rpSecret}})
	if err != nil {
		t.Fatal(err)
	}
	wantScope(t, "the relying party's refresh after her removal", rpAfter, "openid groups offline_access")

	// Without rules, nothing is limited.
	svc.Scopes = nil
	open, _, err := svc.Login(ctx, creds("bob", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	wantScope(t, "bob without rules", open, "workitems:read workitems:admin")
}

// /userinfo answers groups with scope groups only, an empty list for a user in none.
func TestUserinfoGroups(t *testing.T) {
	svc, _, users := groupsService(t)
	ctx := context.Background()
	for _, tt := range []struct {
		user, scope string
		want        any
	}{
		{"alice", "openid groups", []string{"dev", "ops"}},
		{"bob", "openid groups", []string{}},
		{"alice", "openid profile", nil},
	} {
		claims, err := svc.Userinfo(ctx, users[tt.user].ID, "web", tt.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := claims["groups"]; tt.want == nil && ok || tt.want != nil && !reflect.DeepEqual(got, tt.want) {
			t.Fatalf("%s with %q: groups %#v, want %#v", tt.user, tt.scope, got, tt.want)
		}
	}
}

// The admin's group actions are audited, with the member as the event's user.
func TestAdminGroupsAudited(t *testing.T) {
	svc, _, users := groupsService(t)
	ctx := context.Background()
	svc.Audit = svc.Groups.(identity.AuditStore)
	if _, err := svc.Admin.CreateGroup(ctx, "sre"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Admin.AddMember(ctx, "sre", users["bob"].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Admin.RemoveMember(ctx, "sre", users["bob"].ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.Admin.DeleteGroup(ctx, "sre"); err != nil {
		t.Fatal(err)
	}
	events, err := svc.AuditEvents(ctx, identity.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Type+" "+e.UserID+" "+e.Detail)
	}
	want := []string{
		"group_deleted  group sre and its memberships",
		"group_member_removed " + users["bob"].ID + " removed from group sre",
		"group_member_added " + users["bob"].ID + " added to group sre",
		"group_created  group sre",
	}
	if !reflect.DeepEqual(got[:4], want) {
		t.Fatalf("audit trail:\n got %q\nwant %q", got[:4], want)
	}
}

// A browser session resolves to its user's groups and verified email (what /verify answers),
// cached as the session is: a membership change is seen at once after ForgetUser here, and
// within the cache period without it; deleting a group, after ForgetGroup.
func TestSessionResolvesGroupsAndVerifiedEmail(t *testing.T) {
	svc, _, users := groupsService(t)
	ctx := context.Background()
	db := svc.Groups.(*boltdb.DB)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sessions := newSessions(svc, db, c)
	sessions.CacheTTL, sessions.Groups = 5*time.Second, db
	alice := users["alice"]
	if _, err := db.UpdateUser(ctx, alice.ID, func(u identity.User) (identity.User, error) { return u.SetEmail("alice@example.com") }); err != nil {
		t.Fatal(err)
	}
	secret, _, err := sessions.Start(ctx, Authentication{User: alice, AMR: []string{"pwd"}, AuthTime: c.now()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	want := func(what, email string, groups ...string) {
		t.Helper()
		r, err := sessions.Resolve(ctx, secret)
		if err != nil || r.Email != email || !reflect.DeepEqual(r.Groups, append([]string{}, groups...)) {
			t.Fatalf("%s: %+v, %v; want email %q, groups %v", what, r, err, email, groups)
		}
	}
	want("an unverified email", "", "dev", "ops")
	if _, err := db.UpdateUser(ctx, alice.ID, func(u identity.User) (identity.User, error) { return u.VerifyEmail() }); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveMember(ctx, "dev", alice.ID); err != nil {
		t.Fatal(err)
	}
	want("within the cache period", "", "dev", "ops")
	sessions.ForgetUser(alice.ID)
	want("after ForgetUser", "alice@example.com", "ops")
	if err := db.DeleteGroup(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	sessions.ForgetGroup("ops")
	want("after ForgetGroup", "alice@example.com")
}
