package httpapi

import (
	"log/slog"
	"regexp"
	"strconv"
	"testing"
	"time"

	"jwtidp/shared/proctest"
)

// /verify's access line is at debug when it lets a request through (a user's or an anonymous
// one) and at info for every refusal: a 401 or 403 to the proxy, and the 302 a browser gets
// (?redirect=1, as the Traefik and Caddy examples ask) when a rule refuses it or it must sign in.
func TestVerifyLogsOnlyRefusalsAtInfo(t *testing.T) {
	var logs proctest.LogBuffer
	srv, _ := edgeIdPWith(t, time.Now, &edgeRules, func(d *Deps) { d.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	signUp(t, srv.URL, "alice")
	alice := newPageBrowser(t, srv, "alice")
	alice.signIn("alice", "correct-horse-9")
	anon := newPageBrowser(t, srv, "anon")
	info := regexp.MustCompile(`level=INFO msg=request .*route=/verify status=(\d+)`)
	for _, c := range []struct {
		name     string
		b        *pageBrowser
		path     string
		original string
		status   int
		logged   bool // an access line at info
	}{
		{"a user let through", alice, "/verify", "http://alice.test/", 200, false},
		{"anonymous, let through (bypass)", anon, "/verify", "http://public.test/", 200, false},
		{"a rule refuses", alice, "/verify", "http://public.test/admin", 403, true},
		{"a rule refuses a browser: 302", alice, "/verify?redirect=1", "http://public.test/admin", 302, true},
		{"sign in first", anon, "/verify", "http://alice.test/", 401, true},
		{"sign in first, a browser: 302", anon, "/verify?redirect=1", "http://alice.test/", 302, true},
	} {
		before := len(logs.String())
		a := c.b.verifyAt(c.path, "GET", c.original)
		// The access line is written before the answer leaves the server (the middleware's
		// deferred call returns before net/http flushes it), so it is there by now.
		line := info.FindStringSubmatch(logs.String()[before:])
		if a.status != c.status || (line != nil) != c.logged || (line != nil && line[1] != strconv.Itoa(c.status)) {
			t.Errorf("%s: answered %d (want %d), access line at info %v (want %v)", c.name, a.status, c.status, line, c.logged)
		}
	}
}
