package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
)

// The compose files: docker-compose.yml runs two IdP and two work-item replicas on PostgreSQL,
// docker-compose.single.yml the single-node bbolt setup; .env.example documents the variables
// docker-compose.yml takes from .env.
const (
	composeReplicated = "../../docker-compose.yml"
	composeSingle     = "../../docker-compose.single.yml"
	composeEnvExample = "../../.env.example"
	composeIDPConfig  = "../../deploy/idp.yaml" // the IdP's configuration file both mount
)

// Every IDP_* and WORKITEMS_* variable that the compose files (and .env.example) set must be a
// setting the binary knows, so the compose files cannot drift from the code.
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	known := map[string]string{}
	for _, b := range []struct{ prefix, bin string }{{"IDP_", idpBin}, {"WORKITEMS_", wiBin}} {
		out, _ := proctest.Run(b.bin, []string{"serve", "-h"})
		known[b.prefix] = out
	}
	for _, f := range []struct {
		path string
		min  int
	}{{composeReplicated, 6}, {composeSingle, 6}, {composeEnvExample, 1}} {
		compose, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		vars := regexp.MustCompile(`\b(IDP|WORKITEMS)_[A-Z0-9_]+\b`).FindAllString(string(compose), -1)
		if len(vars) < f.min {
			t.Fatalf("found only %v in %s", vars, f.path)
		}
		for _, v := range vars {
			prefix := "IDP_"
			if strings.HasPrefix(v, "WORKITEMS_") {
				prefix = "WORKITEMS_"
			}
			if !strings.Contains(known[prefix], "(env "+v+")") {
				t.Errorf("%s sets %s, which the binary does not know", f.path, v)
			}
		}
	}
}

// CI validates the compose files with the Compose tool from Debian's packages. The replicated
// one takes the database password from .env and refuses to start without one: no password is
// written in it.
func TestComposeFileValid(t *testing.T) {
	t.Parallel() // docker-compose takes seconds to start
	if out, err := composeConfig(t, composeSingle, ""); err != nil {
		t.Fatalf("docker-compose config %s: %v\n%s", composeSingle, err, out)
	}
	out, err := composeConfig(t, composeReplicated, "")
	if err == nil || !strings.Contains(out, "POSTGRES_PASSWORD") || !strings.Contains(out, ".env.example") {
		t.Fatalf("%s without POSTGRES_PASSWORD: %v, want a refusal naming it and .env.example\n%s", composeReplicated, err, out)
	}
	if out, err := composeConfig(t, composeReplicated, composeEnv(t, "no-password-here")); err == nil {
		t.Fatalf("%s with .env.example as it is (empty password) was accepted\n%s", composeReplicated, out)
	}
	const pw = "Test-only:pass/word@9"
	out, err = composeConfig(t, composeReplicated, composeEnv(t, pw))
	if err != nil {
		t.Fatalf("docker-compose config %s: %v\n%s", composeReplicated, err, out)
	}
	// One source: the database's password and the one every replica logs in with.
	if n := strings.Count(out, pw); n != 5 {
		t.Errorf("the password from .env appears %d times in the resolved config, want 5 (postgres and four replicas)\n%s", n, out)
	}
}

// The replicated file's shape, as Compose resolves it: PostgreSQL with a volume and a health
// check, two IdP replicas on it with one issuer and one admin token, two work-item replicas
// taking the JWKS from the IdP's name, nginx in front of all four at the address the IdP
// trusts, and every dependency waiting for health.
func TestComposeReplicatedLayout(t *testing.T) {
	t.Parallel() // docker-compose takes seconds to start
	cfg := composeModel(t, composeReplicated, composeEnv(t, "layout-test-password"))
	services := cfg.m("services")
	if got := strings.Join(sortedKeys(services), " "); got != "idp1 idp2 nginx postgres workitems1 workitems2" {
		t.Fatalf("services: %s", got)
	}
	pg := services.m("postgres")
	if pg.s("image") != "postgres:15" || !strings.Contains(pg.str("healthcheck", "test"), "pg_isready") ||
		!strings.Contains(pg.str("volumes"), "postgres-data:/var/lib/postgresql/data") ||
		pg.s("environment", "POSTGRES_PASSWORD") != "layout-test-password" {
		t.Errorf("postgres: %v", pg)
	}
	if _, ok := cfg.m("volumes")["postgres-data"]; !ok {
		t.Errorf("no named volume postgres-data: %v", cfg["volumes"])
	}
	healthy := func(name string, deps ...string) {
		for _, d := range deps {
			if c := services.s(name, "depends_on", d, "condition"); c != "service_healthy" {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", name, d, c)
			}
		}
	}
	healthcheck := func(name string) {
		if got := services.str(name, "healthcheck", "test"); got != "[CMD /service healthcheck]" {
			t.Errorf("%s health check: %s", name, got)
		}
	}
	idpEnv := services.m("idp1", "environment")
	for _, name := range []string{"idp1", "idp2"} {
		env := services.m(name, "environment")
		if fmt.Sprint(env) != fmt.Sprint(idpEnv) {
			t.Errorf("the IdP replicas are configured differently:\n%v\n%v", idpEnv, env)
		}
		if !strings.HasPrefix(env.s("IDP_DATABASE_URL"), "postgres://") || !strings.Contains(env.s("IDP_DATABASE_URL"), "@postgres:5432/") {
			t.Errorf("%s database: %q", name, env.s("IDP_DATABASE_URL"))
		}
		if _, ok := env["IDP_ADMIN_TOKEN"]; !ok {
			t.Errorf("%s has no admin token setting", name)
		}
		if !strings.Contains(services.str(name, "networks", "default", "aliases"), "idp") {
			t.Errorf("%s does not answer to the name idp", name)
		}
		healthcheck(name)
		healthy(name, "postgres")
		idpConfigMounted(t, services, name)
	}
	issuer := idpEnv.s("IDP_ISSUER")
	if issuer != "http://localhost:8000" {
		t.Errorf("issuer %q, want nginx's published URL", issuer)
	}
	for _, name := range []string{"workitems1", "workitems2"} {
		env := services.m(name, "environment")
		if env.s("WORKITEMS_ISSUER") != issuer || env.s("WORKITEMS_JWKS_URL") != "http://idp:8080/.well-known/jwks.json" ||
			env.s("WORKITEMS_DATABASE_URL") != idpEnv.s("IDP_DATABASE_URL") {
			t.Errorf("%s: %v", name, env)
		}
		if !strings.Contains(services.str(name, "networks", "default", "aliases"), "workitems") {
			t.Errorf("%s does not answer to the name workitems", name)
		}
		healthcheck(name)
		healthy(name, "postgres", "idp1", "idp2")
	}
	nginx := services.m("nginx")
	healthy("nginx", "idp1", "idp2", "workitems1", "workitems2")
	if ip := nginx.s("networks", "default", "ipv4_address"); ip == "" || ip != idpEnv.s("IDP_TRUSTED_PROXIES") {
		t.Errorf("nginx at %q, the IdP trusts %q", ip, idpEnv.s("IDP_TRUSTED_PROXIES"))
	}
	if !strings.Contains(nginx.str("volumes"), "deploy/nginx/compose.conf:/etc/nginx/nginx.conf") {
		t.Errorf("nginx volumes: %v", nginx["volumes"])
	}
	if got := nginx.str("ports"); got != "[127.0.0.1:8000:8000/tcp]" {
		t.Errorf("published: %s, want only nginx on 127.0.0.1:8000", got)
	}
	for _, name := range []string{"postgres", "idp1", "idp2", "workitems1", "workitems2"} {
		if _, ok := services.m(name)["ports"]; ok {
			t.Errorf("%s publishes a port", name)
		}
	}
}

// The single-node file stays as it was: one IdP and one work-item service on bbolt volumes,
// no database.
func TestComposeSingleLayout(t *testing.T) {
	t.Parallel() // docker-compose takes seconds to start
	cfg := composeModel(t, composeSingle, "")
	services := cfg.m("services")
	if got := strings.Join(sortedKeys(services), " "); got != "idp nginx workitems" {
		t.Fatalf("services: %s", got)
	}
	if env := services.m("idp", "environment"); env.s("IDP_DATA") != "/data" || env.s("IDP_ISSUER") != "http://localhost:8000" ||
		env.s("IDP_DATABASE_URL") != "" || env.s("IDP_TRUSTED_PROXIES") != services.s("nginx", "networks", "default", "ipv4_address") {
		t.Errorf("idp: %v", env)
	}
	if env := services.m("workitems", "environment"); env.s("WORKITEMS_DATA") != "/data" ||
		env.s("WORKITEMS_JWKS_URL") != "http://idp:8080/.well-known/jwks.json" || env.s("WORKITEMS_DATABASE_URL") != "" {
		t.Errorf("workitems: %v", env)
	}
	if got := strings.Join(sortedKeys(cfg.m("volumes")), " "); got != "idp-data workitems-data" {
		t.Errorf("volumes: %s", got)
	}
	idpConfigMounted(t, services, "idp")
}

// idpConfigMounted checks that the IdP service name reads deploy/idp.yaml, mounted read-only,
// and that the file passes `idp config check`.
func idpConfigMounted(t *testing.T, services composeMap, name string) {
	t.Helper()
	path := services.s(name, "environment", "IDP_CONFIG")
	mount := fmt.Sprint(services.m(name)["volumes"])
	if path == "" || !strings.Contains(mount, "deploy/idp.yaml") || !strings.Contains(mount, "deploy/idp.yaml:"+path+":ro") {
		t.Errorf("%s: IDP_CONFIG %q, volumes %s: want deploy/idp.yaml mounted read-only there", name, path, mount)
	}
	if out, err := proctest.Run(idpBin, []string{"config", "check", composeIDPConfig}); err != nil || !strings.Contains(out, composeIDPConfig+": ok") {
		t.Errorf("idp config check %s: %v\n%s", composeIDPConfig, err, out)
	}
}

// The compose setup without containers: nginx runs deploy/nginx/compose.conf with its upstreams
// pointed at local processes configured as docker-compose.single.yml configures them — the issuer is
// the proxy's public URL, while the work-item service fetches keys from the IdP's own address.
// The tutorial then works through the single published origin.
func TestComposeTopology(t *testing.T) {
	need(t, "nginx")
	listen := proctest.FreeAddr(t)
	public := "http://" + listen
	idp := proctest.Start(t, idpBin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--issuer", public, "--redirect-hosts", listen}, proctest.FastArgon...))
	wi := proctest.Start(t, wiBin, []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--issuer", public, "--jwks-url", idp.URL + "/.well-known/jwks.json"})
	proxy := runComposeNginx(t, listen, []string{idp.Addr}, []string{wi.Addr})
	if err := proctest.WaitReady(wi.URL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	composeTutorial(t, proxy, public, "zoe")
}

// The replicated compose setup without containers: two IdP and two work-item processes on one
// PostgreSQL database, each started with the environment docker-compose.yml gives it (only the
// addresses changed to local ones), behind nginx with compose.conf, whose upstreams then hold
// both replicas each, as the compose names do. The tutorial works through nginx, the requests
// reach both replicas, and it keeps working when one replica of each is killed.
func TestComposeReplicatedTopology(t *testing.T) {
	need(t, "nginx")
	cfg := composeModel(t, composeReplicated, composeEnv(t, "unused-with-trust-auth"))
	db := pgtest.NewDatabase(t)
	listen := proctest.FreeAddr(t)
	public := "http://" + listen
	const admin = "compose-admin-token"
	services := cfg.m("services")
	if issuer := services.s("idp1", "environment", "IDP_ISSUER"); issuer != "http://localhost:8000" {
		t.Fatalf("the compose issuer is %q, not nginx's published URL", issuer)
	}
	var idps, wis [2]*proctest.Proc
	for i := range idps {
		env := composeProcEnv(t, services.m(fmt.Sprintf("idp%d", i+1), "environment"), map[string]string{
			"IDP_CONFIG":          composeIDPConfig,
			"IDP_ADDR":            "127.0.0.1:0",
			"IDP_ISSUER":          public,
			"IDP_DATABASE_URL":    db,
			"IDP_TRUSTED_PROXIES": "127.0.0.1",
			"IDP_ADMIN_TOKEN":     admin,
		})
		// The file's redirect_hosts is the published localhost:8000: a variable wins over it.
		env = append(env, "IDP_REDIRECT_HOSTS="+listen)
		idps[i] = proctest.Start(t, idpBin, append([]string{"serve"}, proctest.FastArgon...), env...)
	}
	for i := range wis {
		// The name idp reaches either IdP replica: give each work-item replica a different one.
		jwks := services.s(fmt.Sprintf("workitems%d", i+1), "environment", "WORKITEMS_JWKS_URL")
		if !strings.HasPrefix(jwks, "http://idp:8080/") {
			t.Fatalf("WORKITEMS_JWKS_URL %q does not name the IdP's compose name", jwks)
		}
		env := composeProcEnv(t, services.m(fmt.Sprintf("workitems%d", i+1), "environment"), map[string]string{
			"WORKITEMS_ADDR":         "127.0.0.1:0",
			"WORKITEMS_ISSUER":       public,
			"WORKITEMS_JWKS_URL":     strings.Replace(jwks, "idp:8080", idps[i].Addr, 1),
			"WORKITEMS_DATABASE_URL": db,
		})
		wis[i] = proctest.Start(t, wiBin, []string{"serve"}, env...)
		if err := proctest.WaitReady(wis[i].URL, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	proxy := runComposeNginx(t, listen, []string{idps[0].Addr, idps[1].Addr}, []string{wis[0].Addr, wis[1].Addr})

	before := [2]int{composeRequests(t, idps[0]), composeRequests(t, idps[1])}
	tok := composeTutorial(t, proxy, public, "zoe")
	for i, p := range idps {
		if n := composeRequests(t, p); n <= before[i] {
			t.Errorf("IdP replica %d served none of the tutorial's requests through nginx", i+1)
		}
		// One admin token for both replicas.
		if resp, body := get(t, client(nil), p.URL+"/admin/keys", "Authorization", "Bearer "+admin); resp.StatusCode != 200 {
			t.Errorf("admin token on IdP replica %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	// Written through one work-item replica, read through both (round-robin over two GETs).
	for range 2 {
		if resp, body := get(t, client(nil), proxy+"/workitems", "Authorization", "JWT "+tok); resp.StatusCode != 200 || !strings.Contains(body, "compose") {
			t.Fatalf("list through nginx: %d %s", resp.StatusCode, body)
		}
	}

	// One replica of each gone (kill -9): nginx sends everything to the others.
	idps[0].Kill()
	wis[0].Kill()
	// nginx learns that a replica is gone from a failed attempt: a POST it had already sent on a
	// kept-alive connection to the dead one is not retried (it may have been acted on), so the
	// first login may fail with 502. After that, every request goes to the survivors.
	if !proctest.Eventually(5*time.Second, func() bool {
		code, _ := composePost(t, proxy, "/auth", "", map[string]string{"username": "zoe", "password": "correct-horse-9"})
		return code == 200
	}) {
		t.Fatal("no login through nginx succeeds after one replica of each was killed")
	}
	for i := range 4 {
		tok := composeLogin(t, proxy, "zoe")
		if resp, body := get(t, client(nil), proxy+"/workitems", "Authorization", "JWT "+tok); resp.StatusCode != 200 || !strings.Contains(body, "compose") {
			t.Fatalf("list %d through nginx with one replica of each left: %d %s", i, resp.StatusCode, body)
		}
		if resp, body := get(t, client(nil), proxy+"/app/", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
			t.Fatalf("forward auth %d with one IdP replica left: %d %s", i, resp.StatusCode, body)
		}
	}
}

// composePost sends a JSON POST through the proxy.
func composePost(t *testing.T, proxy, path, auth string, body any) (int, []byte) {
	t.Helper()
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

func composeLogin(t *testing.T, proxy, user string) string {
	t.Helper()
	code, b := composePost(t, proxy, "/auth", "", map[string]string{"username": user, "password": "correct-horse-9"})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(b, &tok)
	if code != 200 || tok.AccessToken == "" {
		t.Fatalf("auth through nginx: %d %s", code, b)
	}
	return tok.AccessToken
}

// composeTutorial signs up, logs in, creates a work item and opens /app/ through the proxy,
// checks what nginx publishes and what it hides, and returns the access token.
func composeTutorial(t *testing.T, proxy, public, user string) string {
	t.Helper()
	post := func(path, auth string, body any) (int, []byte) { return composePost(t, proxy, path, auth, body) }
	creds := map[string]string{"username": user, "password": "correct-horse-9"}
	if code, b := post("/signup", "", creds); code != 201 {
		t.Fatalf("signup through nginx: %d %s", code, b)
	}
	token := composeLogin(t, proxy, user)
	if code, b := post("/workitems", "JWT "+token, map[string]string{"title": "compose"}); code != 201 {
		t.Fatalf("create through nginx: %d %s", code, b)
	}
	resp, body := get(t, client(nil), proxy+"/app/", "Authorization", "Bearer "+token)
	if resp.StatusCode != 200 || !strings.Contains(body, `<span id="user">`+user+`</span>`) {
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
	return token
}

// runComposeNginx runs nginx with deploy/nginx/compose.conf, each upstream's compose name
// replaced by the given local servers (with the same parameters), on listen.
func runComposeNginx(t *testing.T, listen string, idps, wis []string) string {
	t.Helper()
	conf, err := os.ReadFile("../nginx/compose.conf")
	if err != nil {
		t.Fatal(err)
	}
	replace := map[string]string{
		"listen 8000;":                  "listen " + listen + ";",
		"root /usr/share/nginx/jwtidp;": "root " + abs(t, "../nginx/www") + ";",
	}
	for name, addrs := range map[string][]string{"idp:8080": idps, "workitems:8081": wis} {
		m := regexp.MustCompile(`server ` + regexp.QuoteMeta(name) + `((?:\s[^;]*)?);`).FindStringSubmatch(string(conf))
		if m == nil {
			t.Fatalf("compose.conf has no upstream server %s", name)
		}
		var lines []string
		for _, a := range addrs {
			lines = append(lines, "server "+a+m[1]+";")
		}
		replace[m[0]] = strings.Join(lines, "\n        ")
	}
	return runNginx(t, "../nginx/compose.conf", listen, replace)
}

// composeRequests is how many HTTP requests the process has answered, from its /metrics.
func composeRequests(t *testing.T, p *proctest.Proc) int {
	t.Helper()
	_, body := get(t, client(nil), p.URL+"/metrics")
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "http_requests_total{") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		n += int(v)
	}
	return n
}

// composeProcEnv is a replica's environment from the compose file with the given settings
// replaced (each must be there, so the test notices when the file drifts). Variables that are
// not the service's own (PGPASSWORD) stay out: the test server trusts local connections.
func composeProcEnv(t *testing.T, env composeMap, set map[string]string) []string {
	t.Helper()
	var out []string
	for k := range set {
		if _, ok := env[k]; !ok {
			t.Fatalf("the compose file no longer sets %s: %v", k, env)
		}
	}
	for _, k := range sortedKeys(env) {
		if !strings.HasPrefix(k, "IDP_") && !strings.HasPrefix(k, "WORKITEMS_") {
			continue
		}
		v := env.s(k)
		if s, ok := set[k]; ok {
			v = s
		}
		out = append(out, k+"="+v)
	}
	return out
}

// composeEnv writes .env.example with POSTGRES_PASSWORD set, as a user's .env, and returns its
// path ("" for .env.example unchanged when password is "no-password-here").
func composeEnv(t *testing.T, password string) string {
	t.Helper()
	b, err := os.ReadFile(composeEnvExample)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if password != "no-password-here" {
		if !strings.Contains(s, "\nPOSTGRES_PASSWORD=\n") {
			t.Fatalf(".env.example has no empty POSTGRES_PASSWORD= line to fill in:\n%s", s)
		}
		s = strings.Replace(s, "\nPOSTGRES_PASSWORD=\n", "\nPOSTGRES_PASSWORD="+password+"\n", 1)
	}
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// composeConfig runs docker-compose config on file with envFile as its .env (an empty one for
// ""), ignoring a developer's .env and environment, and returns the resolved file or the
// error output.
func composeConfig(t *testing.T, file, envFile string) (string, error) {
	t.Helper()
	bin := need(t, "docker-compose")
	if envFile == "" {
		envFile = filepath.Join(t.TempDir(), ".env")
		if err := os.WriteFile(envFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-f", file, "--env-file", envFile, "config")
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "POSTGRES_PASSWORD" || strings.HasPrefix(k, "IDP_") ||
			strings.HasPrefix(k, "WORKITEMS_") || strings.HasPrefix(k, "COMPOSE_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String() + stdout.String(), err
	}
	return stdout.String(), nil
}

// composeMap is a mapping of the resolved compose file.
type composeMap map[string]any

// composeModel is the compose file as Compose resolves it (docker-compose config), read
// through PyYAML, which Debian's docker-compose is written with, so it is there with it.
func composeModel(t *testing.T, file, envFile string) composeMap {
	t.Helper()
	out, err := composeConfig(t, file, envFile)
	if err != nil {
		t.Fatalf("docker-compose config %s: %v\n%s", file, err, out)
	}
	py := need(t, "python3")
	cmd := exec.Command(py, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)")
	cmd.Stdin = strings.NewReader(out)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("reading the resolved %s as YAML: %v", file, err)
	}
	var m composeMap
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (c composeMap) get(path ...string) any {
	var v any = map[string]any(c)
	for _, p := range path {
		switch m := v.(type) {
		case map[string]any:
			v = m[p]
		case composeMap:
			v = m[p]
		default:
			return nil
		}
	}
	return v
}

// m is the mapping at path (empty when there is none).
func (c composeMap) m(path ...string) composeMap {
	switch m := c.get(path...).(type) {
	case map[string]any:
		return m
	case composeMap:
		return m
	}
	return composeMap{}
}

// s is the string at path ("" when there is none).
func (c composeMap) s(path ...string) string {
	v, _ := c.get(path...).(string)
	return v
}

// str is whatever is at path, printed (a list as [a b]).
func (c composeMap) str(path ...string) string {
	if v := c.get(path...); v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
