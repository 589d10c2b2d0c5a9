package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// apacheModules is where Debian's apache2 and libapache2-mod-auth-openidc (which .ci/run
// installs) put Apache's modules.
const apacheModules = "/usr/lib/apache2/modules"

// The real Apache httpd with the real mod_auth_openidc as a second relying party, beside
// oauth2-proxy: `Require claim groups:admins` in front of an app. The IdP only puts the user's
// groups in the ID token and at /userinfo (scope groups); mod_auth_openidc alone decides. A member of
// admins signs in (the IdP's login form, its consent page) and reaches the app, which gets the
// claims as mod_auth_openidc's OIDC_CLAIM_* headers; a signed-in user who is not a member gets
// Apache's 403 for the page and the app never sees them.
func TestApacheOpenIDCRequireClaimGroups(t *testing.T) {
	bin := needApacheOpenIDC(t)

	listen := proctest.FreeAddr(t)
	redirectURI := "http://" + listen + "/oidc/callback"
	clientSecret, passphrase := randomText(t, 32), randomText(t, 32)
	const pw, adminToken = "correct-horse-9", "apache-openidc-test-admin-token"
	proctest.Secret(clientSecret, passphrase, pw, adminToken)

	// Apache's client at the IdP: confidential (client_secret_basic, mod_auth_openidc's default),
	// not first-party (consent), its one redirect URI exactly the OIDCRedirectURI below.
	clients, _ := json.Marshal([]map[string]any{{
		"client_id": "apache", "name": "The app behind Apache", "public": false,
		"client_secret": clientSecret, "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code"}, "scopes": []string{"openid", "profile", "groups"},
		"first_party": false,
	}})
	clientsFile := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(clientsFile, clients, 0o600); err != nil {
		t.Fatal(err)
	}
	idp := proctest.Start(t, idpBin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--clients", clientsFile, "--admin-token", adminToken}, proctest.FastArgon...))
	signupVerified(t, idp.URL, adminToken, "ada", pw, "ada@example.com")
	signupVerified(t, idp.URL, adminToken, "bert", pw, "bert@example.com")
	idpCLI(t, idp.URL, adminToken, "groups", "add", "admins")
	idpCLI(t, idp.URL, adminToken, "groups", "add", "staff")
	idpCLI(t, idp.URL, adminToken, "groups", "add-member", "admins", "ada")
	idpCLI(t, idp.URL, adminToken, "groups", "add-member", "staff", "bert")

	app := newAppWith(t, apachePage)
	apache := startApache(t, bin, listen, map[string]string{
		"METADATA":   idp.URL + "/.well-known/openid-configuration",
		"SECRET":     clientSecret,
		"REDIRECT":   redirectURI,
		"PASSPHRASE": passphrase,
		"APP":        app.srv.URL,
	})
	page := apache.url + "/reports/q3?year=2026"

	// signIn opens the page in a fresh browser: mod_auth_openidc sends it to the IdP's
	// /authorize, then the IdP's login and consent pages, and back through OIDCRedirectURI.
	signIn := func(user string) (*http.Client, *http.Response, string) {
		t.Helper()
		c := browser(t)
		resp, body := get(t, c, page)
		resp, body = idpSignIn(t, c, resp, body, idp.URL, user, pw)
		return c, resp, body
	}

	ada, resp, body := signIn("ada")
	if resp.StatusCode != 200 || resp.Request.URL.String() != page || !strings.Contains(body, `<span id="user">ada</span>`) {
		t.Fatalf("ada, in admins: %d at %s:\n%s\nApache's log:\n%s", resp.StatusCode, where(resp), body, apache.log())
	}
	// The groups came in the ID token and at /userinfo both: each is the IdP's to send.
	seen := app.requests()[len(app.requests())-1]
	if got := seen.Get("OIDC_CLAIM_groups"); got != "admins" {
		t.Fatalf("the app got OIDC_CLAIM_groups %q, want admins", got)
	}
	for _, h := range []string{"OIDC_id_token_payload", "OIDC_userinfo_json"} {
		var claims struct{ Groups []string }
		if err := json.Unmarshal([]byte(seen.Get(h)), &claims); err != nil || len(claims.Groups) != 1 || claims.Groups[0] != "admins" {
			t.Fatalf("the app got %s with groups %q (%v), want [admins]", h, claims.Groups, err)
		}
	}
	// Her session is mod_auth_openidc's cookie: the next page needs no IdP.
	if resp, body := get(t, ada, apache.url+"/other"); resp.StatusCode != 200 || resp.Request.URL.Host != listen || !strings.Contains(body, `<span id="user">ada</span>`) {
		t.Fatalf("ada's next page: %d at %s", resp.StatusCode, where(resp))
	}

	before := len(app.requests())
	bert, resp, body := signIn("bert")
	// Apache's 403 page for the page he asked for (AuthzSendForbiddenOnFailure, in apacheConf).
	if resp.StatusCode != 403 || resp.Request.URL.String() != page || !strings.Contains(body, "<title>403 Forbidden</title>") {
		t.Fatalf("bert, not in admins: %d at %s, want Apache's 403 for the page:\n%s\nApache's log:\n%s", resp.StatusCode, where(resp), body, apache.log())
	}
	// The reason is the Require claim, not a failed sign-in: authz_core logs each Require's
	// result (at debug), and the refusal of a user it knows (OIDCRemoteUserClaim).
	denied := []*regexp.Regexp{
		regexp.MustCompile(`(?m)AH01626: authorization result of Require claim groups:admins: denied(, referer: .*)?$`),
		regexp.MustCompile(`AH01631: user bert: authorization failure for "/reports/q3"`),
	}
	if !proctest.Eventually(5*time.Second, func() bool {
		log := apache.log()
		return denied[0].MatchString(log) && denied[1].MatchString(log)
	}) {
		t.Fatalf("Apache did not log refusing bert by his groups:\n%s", apache.log())
	}
	// mod_auth_openidc kept his session: the next page is refused without the IdP.
	if resp, _ := get(t, bert, apache.url+"/other"); resp.StatusCode != 403 || resp.Request.URL.Host != listen {
		t.Fatalf("bert's next page: %d at %s", resp.StatusCode, where(resp))
	}
	if n := len(app.requests()); n != before {
		t.Fatalf("%d requests of bert reached the app", n-before)
	}
}

// apacheConf is the whole configuration Apache runs with: no /etc/apache2 include, so the test
// touches nothing of the system's Apache. Each @WORD@ is replaced.
const apacheConf = `ServerRoot "@DIR@"
ServerName 127.0.0.1
Listen @LISTEN@
PidFile "@DIR@/httpd.pid"
ErrorLog "@DIR@/error.log"
# authz_core at debug logs each Require's result (no secrets in it); mod_auth_openidc's own
# debug lines would show cookies and tokens, so it stays at warn.
LogLevel warn authz_core:debug
# One process (-X) serves one connection at a time: a browser's idle keep-alive connection
# would hold up the next.
KeepAlive Off

LoadModule mpm_prefork_module @MODULES@/mod_mpm_prefork.so
LoadModule authn_core_module @MODULES@/mod_authn_core.so
LoadModule authz_core_module @MODULES@/mod_authz_core.so
LoadModule proxy_module @MODULES@/mod_proxy.so
LoadModule proxy_http_module @MODULES@/mod_proxy_http.so
LoadModule auth_openidc_module @MODULES@/mod_auth_openidc.so
@USERGROUP@

# The IdP as OpenID Provider: discovery, then ID tokens checked against its JWKS, issuer,
# audience and nonce, the code exchanged with PKCE and client_secret_basic. http works for a
# loopback IdP (mod_auth_openidc warns); anywhere else these URLs are https.
OIDCProviderMetadataURL @METADATA@
OIDCClientID apache
OIDCClientSecret @SECRET@
OIDCRedirectURI @REDIRECT@
OIDCCryptoPassphrase @PASSPHRASE@
OIDCPKCEMethod S256
OIDCScope "openid profile groups"
OIDCRemoteUserClaim preferred_username
# Besides each claim as OIDC_CLAIM_<name> (the ID token's and /userinfo's merged), the app gets
# each source whole: OIDC_id_token_payload (the ID token's claims, not the token) and
# OIDC_userinfo_json.
OIDCPassIDTokenAs claims payload
OIDCPassUserInfoAs claims json

<Location />
  AuthType openid-connect
  Require claim groups:admins
  # A signed-in user the Require refuses gets 403 Forbidden. Without this Apache 2.4 answers
  # 401 (mod_auth_openidc's OIDCUnAutzAction 403 needs it too, its 2.4.14.1 notes say), which
  # tells a browser to send credentials it does not have.
  AuthzSendForbiddenOnFailure On
</Location>
ProxyPass /oidc/callback !
ProxyPass / @APP@/
`

type apacheServer struct {
	url string
	log func() string // its error log
}

// needApacheOpenIDC finds apache2 (in PATH, or /usr/sbin where Debian puts it, outside a
// user's PATH) and mod_auth_openidc, or skips — fails where integration is required.
func needApacheOpenIDC(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("apache2")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/apache2"); err != nil {
			return need(t, "apache2")
		}
	}
	if _, err := os.Stat(filepath.Join(apacheModules, "mod_auth_openidc.so")); err != nil {
		proctest.Integration(t, "mod_auth_openidc is not installed (Debian: libapache2-mod-auth-openidc): %v", err)
	}
	return bin
}

// startApache runs apache2 in the foreground as one process (-X) with apacheConf, listening on
// listen, each @KEY@ of replace replaced by its value (and @DIR@, @LISTEN@, @MODULES@,
// @USERGROUP@ by this function); it returns once Apache accepts connections.
func startApache(t *testing.T, bin, listen string, replace map[string]string) apacheServer {
	t.Helper()
	dir := t.TempDir()
	// Apache started as root (as in this sandbox and CI's container) switches to User and Group
	// before serving, -X too; "User root" is refused, and with none given it logs an alert
	// (AH02155, uid -1) and serves as root. nobody needs no file of this test: the
	// configuration and logs are opened as root before the switch, the pages come from the
	// app through mod_proxy, and mod_auth_openidc keeps its state in shared memory made
	// before it. Started as another user, Apache stays that user and the lines are not needed.
	userGroup := ""
	if os.Geteuid() == 0 {
		userGroup = "User nobody\nGroup nogroup"
	}
	words := []string{"@DIR@", dir, "@LISTEN@", listen, "@MODULES@", apacheModules, "@USERGROUP@", userGroup}
	for k, v := range replace {
		words = append(words, "@"+k+"@", v)
	}
	conf := strings.NewReplacer(words...).Replace(apacheConf)
	if left := regexp.MustCompile(`@[A-Z]+@`).FindString(conf); left != "" {
		t.Fatalf("apacheConf: nothing given for %s", left)
	}
	path := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	readLog := fileLog(t, "apache2", filepath.Join(dir, "error.log"))

	// The output file holds Apache's own start-up complaints, before its error log is open.
	startServer(t, "apache2-stderr", exec.Command(bin, "-X", "-f", path), dir, 10*time.Second, func() bool {
		return proctest.Listening(listen, 0)
	})
	return apacheServer{url: "http://" + listen, log: readLog}
}

// apachePage is the page of the app behind Apache: the claims mod_auth_openidc passed.
func apachePage(h http.Header) string {
	return fmt.Sprintf(`<!doctype html><title>App</title><p>Hello, <span id="user">%s</span>
(<span id="groups">%s</span>)</p>`,
		html.EscapeString(h.Get("OIDC_CLAIM_preferred_username")),
		html.EscapeString(h.Get("OIDC_CLAIM_groups")))
}
