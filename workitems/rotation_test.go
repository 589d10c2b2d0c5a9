package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/proctest"
)

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Header["kid"].(string)
}

func jwksKIDs(url string) (map[string]bool, error) {
	resp, err := http.Get(url + "/.well-known/jwks.json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, err
	}
	kids := map[string]bool{}
	for _, k := range set.Keys {
		kids[k.Kid] = true
	}
	return kids, nil
}

func currentKID(url, admin string) (string, error) {
	req, _ := http.NewRequest("GET", url+"/admin/keys", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var env struct{ Result []struct{ KID, State string } }
	json.NewDecoder(resp.Body).Decode(&env)
	for _, k := range env.Result {
		if k.State == "current" {
			return k.KID, nil
		}
	}
	return "", nil
}

// Clients call the work-item service continuously with an old token and the freshest one while
// the IdP rotates three times, a second apart: no request may fail, every fresh token is
// accepted at once, and the JWKS always holds the key that is signing.
func TestRotationUnderLoadHasNoFailures(t *testing.T) {
	const admin = "test-admin-secret"
	idp, wi := system(t, "--admin-token", admin)
	old := token(t, idp.URL, "rotor")
	var fresh atomic.Value
	fresh.Store(old)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, failures, jwksChecks atomic.Int64
	var failMu sync.Mutex
	var failMsgs []string
	fail := func(msg string) {
		failures.Add(1)
		failMu.Lock()
		if len(failMsgs) < 5 {
			failMsgs = append(failMsgs, msg)
		}
		failMu.Unlock()
	}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok := old
				if i%2 == 1 {
					tok = fresh.Load().(string)
				}
				req, _ := http.NewRequest("GET", wi.URL+"/workitems", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				calls.Add(1)
				if err != nil {
					fail(err.Error())
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail(resp.Status + " for kid " + kidOf(t, tok))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			cur, err := currentKID(idp.URL, admin)
			kids, err2 := jwksKIDs(idp.URL)
			if err != nil || err2 != nil || !kids[cur] {
				fail("JWKS lacks the current key " + cur)
			}
			jwksChecks.Add(1)
		}
	}()

	// Between rotations, and after the last, let a stretch of traffic and JWKS checks run:
	// measured in requests, not in wall time.
	traffic := func() {
		c, j := calls.Load(), jwksChecks.Load()
		proctest.Eventually(20*time.Second, func() bool { return calls.Load() >= c+40 && jwksChecks.Load() >= j+20 })
	}
	seen := map[string]bool{kidOf(t, old): true}
	for r := range 3 {
		traffic()
		req, _ := http.NewRequest("POST", idp.URL+"/admin/keys/rotate", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("rotation %d: %v %v", r+1, err, resp)
		}
		resp.Body.Close()
		creds := map[string]string{"username": "rotor", "password": "correct-horse-9"}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(call(t, "POST", idp.URL+"/auth", "", creds).body, &tok)
		kid := kidOf(t, tok.AccessToken)
		if seen[kid] {
			t.Fatalf("rotation %d: the fresh token is signed by an earlier key %s", r+1, kid)
		}
		seen[kid] = true
		// Accepted at once, by a service whose scheduled JWKS refresh is minutes away.
		if a := call(t, "GET", wi.URL+"/workitems", "Bearer "+tok.AccessToken, nil); a.status != 200 {
			t.Fatalf("rotation %d: fresh token refused: %d %s", r+1, a.status, a.body)
		}
		fresh.Store(tok.AccessToken)
	}
	traffic()
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed: %s", failures.Load(), calls.Load(), strings.Join(failMsgs, "; "))
	}
	if calls.Load() < 100 || jwksChecks.Load() < 50 {
		t.Fatalf("too little traffic to mean anything: %d calls, %d JWKS checks", calls.Load(), jwksChecks.Load())
	}
	t.Logf("%d calls and %d JWKS checks across 3 rotations, none failed", calls.Load(), jwksChecks.Load())
}

// The README's rotation demo runs against real processes, so it cannot rot.
func TestRotationDemoScript(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "base64"} {
		proctest.Need(t, tool)
	}
	const script = "../deploy/rotation-demo.sh"
	// Read here, so that Go's test cache reruns this test when the script changes.
	if _, err := os.ReadFile(script); err != nil {
		t.Fatal(err)
	}
	idp, wi := system(t, "--admin-token", "demo")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "IDP_URL="+idp.URL, "WORKITEMS_URL="+wi.URL, "IDP_ADMIN_TOKEN=demo")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "answers 200") != 3 {
		t.Fatalf("demo: %v\n%s", err, out)
	}
}
