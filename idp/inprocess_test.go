package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"jwtidp/shared/proctest"
	"jwtidp/shared/service/servicetest"
)

// startInProcess runs `idp serve` in this process on port 0 with its data in a temporary folder.
func startInProcess(t *testing.T, ctx context.Context) *servicetest.Instance {
	args := append([]string{"idp", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, proctest.FastArgon...)
	return servicetest.Start(t, ctx, program(), args...)
}

// Two IdPs run in one process, each with its own port, store, flag set, metrics registry and
// logger; cancelling the context stops both cleanly.
func TestRunInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ins := []*servicetest.Instance{startInProcess(t, ctx), startInProcess(t, ctx)}
	for _, in := range ins {
		for _, path := range []string{"/healthz", "/metrics"} {
			resp, err := http.Get(in.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s%s answered %d", in.URL, path, resp.StatusCode)
			}
		}
	}
	cancel()
	for _, in := range ins {
		in.Stopped(t)
	}
}

// The "login" line carries the request_id of its access-log line, though no handler passes it.
func TestLoginLineJoinsAccessLog(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := startInProcess(t, ctx)
	body := `{"username":"joiner","password":"correct-horse-9"}`
	for _, path := range []string{"/signup", "/auth"} {
		resp, err := http.Post(in.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	cancel()
	in.Stopped(t) // the access-log line is written after the answer has gone out
	log := in.Log()
	login := regexp.MustCompile(`msg=login .*request_id=(\w+)`).FindStringSubmatch(log)
	if login == nil {
		t.Fatalf("no login line with a request_id:\n%s", log)
	}
	if !regexp.MustCompile(`msg=request request_id=` + login[1] + ` .*route="POST /auth"`).MatchString(log) {
		t.Fatalf("no access-log line for POST /auth with request_id=%s:\n%s", login[1], log)
	}
}
