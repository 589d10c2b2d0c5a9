package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// Back-channel logout with the real mod_auth_openidc as the relying party: its client is
// registered with backchannel_logout_uri at its redirect URI with ?logout=backchannel (where
// mod_auth_openidc takes the POST, checks the logout_token against the IdP's JWKS, and ends
// the session of its sid). ada signs in through Apache, logs out at the IdP, and Apache's page
// sends her back to the IdP instead of showing the content; bert's Apache session ends when an
// admin disables him.
func TestApacheOpenIDCBackchannelLogout(t *testing.T) {
	bin := needApacheOpenIDC(t)

	listen := proctest.FreeAddr(t)
	redirectURI := "http://" + listen + "/oidc/callback"
	clientSecret, passphrase := randomText(t, 32), randomText(t, 32)
	const pw, adminToken = "correct-horse-9", "apache-bcl-test-admin-token"
	proctest.Secret(clientSecret, passphrase, pw, adminToken)
	clients, _ := json.Marshal([]map[string]any{{
		"client_id": "apache", "name": "The app behind Apache", "client_secret": clientSecret,
		"redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code"},
		"scopes": []string{"openid", "profile", "groups"}, "first_party": true,
		"backchannel_logout_uri": redirectURI + "?logout=backchannel", "backchannel_logout_session_required": true,
	}})
	clientsFile := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(clientsFile, clients, 0o600); err != nil {
		t.Fatal(err)
	}
	idp := proctest.Start(t, idpBin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--clients", clientsFile, "--admin-token", adminToken}, proctest.FastArgon...))
	for _, u := range []string{"ada", "bert"} {
		signupVerified(t, idp.URL, adminToken, u, pw, u+"@example.com")
	}
	idpCLI(t, idp.URL, adminToken, "groups", "add", "admins")
	idpCLI(t, idp.URL, adminToken, "groups", "add-member", "admins", "ada")
	idpCLI(t, idp.URL, adminToken, "groups", "add-member", "admins", "bert")

	app := newAppWith(t, apachePage)
	apache := startApache(t, bin, listen, map[string]string{
		"METADATA":   idp.URL + "/.well-known/openid-configuration",
		"SECRET":     clientSecret,
		"REDIRECT":   redirectURI,
		"PASSPHRASE": passphrase,
		"APP":        app.srv.URL,
	})
	page := apache.url + "/reports/q3"

	signIn := func(user string) *http.Client {
		t.Helper()
		c := browser(t)
		resp, body := get(t, c, page)
		resp, body = idpSignIn(t, c, resp, body, idp.URL, user, pw)
		if resp.StatusCode != 200 || resp.Request.URL.String() != page || !strings.Contains(body, `<span id="user">`+user+`</span>`) {
			t.Fatalf("%s signs in through Apache: %d at %s:\n%s\nApache's log:\n%s", user, resp.StatusCode, where(resp), body, apache.log())
		}
		return c
	}
	// ended waits until Apache no longer knows the browser's session: its page answers with a
	// redirect to the IdP (the browser is not sent on, so the IdP's own session does not matter).
	ended := func(who string, c *http.Client) {
		t.Helper()
		stay := &http.Client{Jar: c.Jar, Transport: c.Transport, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		var last string
		if !proctest.Eventually(15*time.Second, func() bool {
			resp, _ := get(t, stay, page)
			last = resp.Status + " " + resp.Header.Get("Location")
			return (resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), idp.URL+"/authorize")) ||
				resp.StatusCode == http.StatusUnauthorized
		}) {
			t.Fatalf("%s's Apache session did not end: the page answers %s\nApache's log:\n%s\nThe IdP's log:\n%s", who, last, apache.log(), idp.Log())
		}
	}

	ada := signIn("ada")
	if resp, body := get(t, ada, page); resp.StatusCode != 200 || resp.Request.URL.Host != listen || !strings.Contains(body, `<span id="user">ada</span>`) {
		t.Fatalf("ada's next page: %d at %s", resp.StatusCode, where(resp))
	}
	bert := signIn("bert")

	// ada logs out at the IdP (its own logout page, confirmed): the IdP tells Apache.
	resp, body := get(t, ada, idp.URL+"/logout")
	if resp, body = submitForm(t, ada, resp, body); resp.StatusCode != 200 {
		t.Fatalf("logout at the IdP: %d at %s:\n%s", resp.StatusCode, where(resp), body)
	}
	ended("ada", ada)
	// bert was not touched: his page still shows.
	if resp, body := get(t, bert, page); resp.StatusCode != 200 || resp.Request.URL.Host != listen || !strings.Contains(body, `<span id="user">bert</span>`) {
		t.Fatalf("bert's page after ada's logout: %d at %s", resp.StatusCode, where(resp))
	}
	// An admin disables bert: his Apache session ends too.
	idpCLI(t, idp.URL, adminToken, "users", "disable", "bert")
	ended("bert", bert)
	if lg := idp.Log(); strings.Contains(lg, clientSecret) || strings.Contains(lg, pw) {
		t.Fatal("a secret reached the IdP's log")
	}
}
