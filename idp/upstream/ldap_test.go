package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"jwtidp/idp/upstream"
	"jwtidp/shared/apperr"
	"jwtidp/shared/proctest"
)

// ldapConfig is a connector for the seeded slapd, as the configuration file would give it.
func ldapConfig(url string) upstream.Config {
	c := upstream.Config{
		ID: "corp", Type: upstream.TypeLDAP, URL: url,
		BindDN: proctest.SlapdServiceDN, BindPassword: proctest.SlapdServicePassword,
		UserSearch:  upstream.UserSearch{BaseDN: "ou=people," + proctest.SlapdSuffix, Filter: "(objectClass=inetOrgPerson)", EmailAttr: "mail", NameAttr: "cn"},
		GroupSearch: upstream.GroupSearch{BaseDN: "ou=groups," + proctest.SlapdSuffix, Filter: "(objectClass=groupOfNames)"},
	}
	c.Defaults()
	return c
}

func newLDAP(t *testing.T, c upstream.Config) (upstream.PasswordConnector, *bytes.Buffer) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	pc, err := upstream.NewLDAP(c, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return pc, &log
}

// TestLDAPAgainstSlapd is the connector against a real OpenLDAP: the password is checked by
// binding as the user, groups come from the group search, the username cannot inject a filter,
// a removed user is gone at refresh, and a stopped directory is unavailable.
func TestLDAPAgainstSlapd(t *testing.T) {
	sl := proctest.StartSlapd(t)
	pc, log := newLDAP(t, ldapConfig(sl.URL))
	ctx := context.Background()

	id, err := pc.Login(ctx, "alice", proctest.SlapdAlicePassword)
	if err != nil {
		t.Fatalf("alice with her password: %v\n%s", err, sl.Log())
	}
	want := upstream.Identity{Connector: "corp", Subject: proctest.SlapdAliceDN, Username: "alice", Email: "alice@example.com", Groups: []string{"devs", "ops"}}
	slices.Sort(id.Groups)
	if id.Connector != want.Connector || id.Subject != want.Subject || id.Username != want.Username ||
		id.Email != want.Email || id.EmailVerified || !slices.Equal(id.Groups, want.Groups) {
		t.Errorf("alice = %+v, want %+v", id, want)
	}
	bob, err := pc.Login(ctx, "bob", proctest.SlapdBobPassword)
	if err != nil || !slices.Equal(bob.Groups, []string{"devs"}) {
		t.Errorf("bob = %+v, %v; want groups [devs]", bob, err)
	}

	refused := map[string][2]string{
		"wrong password":           {"alice", "not-her-password"},
		"another user's password":  {"alice", proctest.SlapdBobPassword},
		"empty password":           {"alice", ""}, // an unauthenticated bind would succeed
		"unknown user":             {"carol", proctest.SlapdAlicePassword},
		"filter injection":         {"*)(uid=*", proctest.SlapdAlicePassword},
		"wildcard":                 {"*", proctest.SlapdAlicePassword},
		"injection with a bob":     {"bob)(|(uid=alice", proctest.SlapdAlicePassword},
		"service account by name":  {"jwtidp", proctest.SlapdServicePassword},
		"control character":        {"alice\x00", proctest.SlapdAlicePassword},
		"over-long":                {strings.Repeat("a", upstream.MaxLDAPUsername+1), proctest.SlapdAlicePassword},
		"empty username":           {"", proctest.SlapdAlicePassword},
		"the DN as a username":     {proctest.SlapdAliceDN, proctest.SlapdAlicePassword},
		"alice with a bad escape":  {"alice\\", proctest.SlapdAlicePassword},
		"alice with trailing star": {"ali*", proctest.SlapdAlicePassword},
		// Unescaped, the filter would be (uid=alice)(uid=*): the one entry alice, signed in.
		"alice and an injection": {"alice)(uid=*", proctest.SlapdAlicePassword},
	}
	for name, c := range refused {
		if _, err := pc.Login(ctx, c[0], c[1]); !errors.Is(err, upstream.ErrInvalidCredentials) {
			t.Errorf("%s: Login(%q) = %v, want ErrInvalidCredentials", name, c[0], err)
		}
	}

	// Refresh: alice is there and still in her groups; once deleted, she is gone.
	if got, err := pc.Refresh(ctx, id); err != nil || got.Subject != id.Subject || len(got.Groups) != 2 {
		t.Errorf("Refresh(alice) = %+v, %v", got, err)
	}
	sl.Delete(t, proctest.SlapdAliceDN)
	if _, err := pc.Refresh(ctx, id); !errors.Is(err, upstream.ErrGone) {
		t.Errorf("Refresh after ldapdelete = %v, want ErrGone", err)
	}
	if _, err := pc.Login(ctx, "alice", proctest.SlapdAlicePassword); !errors.Is(err, upstream.ErrInvalidCredentials) {
		t.Errorf("Login after ldapdelete = %v, want ErrInvalidCredentials", err)
	}
	// An entry the user filter excludes is gone too (how a directory disables an account).
	if _, err := pc.Refresh(ctx, upstream.Identity{Connector: "corp", Subject: "cn=devs,ou=groups," + proctest.SlapdSuffix}); !errors.Is(err, upstream.ErrGone) {
		t.Errorf("Refresh of a group's DN = %v, want ErrGone", err)
	}

	// The directory down: unavailable, not a wrong password.
	sl.Stop()
	if _, err := pc.Login(ctx, "bob", proctest.SlapdBobPassword); apperr.Code(err) != apperr.EUNAVAILABLE || !errors.Is(err, upstream.ErrUnavailable) {
		t.Errorf("Login with slapd stopped = %v, want ErrUnavailable", err)
	}
	if _, err := pc.Refresh(ctx, bob); !errors.Is(err, upstream.ErrUnavailable) {
		t.Errorf("Refresh with slapd stopped = %v, want ErrUnavailable", err)
	}
	sl.Start()
	if _, err := pc.Login(ctx, "bob", proctest.SlapdBobPassword); err != nil {
		t.Errorf("Login once slapd is back = %v", err)
	}
	for _, s := range []string{proctest.SlapdAlicePassword, proctest.SlapdBobPassword, proctest.SlapdServicePassword} {
		if strings.Contains(log.String(), s) {
			t.Errorf("a password reached the connector's log:\n%s", log)
		}
	}
}

// TestLDAPServiceAccountRefused: a wrong service password is the directory being unusable
// (ErrUnavailable, logged by the caller), never the user's wrong password.
func TestLDAPServiceAccountRefused(t *testing.T) {
	sl := proctest.StartSlapd(t)
	c := ldapConfig(sl.URL)
	c.BindPassword = "not-the-service-password"
	pc, _ := newLDAP(t, c)
	if _, err := pc.Login(context.Background(), "alice", proctest.SlapdAlicePassword); !errors.Is(err, upstream.ErrUnavailable) {
		t.Errorf("Login with a refused service account = %v, want ErrUnavailable", err)
	}
}

// TestLDAPEmptyPasswordAsksNothing: an empty password is refused before any connection — the
// URL points at nothing, and the answer is still the wrong password's.
func TestLDAPEmptyPasswordAsksNothing(t *testing.T) {
	pc, _ := newLDAP(t, ldapConfig("ldap://127.0.0.1:1"))
	if _, err := pc.Login(context.Background(), "alice", ""); !errors.Is(err, upstream.ErrInvalidCredentials) {
		t.Errorf("empty password = %v, want ErrInvalidCredentials without dialing", err)
	}
	if _, err := pc.Login(context.Background(), "alice", "x"); !errors.Is(err, upstream.ErrUnavailable) {
		t.Errorf("nothing listening = %v, want ErrUnavailable", err)
	}
}

// TestLDAPOverTLS is the connector against slapd with TLS (a throwaway CA): ldaps:// and
// ldap:// with start_tls sign in with the right ca_file; another CA's, or none (the system's
// roots), is ErrUnavailable before any bind — the service account's password and the user's
// never leave — and the connector's log says why.
func TestLDAPOverTLS(t *testing.T) {
	sl := proctest.StartSlapdTLS(t)
	ctx := context.Background()
	withTLS := func(url string, startTLS bool, caFile string) upstream.Config {
		c := ldapConfig(url)
		c.StartTLS, c.CAFile = startTLS, caFile
		return c
	}
	for name, c := range map[string]upstream.Config{
		"ldaps":              withTLS(sl.LDAPS, false, sl.CA.CertFile),
		"ldap with StartTLS": withTLS(sl.URL, true, sl.CA.CertFile),
		"ldaps to localhost": withTLS(strings.Replace(sl.LDAPS, "127.0.0.1", "localhost", 1), false, sl.CA.CertFile),
	} {
		pc, _ := newLDAP(t, c)
		id, err := pc.Login(ctx, "alice", proctest.SlapdAlicePassword)
		if err != nil || id.Subject != proctest.SlapdAliceDN || len(id.Groups) != 2 {
			t.Errorf("%s: alice = %+v, %v\n%s", name, id, err, sl.Log())
		}
		if _, err := pc.Login(ctx, "alice", "not-her-password"); !errors.Is(err, upstream.ErrInvalidCredentials) {
			t.Errorf("%s: a wrong password = %v, want ErrInvalidCredentials", name, err)
		}
		if _, err := pc.Refresh(ctx, id); err != nil {
			t.Errorf("%s: Refresh(alice) = %v", name, err)
		}
	}

	other := proctest.NewTestCA(t, "another CA")
	binds := sl.Binds()
	if binds < 6 {
		t.Fatalf("slapd logged %d binds of the sign-ins above: Binds cannot see them\n%s", binds, sl.Log())
	}
	for name, c := range map[string]upstream.Config{
		"ldaps, another CA":              withTLS(sl.LDAPS, false, other.CertFile),
		"ldap with StartTLS, another CA": withTLS(sl.URL, true, other.CertFile),
		"ldaps, the system's roots":      withTLS(sl.LDAPS, false, ""),
		"StartTLS, the system's roots":   withTLS(sl.URL, true, ""),
	} {
		pc, log := newLDAP(t, c)
		if _, err := pc.Login(ctx, "alice", proctest.SlapdAlicePassword); !errors.Is(err, upstream.ErrUnavailable) {
			t.Errorf("%s: Login = %v, want ErrUnavailable", name, err)
		}
		if _, err := pc.Refresh(ctx, upstream.Identity{Connector: "corp", Subject: proctest.SlapdAliceDN}); !errors.Is(err, upstream.ErrUnavailable) {
			t.Errorf("%s: Refresh = %v, want ErrUnavailable", name, err)
		}
		if strings.Contains(log.String(), proctest.SlapdAlicePassword) || strings.Contains(log.String(), proctest.SlapdServicePassword) {
			t.Errorf("%s: a password reached the log", name)
		}
	}
	if got := sl.Binds(); got != binds {
		t.Errorf("slapd saw %d binds from connectors that should not trust it, want none\n%s", got-binds, sl.Log())
	}
}

// TestLDAPValidateTLS: plain ldap:// only to a loopback host; ldaps:// or StartTLS anywhere;
// StartTLS is for ldap:// alone.
func TestLDAPValidateTLS(t *testing.T) {
	for _, c := range []struct {
		url      string
		startTLS bool
		err      string
	}{
		{"ldap://127.0.0.1:389", false, ""},
		{"ldap://localhost", false, ""},
		{"ldap://[::1]:389", false, ""},
		{"ldap://ldap.example.com", false, "plain ldap:// only to a loopback host"},
		{"ldap://10.0.0.5:389", false, "plain ldap:// only to a loopback host"},
		{"ldap://127.0.0.1.example.com", false, "plain ldap:// only to a loopback host"},
		{"ldap://ldap.example.com", true, ""},
		{"ldaps://ldap.example.com:636", false, ""},
		{"ldaps://ldap.example.com:636", true, "start_tls is for ldap:// URLs"},
		{"http://ldap.example.com", false, "url must be"},
		{"ldap:///no-host", false, "url must be"},
	} {
		cfg := ldapConfig(c.url)
		cfg.StartTLS = c.startTLS
		err := cfg.Validate()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("url %s, start_tls %v: Validate() = %v, want %q", c.url, c.startTLS, err, c.err)
		}
	}
}
