package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/shared/proctest"
)

// kill -9 in the middle of a signup load: every signup that was answered 201 logs in after a
// restart, and the store checks clean.
func TestKill9DuringSignupsLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	p := startIDPBinary(t, dir, "--rate-limit", "0")
	var mu sync.Mutex
	var acked []string
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				user := fmt.Sprintf("load-%d-%d", w, i)
				b, _ := json.Marshal(map[string]string{"username": user, "password": "correct-horse-9"})
				resp, err := http.Post(p.URL+"/signup", "application/json", bytes.NewReader(b))
				if err != nil {
					return // the process is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 201 {
					mu.Lock()
					acked = append(acked, user)
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once the load is well under way (twice the acknowledgements the test needs).
	proctest.Eventually(10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 40
	})
	p.Kill()
	stop.Store(true)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d signups before the kill: the test proves little", len(acked))
	}
	db, err := boltdb.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Check(); err != nil {
		t.Fatalf("store after kill -9: %v", err)
	}
	db.Close()
	p2 := startIDP(t, dir, "--rate-limit", "0", "--throttle-failures", "0")
	for _, u := range acked {
		if a := authAs(t, p2.URL, u, "correct-horse-9"); a.status != 200 {
			t.Fatalf("acknowledged signup %s does not log in after kill -9: %d", u, a.status)
		}
	}
	t.Logf("%d acknowledged signups, all present after kill -9", len(acked))
}

// A disk that fills up (a file-size limit, as root can set): writes answer 503 with a clear
// message, the process stays up and serves what it can, and the failure is logged once per
// burst, not per request.
func TestDiskFull(t *testing.T) {
	need(t, "bash")
	dir := t.TempDir()
	args := append([]string{"-c", `ulimit -f 200; exec "$0" "$@"`, idpBin, "serve", "--addr", "127.0.0.1:0", "--data", dir,
		"--rate-limit", "0"}, proctest.FastArgon...)
	p := proctest.Start(t, "bash", args)
	signup(t, p.URL, "early", "correct-horse-9")
	var full answer
	n := 0
	for ; n < 20000; n++ {
		b, _ := json.Marshal(map[string]string{"username": fmt.Sprint("filler-", n), "password": "correct-horse-9-" + strings.Repeat("x", 500)})
		full = do(t, "POST", p.URL+"/signup", "application/json", bytes.NewReader(b))
		if full.status != 201 {
			break
		}
	}
	if full.status != 503 || !strings.Contains(string(full.body), "Storage is unavailable") || full.header.Get("Retry-After") == "" {
		t.Fatalf("after %d signups: %d %s; want 503 saying storage is unavailable", n, full.status, full.body)
	}
	for range 20 { // a burst of failing writes
		do(t, "POST", p.URL+"/signup", "application/json", strings.NewReader(`{"username":"more-users","password":"correct-horse-9"}`))
	}
	// Still up: JWKS, and logins of existing users (with no refresh token while writes fail).
	if a := do(t, "GET", p.URL+"/.well-known/jwks.json", "", nil); a.status != 200 {
		t.Fatalf("JWKS on a full disk: %d", a.status)
	}
	a := authAs(t, p.URL, "early", "correct-horse-9")
	if a.status != 200 || a.json(t)["access_token"] == nil {
		t.Fatalf("login of an existing user on a full disk: %d %s", a.status, a.body)
	}
	if c := strings.Count(p.Log(), "storage writes are failing"); c != 1 {
		t.Fatalf("the storage failure was logged %d times for one burst, want once", c)
	}
}

func TestStartOnUnwritableFolderNamesIt(t *testing.T) {
	bad := "/dev/null/idp-data"
	out, err := runIDP([]string{"--addr", "127.0.0.1:0", "--data", bad})
	if err == nil || !strings.Contains(out, bad) {
		t.Fatalf("start on %s: %v %s; want an error naming the folder", bad, err, out)
	}
}

// Slowloris: connections that trickle half a request are cut off at the header timeout, while
// real requests are answered all along.
func TestSlowClientsCutOff(t *testing.T) {
	p := startIDP(t, t.TempDir(), "--read-header-timeout", "1s")
	var conns []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "))
		conns = append(conns, c)
	}
	if a := do(t, "GET", p.URL+"/.well-known/jwks.json", "", nil); a.status != 200 {
		t.Fatalf("a real request while slow clients hang: %d", a.status)
	}
	// Wall time is the subject: the 1s read-header timeout must run out on the server's own
	// clock before the slow connections are checked.
	time.Sleep(1500 * time.Millisecond)
	closed := 0
	for _, c := range conns {
		// The server must end each of them: an EOF or a 408 answer. A read that merely times
		// out means the connection is still being held open.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) && (err != nil || bytes.Contains(buf[:n], []byte("408"))) {
			closed++
		}
		c.Close()
	}
	if closed != len(conns) {
		t.Fatalf("%d of %d slow connections were cut off", closed, len(conns))
	}
}

// kill -9 during a refresh load, with batched commits: every refresh token that was answered is
// known to the store after a restart — still live, or spent by a refresh that committed while
// its answer was lost — and never unknown, which would mean a lost write.
func TestKill9DuringRefreshesLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	p := startIDPBinary(t, dir, "--rate-limit", "0")
	signup(t, p.URL, "refresher", "correct-horse-9")
	const workers = 8
	last := make([]string, workers)
	for w := range workers {
		last[w] = login(t, p.URL, "refresher", "correct-horse-9")["refresh_token"].(string)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := http.PostForm(p.URL+"/token", map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {last[w]}})
				if err != nil {
					return
				}
				var m map[string]any
				json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return
				}
				last[w] = m["refresh_token"].(string)
				proctest.Secret(last[w])
				acked.Add(1)
			}
		}()
	}
	// Kill once the load is well under way (twice the acknowledgements the test needs).
	proctest.Eventually(10*time.Second, func() bool { return acked.Load() >= 100 })
	p.Kill()
	stop.Store(true)
	wg.Wait()
	if acked.Load() < 50 {
		t.Fatalf("only %d refreshes before the kill", acked.Load())
	}
	p2 := startIDP(t, dir, "--rate-limit", "0")
	for w := range workers {
		refreshGrant(t, p2.URL, last[w])
	}
	// (Checked: a never-issued token here makes this fail.)
	if strings.Contains(p2.Log(), `reason="unknown token"`) {
		t.Fatalf("an acknowledged refresh token is unknown after kill -9:\n%s", p2.Log())
	}
	t.Logf("%d acknowledged refreshes; every last token known after kill -9", acked.Load())
}

// readOnly bind-mounts dir read-only over itself (root ignores file modes, so a read-only
// mount is the honest way to make a folder unwritable) and undoes it when the test ends.
func bindMount(t *testing.T, dir string) func(ro bool) {
	t.Helper()
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		proctest.Integration(t, "cannot bind-mount here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return func(ro bool) {
		opt := "remount,bind,rw"
		if ro {
			opt = "remount,bind,ro"
		}
		if out, err := exec.Command("mount", "-o", opt, dir).CombinedOutput(); err != nil {
			t.Fatalf("mount -o %s: %v %s", opt, err, out)
		}
	}
}

// A start on a data folder that is read-only (a read-only mount: it cannot be made so under a
// running process, which holds the file open for writing, so the running case is the full-disk
// test's) exits with a message that names the folder.
func TestReadOnlyDataFolder(t *testing.T) {
	dir := t.TempDir()
	p := startIDP(t, dir)
	signup(t, p.URL, "reader", "correct-horse-9")
	p.Stop()
	setRO := bindMount(t, dir)
	setRO(true)
	out, err := runIDP([]string{"--addr", "127.0.0.1:0", "--data", dir})
	if err == nil || !strings.Contains(out, dir) {
		t.Fatalf("start on a read-only folder: %v %s; want an error naming it", err, out)
	}
	setRO(false)
}
