package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// client is a valid confidential client for the authorization code and refresh grants.
func client(id string) identity.Client {
	return identity.Client{
		ID: id, Name: "Client " + id, SecretHash: "sh-" + id,
		RedirectURIs: []string{"https://" + id + ".example/callback"},
		GrantTypes:   []string{identity.GrantAuthorizationCode, identity.GrantRefreshToken},
		Scopes:       []string{"openid", "profile"}, CreatedAt: t0,
	}
}

func getClient(t *testing.T, s Store, id string) identity.Client {
	t.Helper()
	c, err := s.GetClient(ctx, id)
	check(t, err)
	return c
}

func listClients(t *testing.T, s Store) []identity.Client {
	t.Helper()
	l, err := s.ListClients(ctx)
	check(t, err)
	if l == nil {
		t.Fatal("ListClients = nil, want a list")
	}
	return l
}

func testClientRoundTrip(t *testing.T, s Store) {
	conf := identity.Client{
		ID: "grafana", Name: "Grafana — dashboards", SecretHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		RedirectURIs:           []string{"https://grafana.example/login/generic_oauth", "http://127.0.0.1:3000/login/generic_oauth"},
		PostLogoutRedirectURIs: []string{"https://grafana.example/logout"},
		GrantTypes:             []string{identity.GrantAuthorizationCode, identity.GrantRefreshToken, identity.GrantClientCredentials},
		Scopes:                 []string{"openid", "profile", "email", "offline_access"},
		FirstParty:             true, ForwardAuth: true, CreatedAt: t0.In(zone),
	}
	// A public client whose lists are nil and empty: each reads back as it was stored.
	pub := identity.Client{
		ID: "spa.app_1", Public: true, RedirectURIs: []string{"http://localhost:8080/cb"},
		PostLogoutRedirectURIs: nil, GrantTypes: []string{identity.GrantAuthorizationCode}, Scopes: []string{},
		CreatedAt: t0.Add(time.Microsecond),
	}
	// A service: no redirect URIs at all, an empty list of post-logout URIs, no scopes.
	svc := identity.Client{
		ID: "billing", Name: "Billing", SecretHash: "sh", RedirectURIs: []string{}, PostLogoutRedirectURIs: []string{},
		GrantTypes: []string{identity.GrantClientCredentials}, Scopes: nil, CreatedAt: t0.Add(-time.Hour).In(zone),
	}
	// An agent's registration: a key instead of a secret, back-channel logout, token exchange
	// and the device grant, registered through RFC 7591.
	agent := identity.Client{
		ID: "agent", SecretHash: "", TokenEndpointAuth: identity.AuthPrivateKeyJWT,
		JWKS: `{"keys":[{"kty":"EC","crv":"P-256","x":"x","y":"y","kid":"k1"}]}`, RedirectURIs: []string{},
		GrantTypes:           []string{identity.GrantDeviceCode, identity.GrantTokenExchange, identity.GrantRefreshToken},
		BackchannelLogoutURI: "https://agent.example/logout", BackchannelLogoutSessionRequired: true,
		ExchangeAudiences: []string{"workitems", "billing"}, RegisteredBy: "registration:open", CreatedAt: t0,
		RegistrationAccessHash: "rat-hash",
	}
	create(t, s.CreateClient, conf, pub, svc, agent)
	equal(t, "GetClient of a private_key_jwt client", getClient(t, s, "agent"), agent)
	wantConf := conf
	wantConf.RedirectURIs = slices.Clone(conf.RedirectURIs)
	wantConf.PostLogoutRedirectURIs = slices.Clone(conf.PostLogoutRedirectURIs)
	wantConf.GrantTypes, wantConf.Scopes = slices.Clone(conf.GrantTypes), slices.Clone(conf.Scopes)
	wantConf.CreatedAt = t0
	wantSvc := svc
	wantSvc.CreatedAt = t0.Add(-time.Hour)

	equal(t, "GetClient of a confidential client", getClient(t, s, "grafana"), wantConf)
	equal(t, "GetClient of a public client with a nil and an empty list", getClient(t, s, "spa.app_1"), pub)
	equal(t, "GetClient of a service with empty and nil lists", getClient(t, s, "billing"), wantSvc)
	equal(t, "ListClients", listClients(t, s), []identity.Client{agent, wantSvc, wantConf, pub})

	// The lists are the store's own: changing what was given or returned changes nothing.
	conf.RedirectURIs[0], conf.PostLogoutRedirectURIs[0], conf.GrantTypes[0], conf.Scopes[0] = "evil", "evil", "evil", "evil"
	got := getClient(t, s, "grafana")
	got.RedirectURIs[0], got.PostLogoutRedirectURIs[0], got.GrantTypes[0], got.Scopes[0] = "evil", "evil", "evil", "evil"
	listClients(t, s)[2].Scopes[0] = "evil"
	equal(t, "GetClient after changing slices outside the store", getClient(t, s, "grafana"), wantConf)

	// What UpdateClient returns and gives its updater is the stored client, in the same form.
	var seen identity.Client
	updated, err := s.UpdateClient(ctx, "spa.app_1", func(c identity.Client) (identity.Client, error) { seen = c; return c, nil })
	check(t, err)
	equal(t, "what UpdateClient's updater was given", seen, pub)
	equal(t, "what UpdateClient returned", updated, pub)

	_, err = s.GetClient(ctx, "unknown")
	wantCode(t, "GetClient of no client", err, apperr.ENOTFOUND)
	_, err = s.GetClient(ctx, "")
	wantCode(t, "GetClient of the empty id", err, apperr.ENOTFOUND)
	_, err = s.GetClient(ctx, "bad\x00id\xff")
	wantCode(t, "GetClient of an id no client can have", err, apperr.ENOTFOUND)
}

func testCreateClientRefusals(t *testing.T, s Store) {
	c1 := client("c1")
	create(t, s.CreateClient, c1)
	taken := client("c1")
	taken.Name, taken.SecretHash = "Another", "sh-other"
	withSecret := client("pub")
	withSecret.Public = true
	noSecret := client("conf")
	noSecret.SecretHash = ""
	noGrant := client("nogrant")
	noGrant.GrantTypes = nil
	badURI := client("baduri")
	badURI.RedirectURIs = []string{"http://grafana.example/cb"}
	pubCC := client("pubcc")
	pubCC.Public, pubCC.SecretHash, pubCC.GrantTypes = true, "", []string{identity.GrantClientCredentials}
	badScope := client("badscope")
	badScope.Scopes = []string{"open id"}
	keyed := func(id string, change func(*identity.Client)) identity.Client {
		c := client(id)
		c.SecretHash, c.TokenEndpointAuth, c.JWKSURI = "", identity.AuthPrivateKeyJWT, "https://keys.example/jwks"
		change(&c)
		return c
	}
	for _, tt := range []struct {
		name string
		c    identity.Client
		code string
	}{
		{"id taken", taken, apperr.ECONFLICT},
		{"the IdP's own id", client(identity.FirstPartyClientID), apperr.EINVALID},
		{"no id", client(""), apperr.EINVALID},
		{"an id with a space", client("a b"), apperr.EINVALID},
		{"a public client with a secret", withSecret, apperr.EINVALID},
		{"a confidential client without a secret", noSecret, apperr.EINVALID},
		{"no grant type", noGrant, apperr.EINVALID},
		{"an http redirect URI to another host", badURI, apperr.EINVALID},
		{"a public client with client credentials", pubCC, apperr.EINVALID},
		{"a scope with a space", badScope, apperr.EINVALID},
		{"private_key_jwt with a secret", keyed("k1", func(c *identity.Client) { c.SecretHash = "sh" }), apperr.EINVALID},
		{"private_key_jwt without keys", keyed("k2", func(c *identity.Client) { c.JWKSURI = "" }), apperr.EINVALID},
		{"private_key_jwt with jwks and jwks_uri", keyed("k3", func(c *identity.Client) { c.JWKS = `{"keys":[]}` }), apperr.EINVALID},
		{"jwks_uri over http to another host", keyed("k4", func(c *identity.Client) { c.JWKSURI = "http://keys.example/jwks" }), apperr.EINVALID},
		{"keys for a secret client", keyed("k5", func(c *identity.Client) { c.TokenEndpointAuth, c.SecretHash = "", "sh" }), apperr.EINVALID},
		{"an unknown auth method", keyed("k6", func(c *identity.Client) { c.TokenEndpointAuth = "client_secret_jwt" }), apperr.EINVALID},
		{"a public client exchanging tokens", keyed("k7", func(c *identity.Client) {
			c.TokenEndpointAuth, c.JWKSURI, c.Public, c.GrantTypes = identity.AuthNone, "", true, []string{identity.GrantTokenExchange}
		}), apperr.EINVALID},
		{"a back-channel logout URI over http to another host", keyed("k8", func(c *identity.Client) { c.BackchannelLogoutURI = "http://rp.example/logout" }), apperr.EINVALID},
	} {
		wantCode(t, tt.name, s.CreateClient(ctx, tt.c), tt.code)
	}
	// Nothing was stored or changed by the refusals.
	equal(t, "c1 after the refusals", getClient(t, s, "c1"), c1)
	equal(t, "ListClients after the refusals", listClients(t, s), []identity.Client{c1})
	for _, id := range []string{identity.FirstPartyClientID, "pub", "conf", "nogrant", "baduri", "pubcc", "badscope"} {
		_, err := s.GetClient(ctx, id)
		wantCode(t, "GetClient of refused "+id, err, apperr.ENOTFOUND)
	}
}

func testListClients(t *testing.T, s Store) {
	equal(t, "ListClients of an empty store", listClients(t, s), []identity.Client{})
	// Created out of order; listed by id, byte by byte (so "B" before "a", "a" before "a-1").
	ids := []string{"b", "a-1", "Z", "a", "c.x", "B", "a_1", "0"}
	for _, id := range ids {
		create(t, s.CreateClient, client(id))
	}
	slices.Sort(ids)
	var got []string
	for _, c := range listClients(t, s) {
		equal(t, "listed "+c.ID, c, client(c.ID))
		got = append(got, c.ID)
	}
	equal(t, "the ids ListClients lists, in order", got, ids)
}

func testUpdateClient(t *testing.T, s Store) {
	c1, c2 := client("c1"), client("c2")
	create(t, s.CreateClient, c1, c2)

	// Every field but the id changes: a confidential client made public.
	var seen identity.Client
	got, err := s.UpdateClient(ctx, "c1", func(c identity.Client) (identity.Client, error) {
		seen = c
		c.Name, c.Public, c.SecretHash, c.FirstParty, c.ForwardAuth = "Renamed", true, "", true, true
		c.RedirectURIs = append(c.RedirectURIs, "http://[::1]:8000/cb")
		c.PostLogoutRedirectURIs = []string{"https://c1.example/bye"}
		c.GrantTypes = []string{identity.GrantAuthorizationCode}
		c.Scopes = nil
		c.CreatedAt = t0.Add(time.Minute).In(zone)
		return c, nil
	})
	check(t, err)
	equal(t, "what the updater was given", seen, c1)
	want := identity.Client{ID: "c1", Name: "Renamed", Public: true, FirstParty: true, ForwardAuth: true,
		RedirectURIs: []string{"https://c1.example/callback", "http://[::1]:8000/cb"}, PostLogoutRedirectURIs: []string{"https://c1.example/bye"},
		GrantTypes: []string{identity.GrantAuthorizationCode}, Scopes: nil, CreatedAt: t0.Add(time.Minute)}
	equal(t, "UpdateClient's result", got, want)
	equal(t, "GetClient after the update", getClient(t, s, "c1"), want)

	// A nil list made empty reads back empty.
	got, err = s.UpdateClient(ctx, "c1", func(c identity.Client) (identity.Client, error) { c.Scopes = []string{}; return c, nil })
	check(t, err)
	want.Scopes = []string{}
	equal(t, "UpdateClient's result with an empty list", got, want)
	equal(t, "GetClient after an update to an empty list", getClient(t, s, "c1"), want)

	// Refusals change nothing.
	for _, tt := range []struct {
		name string
		fn   func(identity.Client) (identity.Client, error)
		code string
	}{
		{"an updater that changes the id", func(c identity.Client) (identity.Client, error) { c.ID = "c9"; c.Name = "x"; return c, nil }, apperr.EINVALID},
		{"an updater that takes another client's id", func(c identity.Client) (identity.Client, error) { c.ID = "c2"; return c, nil }, apperr.EINVALID},
		{"an updater that gives a public client a secret", func(c identity.Client) (identity.Client, error) { c.SecretHash = "sh"; return c, nil }, apperr.EINVALID},
		{"an updater that removes every grant type", func(c identity.Client) (identity.Client, error) { c.GrantTypes = nil; return c, nil }, apperr.EINVALID},
		{"an updater that adds a bad redirect URI", func(c identity.Client) (identity.Client, error) {
			c.RedirectURIs = append(c.RedirectURIs, "https://c1.example/cb#frag")
			return c, nil
		}, apperr.EINVALID},
	} {
		_, err := s.UpdateClient(ctx, "c1", tt.fn)
		wantCode(t, tt.name, err, tt.code)
		equal(t, "the clients after "+tt.name, listClients(t, s), []identity.Client{want, c2})
	}
	_, err = s.GetClient(ctx, "c9")
	wantCode(t, "GetClient of the id an updater tried to move to", err, apperr.ENOTFOUND)

	// An updater's own error is returned, and what it returned with it is not stored.
	_, err = s.UpdateClient(ctx, "c1", func(c identity.Client) (identity.Client, error) { c.Name = "lost"; return c, errBoom })
	wantIs(t, "an updater's error", err, errBoom)
	_, err = s.UpdateClient(ctx, "c1", func(c identity.Client) (identity.Client, error) { c.Name = "lost"; return c, identity.ErrUnchanged })
	wantIs(t, "an updater's ErrUnchanged", err, identity.ErrUnchanged)
	equal(t, "the clients after failing updaters", listClients(t, s), []identity.Client{want, c2})

	// No such client: ENOTFOUND, and the updater is not called.
	updateNothing(t, "UpdateClient of no client", s.UpdateClient, "nobody")
	_, err = s.GetClient(ctx, "nobody")
	wantCode(t, "GetClient after UpdateClient of no client", err, apperr.ENOTFOUND)
}

// Twenty updaters on one client, each adding a scope: none is lost.
func testConcurrentUpdateClient(t *testing.T, s Store) {
	create(t, s.CreateClient, client("c1"))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.UpdateClient(ctx, "c1", func(c identity.Client) (identity.Client, error) {
				c.Scopes = append(c.Scopes, fmt.Sprintf("s%02d", i))
				return c, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	scopes := getClient(t, s, "c1").Scopes
	if len(scopes) != 2+20 {
		t.Fatalf("%d scopes after 20 concurrent updates of 2, want 22: %q", len(scopes), scopes)
	}
	for i := range 20 {
		if n := slices.Index(scopes, fmt.Sprintf("s%02d", i)); n < 0 {
			t.Fatalf("update %d is lost: %q", i, scopes)
		}
	}
}

func testDeleteClient(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	grafana, gitlab := client("grafana"), client("gitlab")
	create(t, s.CreateClient, grafana, gitlab)
	of := func(f identity.Family, clientID string) identity.Family { f.ClientID = clientID; return f }
	create(t, s.CreateFamily,
		of(family("a", "u1", "ra"), "grafana"), of(family("b", "u2", "rb"), "grafana"), of(family("c", "u1", "rc"), "grafana"),
		of(family("d", "u1", "rd"), "gitlab"), of(family("e", "u2", "re"), identity.FirstPartyClientID),
		of(family("g", "u2", "rg"), "ghost"), // issued to a client that is not registered (any more)
	)
	if _, err := refresh(s, "rc", "rc1", t0); err != nil { // a family with a spent token too
		t.Fatal(err)
	}
	u1Fams, u2Fams := listed(t, s.ListFamilies, "u1"), listed(t, s.ListFamilies, "u2")

	// A client that is not registered: ENOTFOUND, and its families are left alone.
	wantCode(t, "DeleteClient of a client with families but no registration", s.DeleteClient(ctx, "ghost"), apperr.ENOTFOUND)
	equal(t, "u1's families after a refused DeleteClient", listed(t, s.ListFamilies, "u1"), u1Fams)
	equal(t, "u2's families after a refused DeleteClient", listed(t, s.ListFamilies, "u2"), u2Fams)

	check(t, s.DeleteClient(ctx, "grafana"))
	revoked := func(l []identity.Family) []identity.Family {
		out := slices.Clone(l)
		for i := range out {
			if out[i].ClientID == "grafana" {
				out[i].Revoked = true
			}
		}
		return out
	}
	equal(t, "u1's families: grafana's revoked, nothing else", listed(t, s.ListFamilies, "u1"), revoked(u1Fams))
	equal(t, "u2's families: grafana's revoked, nothing else", listed(t, s.ListFamilies, "u2"), revoked(u2Fams))
	for _, tok := range []string{"ra", "rb", "rc", "rc1"} {
		_, err := refresh(s, tok, tok+"x", t0)
		wantIs(t, tok+" after its client was deleted", err, identity.ErrInvalidGrant)
	}
	for _, tok := range []string{"rd", "re", "rg"} {
		if _, err := refresh(s, tok, tok+"1", t0); err != nil {
			t.Fatalf("%s, a family of another client, was revoked: %v", tok, err)
		}
	}
	_, err := s.GetClient(ctx, "grafana")
	wantCode(t, "GetClient of a deleted client", err, apperr.ENOTFOUND)
	equal(t, "ListClients after the delete", listClients(t, s), []identity.Client{gitlab})
	_, err = s.UpdateClient(ctx, "grafana", func(c identity.Client) (identity.Client, error) { return c, nil })
	wantCode(t, "UpdateClient of a deleted client", err, apperr.ENOTFOUND)

	wantCode(t, "DeleteClient a second time", s.DeleteClient(ctx, "grafana"), apperr.ENOTFOUND)
	wantCode(t, "DeleteClient of an id no client can have", s.DeleteClient(ctx, "bad\x00id\xff"), apperr.ENOTFOUND)

	// Removed entirely: the id is free again, and the new client's families are its own.
	grafana.Name = "Grafana again"
	create(t, s.CreateClient, grafana)
	equal(t, "the client registered again", getClient(t, s, "grafana"), grafana)
	create(t, s.CreateFamily, of(family("h", "u1", "rh"), "grafana"))
	if _, err := refresh(s, "rh", "rh1", t0); err != nil {
		t.Fatalf("a family of the client registered again: %v", err)
	}
}
