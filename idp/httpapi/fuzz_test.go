package httpapi

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzRedirectsSafe: whatever rd is, the login sends the browser either to the default or to a
// same-host path or an allowed host — never anywhere else.
func FuzzRedirectsSafe(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil", "https:evil", "javascript:alert(1)", "/\\evil",
		"https://app.example.com/x", "https://app.example.com@evil", "http://sub.corp.example/", "%2f%2fevil", "/\t/evil"} {
		f.Add(s)
	}
	rv := Redirects{Hosts: []string{"app.example.com", ".corp.example"}, Default: "/home"}
	f.Fuzz(func(t *testing.T, rd string) {
		got := rv.Safe(rd)
		if got == rv.Default {
			return
		}
		if got != rd || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n ") {
			t.Fatalf("Safe(%q) = %q", rd, got)
		}
		u, err := url.Parse(got)
		if err != nil || u.User != nil {
			t.Fatalf("Safe(%q) = %q: not a clean URL", rd, got)
		}
		if u.Host != "" {
			h := strings.ToLower(u.Hostname())
			if h != "app.example.com" && h != "corp.example" && !strings.HasSuffix(h, ".corp.example") {
				t.Fatalf("Safe(%q) = %q: host %q is not allowed", rd, got, h)
			}
		} else if !strings.HasPrefix(got, "/") {
			t.Fatalf("Safe(%q) = %q: neither a path nor an allowed URL", rd, got)
		}
	})
}
