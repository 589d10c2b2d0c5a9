package e2e

import (
	"bytes"
	"encoding/json"
	"io"
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

// Every IDP_* and WORKITEMS_* variable that docker-compose.yml sets must be a setting the
// binary knows, so the compose file cannot drift from the code.
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	compose, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`\b(IDP|WORKITEMS)_[A-Z0-9_]+\b`).FindAllString(string(compose), -1)
	if len(vars) < 6 {
		t.Fatalf("found only %v in docker-compose.yml", vars)
	}
	known := map[string]string{}
	for _, b := range []struct{ prefix, bin string }{{"IDP_", idpBin}, {"WORKITEMS_", wiBin}} {
		out, _ := proctest.Run(b.bin, []string{"serve", "-h"})
		known[b.prefix] = out
	}
	for _, v := range vars {
		prefix := "IDP_"
		if strings.HasPrefix(v, "WORKITEMS_") {
			prefix = "WORKITEMS_"
		}
		if !strings.Contains(known[prefix], "(env "+v+")") {
			t.Errorf("docker-compose.yml sets %s, which the binary does not know", v)
		}
	}
}

// CI validates the compose file with the Compose tool from Debian's packages.
func TestComposeFileValid(t *testing.T) {
	bin := need(t, "docker-compose")
	cmd := exec.Command(bin, "-f", "../../docker-compose.yml", "config", "-q")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}

// The compose setup without containers: nginx runs deploy/nginx/compose.conf with its upstreams
// pointed at local processes configured as docker-compose.yml configures them — the issuer is
// the proxy's public URL, while the work-item service fetches keys from the IdP's own address.
// The tutorial then works through the single published origin.
func TestComposeTopology(t *testing.T) {
	need(t, "nginx")
	listen := freeAddr(t)
	public := "http://" + listen
	idp := proctest.Start(t, idpBin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--issuer", public, "--redirect-hosts", listen}, proctest.FastArgon...))
	wi := proctest.Start(t, wiBin, []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--issuer", public, "--jwks-url", idp.URL + "/.well-known/jwks.json"})
	proxy := runNginx(t, "../nginx/compose.conf", listen, map[string]string{
		"server idp:8080;":              "server " + idp.Addr + ";",
		"server workitems:8081;":        "server " + wi.Addr + ";",
		"listen 8000;":                  "listen " + listen + ";",
		"root /usr/share/nginx/jwtidp;": "root " + abs(t, "../nginx/www") + ";",
	})
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	post := func(path, auth string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", proxy+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	creds := map[string]string{"username": "zoe", "password": "correct-horse-9"}
	if code, b := post("/signup", "", creds); code != 201 {
		t.Fatalf("signup through nginx: %d %s", code, b)
	}
	code, b := post("/auth", "", creds)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(b, &tok)
	if code != 200 || tok.AccessToken == "" {
		t.Fatalf("auth through nginx: %d %s", code, b)
	}
	if code, b := post("/workitems", "JWT "+tok.AccessToken, map[string]string{"title": "compose"}); code != 201 {
		t.Fatalf("create through nginx: %d %s", code, b)
	}
	resp, body := get(t, client(nil), proxy+"/app/", "Authorization", "Bearer "+tok.AccessToken)
	if resp.StatusCode != 200 || !strings.Contains(body, `<span id="user">zoe</span>`) {
		t.Fatalf("forward auth on /app/: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, client(nil), proxy+"/app/"); resp.StatusCode != 302 {
		t.Fatalf("/app/ without a session: %d", resp.StatusCode)
	}
	for _, path := range []string{"/admin/keys", "/metrics"} {
		if resp, _ := get(t, client(nil), proxy+path); resp.StatusCode != 404 {
			t.Fatalf("%s published through nginx: %d, want 404", path, resp.StatusCode)
		}
	}
	var disc map[string]any
	_, d := get(t, client(nil), proxy+"/.well-known/openid-configuration")
	json.Unmarshal([]byte(d), &disc)
	if disc["issuer"] != public || disc["jwks_uri"] != public+"/.well-known/jwks.json" {
		t.Fatalf("discovery through nginx: %v", disc)
	}
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
