package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"jwtidp/shared/service"
	"jwtidp/shared/service/servicetest"
)

// jsonLines fails t unless every line of log is a JSON object with time, level and msg.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON object: %q (%v)\n%s", line, err, log)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("no %q in %q", k, line)
			}
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatal("empty log")
	}
	return out
}

func TestLogFormatJSON(t *testing.T) {
	store := &fakeStore{bgRunning: new(atomic.Bool)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := service.Env{Getenv: func(k string) string {
		if k == "DEMO_LOG_FORMAT" {
			return "json"
		}
		return ""
	}}
	in := servicetest.StartEnv(t, ctx, program(store, nil), env, "demo", "--data", t.TempDir(), "--greeting", "hello")
	resp, err := http.Get(in.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	in.Stopped(t)
	var msgs []string
	for _, m := range jsonLines(t, in.Log()) {
		msgs = append(msgs, m["msg"].(string))
		if m["msg"] == "listening" && (m["addr"] != in.Addr || m["greeting"] != "hello") {
			t.Errorf("listening line lacks its fields: %v", m)
		}
	}
	if strings.Join(msgs, ",") != "listening,shutting down,stopped" {
		t.Errorf("messages %v", msgs)
	}
}

func TestLogFormatRefused(t *testing.T) {
	store := &fakeStore{bgRunning: new(atomic.Bool)}
	for _, tc := range []struct {
		args []string
		env  string
	}{
		{[]string{"demo", "--log-format", "xml"}, ""},
		{[]string{"demo"}, "logfmt"},
	} {
		env := service.Env{Getenv: func(k string) string {
			if k == "DEMO_LOG_FORMAT" {
				return tc.env
			}
			return ""
		}}
		err := program(store, nil).Run(context.Background(), append(tc.args, "--data", t.TempDir()), env)
		if err == nil || !strings.Contains(err.Error(), "--log-format (DEMO_LOG_FORMAT)") || !strings.Contains(err.Error(), "must be text or json") {
			t.Errorf("%v %q: %v", tc.args, tc.env, err)
		}
	}
}

// A secret that JSON escapes is still found by the leak search, which reads
// servicetest.Searchable's form of a log; one that it does not escape is found as it is.
func TestSearchableFindsJSONEscapedSecrets(t *testing.T) {
	for _, secret := range []string{`pass"word\with<esc>&` + "\u2028\x01", "dGhpcyBpcyBhIHRva2Vu-_x"} {
		var b bytes.Buffer
		slog.New(slog.NewJSONHandler(&b, nil)).Info("oops", "password", secret, "nested", map[string]any{"s": secret})
		if !strings.Contains(servicetest.Searchable(b.String()), secret) {
			t.Errorf("secret %q not found in %s", secret, b.String())
		}
		if strings.Contains(secret, `"`) == strings.Contains(b.String(), secret) {
			t.Errorf("the JSON handler's escaping of %q is not what the test expects: %s", secret, b.String())
		}
	}
	if got := servicetest.Searchable("time=x msg=hi\n"); got != "time=x msg=hi\n" {
		t.Errorf("a text log is searched as it is, got %q", got)
	}
}
