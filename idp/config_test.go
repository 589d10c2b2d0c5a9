package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"jwtidp/shared/proctest"
	"jwtidp/shared/service"
)

// Client secrets of the configuration files below (never in a log or an answer).
const (
	cfgSecretA = "config-file-secret-of-client-a-0123456789"
	cfgSecretB = "config-file-secret-of-client-b-0123456789"
	cfgSecretC = "config-file-secret-of-client-c-0123456789"
)

// cfgClient is a client_credentials client as a configuration file declares it.
func cfgClient(id, secret string) string {
	return "  - client_id: " + id + "\n    grant_types: [client_credentials]\n    scopes: [workitems:read]\n    client_secret: " + secret + "\n"
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// `idp config check` prints each mistake of a file as FILE:LINE: message and exits 1 (all of
// them at once), or FILE: ok and exits 0. No mistake repeats a secret.
func TestConfigCheck(t *testing.T) {
	proctest.Secret(cfgSecretA)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "token_ttl: 10m\nlog_format: json\nclients:\n"+cfgClient("a", cfgSecretA)+
		"scopes:\n  workitems:admin: {groups: [ops]}\naccess_control:\n  default_policy: one_factor\n  rules:\n    - domain: [public.example.com]\n      policy: bypass\nconnectors: []\n")
	if out, err := runIDP([]string{"config", "check", good}); err != nil || out != good+": ok\n" {
		t.Fatalf("a good file: %v\n%s", err, out)
	}
	empty := filepath.Join(dir, "empty.yaml")
	writeFile(t, empty, "")
	if out, err := runIDP([]string{"config", "check", empty}); err != nil {
		t.Fatalf("an empty file (every default): %v\n%s", err, out)
	}

	for _, bad := range []struct {
		name, content string
		want          string // the line the check prints for the file's one mistake
	}{
		{"an unknown key", "token_ttl: 1m\ntoken_tll: 1m\n", ":2: unknown key token_tll (did you mean \"token_ttl\"?)"},
		{"a flag's spelling", "key-bits: 3072\n", ":1: unknown key key-bits (did you mean \"key_bits\"?)"},
		{"a section's spelling", "acces_control: {}\n", ":1: unknown key acces_control (did you mean \"access_control\"?)"},
		{"a list for a setting", "\naudience: [a, b]\n", ":2: audience must be a single value, not a list"},
		{"no value", "issuer:\n", ":1: issuer has no value"},
		{"a bad duration", "log_level: debug\ntoken_ttl: soon\n", `:2: invalid token_ttl "soon": not a duration (such as 90s, 15m or 720h)`},
		{"a rule over settings", "token_ttl: 2h\nrefresh_ttl: 1h\n", `:2: invalid refresh_ttl "1h": must be at least the token TTL`},
		{"a bad number", "key_bits: 1024\n", `:1: invalid key_bits "1024"`},
		{"a secret refused", "admin_token: x\nadmin_token_file: /nonexistent\n", `:2: invalid admin_token_file "/nonexistent": set it or admin_token (--admin-token, IDP_ADMIN_TOKEN), not both`},
		{"a wrong type in a client", "clients:\n  - client_id: a\n    public: maybe\n", ":3: clients[0].public must be true or false"},
		{"an unknown client member", "clients:\n" + cfgClient("a", cfgSecretA) + "    secrett: x\n", ":6: unknown key clients[0].secrett"},
		{"a bad client", "clients:\n  - client_id: a\n    grant_types: [client_credentials]\n", `:2: client 1 ("a"): A confidential client needs its client_secret`},
		{"a client twice", "clients:\n" + cfgClient("a", cfgSecretA) + cfgClient("a", cfgSecretA), `:6: client 2 ("a"): declared twice`},
		{"clients not a list", "clients: {client_id: a}\n", ":1: clients must be a list"},
		{"a scope with no group", "scopes:\n  workitems:admin: {groups: []}\n", ":2: scopes.workitems:admin: groups must name at least one group"},
		{"a bad group name", "scopes:\n  workitems:admin:\n    groups:\n      - ops\n      - Ops Team\n", `:5: scopes.workitems:admin: "Ops Team" is not a group name`},
		{"a scope rule's unknown key", "scopes:\n  workitems:admin: {group: [ops]}\n", `:2: unknown key scopes.workitems:admin.group (did you mean "groups"?)`},
		{"a rule's unknown key", "access_control:\n  rules:\n    - domain: [a.example.com]\n      polcy: deny\n", `:4: unknown key access_control.rules[0].polcy (did you mean "policy"?)`},
		{"a rule's condition not a list", "access_control:\n  rules:\n    - domain: a.example.com\n      policy: deny\n", ":3: access_control.rules[0].domain must be a list"},
		// A rule access.Compile refuses (a bad policy, a regular expression that does not
		// compile) is a row of the rules' own table once the rules engine is merged: its
		// problems' paths become lines as TestConfigProblemLines shows.
		{"a key twice", "token_ttl: 1m\ntoken_ttl: 2m\n", ":2: token_ttl is given twice (first at line 1)"},
		{"the smtp section not a mapping", "smtp: yes\n", ":1: smtp must be a mapping"},
		{"the connectors section not a list", "connectors: yes\n", ":1: connectors must be a list"},
		{"a connector of no known type", "connectors:\n  - id: corp\n    type: saml\n", `:2: connectors[0]: connector "corp": type must be oidc or ldap`},
		{"a connector's id unfit for a URL", "connectors:\n  - id: Corp/1\n    type: ldap\n    url: ldaps://ldap.example.com\n    user_search: {base_dn: dc=example}\n", `:2: connectors[0]: connector "Corp/1": id must be 1 to 32 characters`},
		{"plain LDAP to another host", "connectors:\n  - id: corp\n    type: ldap\n    url: ldap://ldap.example.com\n    user_search: {base_dn: dc=example}\n", `:2: connectors[0]: connector "corp": url: plain ldap:// only to a loopback host`},
		{"an OIDC connector over http", "connectors:\n  - id: co\n    type: oidc\n    issuer: http://login.example.com\n    client_id: a\n    client_secret_file: /s\n", `:2: connectors[0]: connector "co": issuer must be an https URL`},
		{"two connectors with one id", "connectors:\n  - {id: co, type: ldap, url: \"ldaps://l.example.com\", user_search: {base_dn: dc=x}}\n  - {id: co, type: ldap, url: \"ldaps://l.example.com\", user_search: {base_dn: dc=x}}\n", `:3: connectors[1]: a connector with id "co" comes before`},
		{"a password backend that is no directory", "connectors:\n  - {id: co, type: oidc, issuer: \"https://l.example.com\", client_id: a, client_secret_file: /s}\npassword_backends: [local, co]\n", `:3: password_backends: connector "co" is of type oidc`},
		{"a group prefix that does not end with a colon", "connectors:\n  - {id: co, type: oidc, issuer: \"https://l.example.com\", client_id: a, client_secret_file: /s, groups: {prefix: a}}\n", `:2: connectors[0]: connector "co": groups.prefix must end with ':'`},
		{"a second factor required of users made just in time", "connectors:\n  - {id: co, type: oidc, issuer: \"https://l.example.com\", client_id: a, client_secret_file: /s, second_factor: required}\n", `:2: connectors[0]: connector "co": second_factor: required needs link: existing`},
		{"a directory linking existing accounts", "connectors:\n  - {id: co, type: ldap, url: \"ldaps://l.example.com\", user_search: {base_dn: dc=x}, link: existing}\n", `:2: connectors[0]: connector "co": link: existing is for oidc connectors`},
		{"an unknown password backend", "password_backends: [local, corp]\n", `:1: password_backends: "corp" is neither "local" nor a connector's id`},
		{"an smtp setting outside its section", "smtp_host: mail.example.com\n", ":1: smtp_host belongs in the smtp section (smtp: {host: …})"},
		{"an smtp key misspelt", "smtp:\n  frm: login@example.com\n", `:2: unknown key smtp.frm (did you mean "from"?)`},
		{"smtp without TLS to another host", "smtp:\n  host: mail.example.com\n  tls: none\n  from: login@example.com\n",
			`:2: invalid smtp_host "mail.example.com", smtp_tls "none", smtp_from "login@example.com": smtp tls: none is only allowed for a loopback host`},
		{"smtp without a sender", "smtp:\n  host: mail.example.com\n", `:2: invalid smtp_host "mail.example.com": smtp from is required`},
		{"an smtp setting without a host", "smtp:\n  from: login@example.com\n", `:2: invalid smtp_from "login@example.com": smtp host is not set`},
		{"a header in the sender", "smtp:\n  host: 127.0.0.1\n  tls: none\n  from: \"a@example.com\\r\\nBcc: x@evil.example\"\n", `:2: invalid smtp_host "127.0.0.1", smtp_tls "none", smtp_from "a@example.com\r\nBcc: x@evil.example": smtp from holds a line break`},
		{"not YAML", "token_ttl: [1m\n", ":1: not YAML"},
		{"not a mapping", "- token_ttl\n", ":1: the file must be a mapping"},
	} {
		path := filepath.Join(dir, "bad.yaml")
		writeFile(t, path, bad.content)
		out, err := runIDP([]string{"config", "check", path})
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if err == nil || len(lines) != 2 || !strings.HasPrefix(lines[0], path+bad.want) || lines[1] != "idp: "+path+": 1 mistake(s)" {
			t.Errorf("%s: %v\n%s\nwant one line starting %s%s", bad.name, err, out, path, bad.want)
		}
		if strings.Contains(out, cfgSecretA) {
			t.Errorf("%s: a secret in the output", bad.name)
		}
	}

	// Every mistake at once, in the order of the lines.
	path := filepath.Join(dir, "many.yaml")
	writeFile(t, path, "colour: blue\ntoken_ttl: soon\nclients:\n  - client_id: a\n")
	out, _ := runIDP([]string{"config", "check", path})
	if want := path + ":1: unknown key colour\n" + path + `:2: invalid token_ttl "soon": not a duration (such as 90s, 15m or 720h)` + "\n" +
		path + `:4: client 1 ("a"): `; !strings.HasPrefix(out, want) {
		t.Fatalf("several mistakes:\n%s\nwant them starting\n%s", out, want)
	}
	if out, err := runIDP([]string{"config", "check", filepath.Join(dir, "missing.yaml")}); err == nil || !strings.Contains(out, "missing.yaml: cannot read the configuration file") {
		t.Fatalf("a missing file: %v %s", err, out)
	}
	if out, err := runIDP([]string{"config", "frobnicate"}); err == nil || !strings.Contains(out, "usage: idp config check FILE") {
		t.Fatalf("a wrong subcommand: %v %s", err, out)
	}
}

// The file's settings apply below the environment and the command line; its clients are
// declared; a bad value stops start-up naming the file's line; without --config nothing
// changes.
func TestConfigFileSettings(t *testing.T) {
	proctest.Secret(cfgSecretA)
	path := filepath.Join(t.TempDir(), "idp.yaml")
	writeFile(t, path, "# the IdP\ntoken_ttl: 10m\naudience: files,workitems\nclients:\n"+cfgClient("a", cfgSecretA))
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want float64
	}{
		{"the file", []string{"IDP_CONFIG=" + path}, nil, 600},
		{"a variable wins", []string{"IDP_TOKEN_TTL=5m"}, []string{"--config", path}, 300},
		{"a flag wins", []string{"IDP_TOKEN_TTL=5m"}, []string{"--config", path, "--token-ttl", "2m"}, 120},
	} {
		p := startIDPEnv(t, t.TempDir(), service.Env{Getenv: getenv(tc.env...)}, tc.args...)
		signup(t, p.URL, "ivan", "correct-horse-9")
		if tok := login(t, p.URL, "ivan", "correct-horse-9"); tok["expires_in"] != tc.want {
			t.Errorf("%s: expires_in %v, want %v", tc.name, tok["expires_in"], tc.want)
		}
		tok, err := ccToken(t, p.URL, "a", cfgSecretA, oauth2.AuthStyleInHeader)
		if err != nil {
			t.Fatalf("%s: the file's client: %v", tc.name, err)
		}
		if c := verifyForAudience(t, p.URL, p.URL, "files", tok.AccessToken); c["sub"] != "a" {
			t.Fatalf("%s: claims %v", tc.name, c)
		}
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, path, "token_ttl: 10m\nrefresh_ttl: 1m\n")
	out, err := runIDP([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", path})
	if err == nil || !strings.Contains(out, path+`:2: invalid refresh_ttl "1m": must be at least the token TTL`) {
		t.Fatalf("a bad value in the file: %v\n%s", err, out)
	}
	// Start-up names every mistake of the file's own.
	writeFile(t, path, "token_tll: 10m\nsmtp: 1\n")
	out, err = runIDP([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", path})
	if err == nil || !strings.Contains(out, path+":1: unknown key token_tll") || !strings.Contains(out, path+":2: smtp must be a mapping") {
		t.Fatalf("two mistakes: %v\n%s", err, out)
	}
	// A flag that fixes a value wins; a reload checks the file under the flags given at start,
	// though the file alone does not check (refresh_ttl under the default token_ttl of 15m).
	writeFile(t, path, "admin_token: audit-admin\nrefresh_ttl: 10m\n")
	if out, err := runIDP([]string{"config", "check", path}); err == nil {
		t.Fatalf("the file alone checked: %s", out)
	}
	p := startIDP(t, t.TempDir(), "--config", path, "--token-ttl", "5m")
	if a := do(t, "POST", p.URL+"/admin/reload", "", nil, "Authorization", "Bearer audit-admin"); a.status != 200 {
		t.Fatalf("a reload under the start's flags: %d %s", a.status, a.body)
	}
	// Without a file there is nothing to reload.
	p = startIDP(t, t.TempDir(), "--admin-token", "audit-admin")
	if a := do(t, "POST", p.URL+"/admin/reload", "", nil, "Authorization", "Bearer audit-admin"); a.status != 404 || !strings.Contains(string(a.body), "without --config") {
		t.Fatalf("the reload route without a file: %d %s", a.status, a.body)
	}
	// The same client in --clients and in the file is refused: which one wins would be luck.
	clients := filepath.Join(t.TempDir(), "clients.json")
	writeClients(t, clients, []any{map[string]any{"client_id": "a", "grant_types": []string{"client_credentials"}, "client_secret": cfgSecretA}})
	writeFile(t, path, "clients:\n"+cfgClient("a", cfgSecretA))
	out, err = runIDP([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", path, "--clients", clients})
	if err == nil || !strings.Contains(out, `client "a" is also in the configuration file (`+path+":2)") {
		t.Fatalf("a client in both files: %v\n%s", err, out)
	}
}

// A reload (POST /admin/reload, and SIGHUP) declares the file's new clients, refuses a broken
// file with its mistakes and keeps the running configuration, audits both, and never fails a
// request in flight.
func TestConfigReload(t *testing.T) {
	proctest.Secret(cfgSecretA, cfgSecretB, cfgSecretC)
	path := filepath.Join(t.TempDir(), "idp.yaml")
	writeFile(t, path, "admin_token: audit-admin\nclients:\n"+cfgClient("a", cfgSecretA))
	hup := make(chan os.Signal, 1)
	env := service.Env{Hangups: func() (<-chan os.Signal, func()) { return hup, func() {} }}
	p := startIDPEnv(t, t.TempDir(), env, "--config", path, "--token-rate-limit", "0")
	admin := func() answer {
		return do(t, "POST", p.URL+"/admin/reload", "", nil, "Authorization", "Bearer audit-admin")
	}
	works := func(id, secret string) bool {
		_, err := ccToken(t, p.URL, id, secret, oauth2.AuthStyleInHeader)
		return err == nil
	}
	if !works("a", cfgSecretA) || works("b", cfgSecretB) {
		t.Fatal("before the reload: a should work and b not")
	}

	// Requests keep being answered while the configuration is swapped under them.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed []error
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := ccToken(t, p.URL, "a", cfgSecretA, oauth2.AuthStyleInHeader); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	writeFile(t, path, "admin_token: audit-admin\nclients:\n"+cfgClient("a", cfgSecretA)+cfgClient("b", cfgSecretB))
	for range 10 {
		if a := admin(); a.status != 200 || !strings.Contains(string(a.body), `"reloaded":true`) {
			t.Fatalf("POST /admin/reload: %d %s", a.status, a.body)
		}
	}
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed during reloads, the first: %v", len(failed), failed[0])
	}
	if !works("b", cfgSecretB) {
		t.Fatal("the new client does not work after the reload")
	}

	// A broken file is refused with its mistakes; the running configuration stays.
	writeFile(t, path, "admin_token: audit-admin\nclients:\n"+cfgClient("b", cfgSecretB)+"  - client_id: c\n    grant_types: [client_credentials]\ntoken_tll: 1m\n")
	a := admin()
	if a.status != 400 || !strings.Contains(string(a.body), path+`:7: client 2 (\"c\"): A confidential client needs its client_secret`) ||
		!strings.Contains(string(a.body), path+`:9: unknown key token_tll`) || strings.Contains(string(a.body), cfgSecretB) {
		t.Fatalf("a broken file: %d %s", a.status, a.body)
	}
	if !works("a", cfgSecretA) || !works("b", cfgSecretB) {
		t.Fatal("the running configuration did not stay")
	}

	// SIGHUP: a file that checks again, with a third client and without a; a stays registered.
	writeFile(t, path, "admin_token: audit-admin\ntoken_ttl: 1m\npassword_backends: [local]\nclients:\n"+cfgClient("b", cfgSecretB)+cfgClient("c", cfgSecretC))
	hup <- syscall.SIGHUP
	if !proctest.Eventually(10*time.Second, func() bool { return works("c", cfgSecretC) }) {
		t.Fatalf("the client of the file SIGHUP reloaded does not work\n%s", p.Log())
	}
	if !works("a", cfgSecretA) {
		t.Fatal("a client removed from the file was removed from the store")
	}
	events, _ := auditEvents(t, p.URL, "type=config_refused")
	if len(events) != 1 || events[0].Outcome != "failure" || events[0].Actor != "admin-token" || !strings.Contains(events[0].Detail, ":9: unknown key token_tll") {
		t.Fatalf("config_refused events: %+v", events)
	}
	// The SIGHUP's reload records its event after it declares the clients: wait for it.
	proctest.Eventually(10*time.Second, func() bool {
		events, _ = auditEvents(t, p.URL, "type=config_reloaded")
		return len(events) == 11
	})
	if len(events) != 11 || events[0].Actor != "system" || events[1].Actor != "admin-token" || events[0].Outcome != "success" {
		t.Fatalf("config_reloaded events: %d, the last %+v", len(events), events[0])
	}
	// The SIGHUP's reload logs after it declares c: read the log once its event is recorded.
	lg := p.Log()
	for _, want := range []string{
		`msg="a client removed from the configuration file stays registered (idp clients remove deletes it)" client=a`,
		`msg="settings changed in the configuration file take effect at the next start" keys=password_backends,token_ttl`,
		`msg="configuration file refused: the running configuration stays"`,
	} {
		if !strings.Contains(lg, want) {
			t.Errorf("the log does not say %s", want)
		}
	}
	for _, s := range []string{cfgSecretA, cfgSecretB, cfgSecretC} {
		if strings.Contains(lg, s) {
			t.Fatal("a secret reached the log")
		}
	}
}

// The real binary reloads its file at a real SIGHUP, and refuses a broken one, keeping what
// it runs.
func TestConfigReloadOnSIGHUP(t *testing.T) {
	proctest.Secret(cfgSecretA, cfgSecretB)
	path := filepath.Join(t.TempDir(), "idp.yaml")
	writeFile(t, path, "clients:\n"+cfgClient("a", cfgSecretA))
	p := startIDPBinary(t, t.TempDir(), "--config", path)
	works := func(id, secret string) bool {
		_, err := ccToken(t, p.URL, id, secret, oauth2.AuthStyleInHeader)
		return err == nil
	}
	writeFile(t, path, "clients:\n"+cfgClient("a", cfgSecretA)+cfgClient("b", cfgSecretB))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !proctest.Eventually(10*time.Second, func() bool { return works("b", cfgSecretB) }) {
		t.Fatalf("the new client does not work after SIGHUP\n%s", p.Log())
	}
	writeFile(t, path, "clients: [\n")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !p.WaitLog(10*time.Second, func(log string) bool { return strings.Contains(log, "configuration file refused") }) {
		t.Fatalf("a broken file was not refused\n%s", p.Log())
	}
	if !works("a", cfgSecretA) || !works("b", cfgSecretB) {
		t.Fatal("the running configuration did not stay")
	}
}
