package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// oidcProviderDir holds the oidc-provider the connector tests install (npm ci there; CI does),
// whose node_modules the peer imports: one pinned version for both.
const oidcProviderDir = "idp/testdata/oidc-provider"

// peerClientCredentials measures panva's oidc-provider (deploy/bench/oidc-provider-peer.mjs)
// issuing client-credentials RS256 JWT access tokens under the load the IdP's figure had: the
// same client, load generator, concurrency and duration. An error (the figure is then skipped)
// when node or the package is missing or the peer does not answer a grant.
func peerClientCredentials(c *http.Client, dir string) (result, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return result{}, errors.New("node not found")
	}
	pkgDir, err := filepath.Abs(oidcProviderDir)
	if err != nil {
		return result{}, err
	}
	if _, err := os.Stat(filepath.Join(pkgDir, "node_modules", "oidc-provider", "package.json")); err != nil {
		return result{}, fmt.Errorf("no %s/node_modules/oidc-provider (npm ci there)", oidcProviderDir)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the peer
	if err != nil {
		return result{}, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(node, filepath.Join("deploy", "bench", "oidc-provider-peer.mjs"))
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "CLIENT_SECRET="+benchSecret, "OIDC_PROVIDER_DIR="+pkgDir)
	cmd.Stderr = io.Discard                               // its development-adapter warnings
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the cluster's workers stop with it
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- issuer
				io.Copy(io.Discard, out)
				return
			}
		}
		close(ready)
	}()
	var issuer string
	select {
	case i, ok := <-ready:
		if !ok {
			return result{}, errors.New("oidc-provider exited before listening")
		}
		issuer = i
	case <-time.After(60 * time.Second):
		return result{}, errors.New("oidc-provider did not listen within 60s")
	}
	grant := func() *http.Request {
		req, _ := http.NewRequest("POST", issuer+"/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("bench-service", benchSecret)
		return req
	}
	resp, err := c.Do(grant())
	if err != nil {
		return result{}, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"token_type":"Bearer"`) {
		return result{}, fmt.Errorf("oidc-provider's client-credentials grant answered %d %.200s", resp.StatusCode, body)
	}
	return load(c, *conc, *duration, grant), nil
}
