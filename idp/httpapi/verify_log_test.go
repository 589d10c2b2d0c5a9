package httpapi

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/shared/web"
)

// lockedBuffer is a log destination the server's goroutines write while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// /verify's access line is at debug when it lets a request through (a user's or an anonymous
// one) and at info for every refusal: a 401 or 403 to the proxy, and the 302 a browser gets
// (?redirect=1, as the Traefik and Caddy examples ask) when a rule refuses it or it must sign in.
func TestVerifyLogsOnlyRefusalsAtInfo(t *testing.T) {
	policy, probs := access.Compile(edgeRules)
	if probs != nil {
		t.Fatal(probs)
	}
	var logs lockedBuffer
	h := newIdPAt(t, time.Now, func(d *Deps) {
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		d.Access = func() *access.Policy { return policy }
		d.RemoteAddrs = web.ClientAddrs{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		d.Redirects.Hosts = []string{"public.test", "alice.test", ".net.test"}
		d.Sessions.Users = d.Sessions.Store.(auth.UserReader)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	signUp(t, srv.URL, "alice")
	alice := newPageBrowser(t, srv, "alice")
	alice.signIn("alice", "correct-horse-9")
	anon := newPageBrowser(t, srv, "anon")
	info := regexp.MustCompile(`level=INFO msg=request .*route=/verify status=(\d+)`)
	for _, c := range []struct {
		name   string
		b      *pageBrowser
		query  string
		host   string
		status int
		logged bool // an access line at info
	}{
		{"a user let through", alice, "", "alice.test", 200, false},
		{"anonymous, let through (bypass)", anon, "", "public.test", 200, false},
		{"a rule refuses", alice, "", "public.test/admin", 403, true},
		{"a rule refuses a browser: 302", alice, "?redirect=1", "public.test/admin", 302, true},
		{"sign in first", anon, "", "alice.test", 401, true},
		{"sign in first, a browser: 302", anon, "?redirect=1", "alice.test", 302, true},
	} {
		host, path, _ := strings.Cut(c.host, "/")
		logs.take()
		a := c.b.do("GET", "/verify"+c.query, nil, "X-Forwarded-Proto", "http", "X-Forwarded-Host", host,
			"X-Forwarded-Uri", "/"+path, "X-Forwarded-Method", "GET")
		line := info.FindStringSubmatch(logs.take())
		if a.status != c.status || (line != nil) != c.logged || (line != nil && line[1] != strconv.Itoa(c.status)) {
			t.Errorf("%s: answered %d (want %d), access line at info %v (want %v)", c.name, a.status, c.status, line, c.logged)
		}
	}
}
