package httpapi

import (
	"net/url"
	"strings"
)

// Redirects decides where a login may send the browser back to: a path on the same host, or an
// absolute http(s) URL whose host is allowed by configuration. Everything else — "//evil",
// "https:evil", "javascript:", backslashes, user info, control characters — goes to Default.
// This is what keeps /login from being an open redirect.
type Redirects struct {
	Hosts   []string // "app.example.com", "app.example.com:8443", or ".example.com" for subdomains
	Default string
}

// Safe returns rd when it is allowed, Default otherwise.
func (rv Redirects) Safe(rd string) string {
	if rd == "" || len(rd) > 4096 || strings.ContainsRune(rd, '\\') {
		return rv.Default
	}
	for _, c := range rd {
		if c <= ' ' || c == 0x7f {
			return rv.Default
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.User != nil || u.Opaque != "" {
		return rv.Default
	}
	if u.Scheme == "" && u.Host == "" {
		if strings.HasPrefix(rd, "/") && !strings.HasPrefix(rd, "//") {
			return rd
		}
		return rv.Default
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !rv.hostAllowed(u) {
		return rv.Default
	}
	return rd
}

func (rv Redirects) hostAllowed(u *url.URL) bool {
	host, name := strings.ToLower(u.Host), strings.ToLower(u.Hostname())
	for _, h := range rv.Hosts {
		h = strings.ToLower(h)
		switch {
		case strings.HasPrefix(h, "."):
			if strings.HasSuffix(name, h) || name == h[1:] {
				return true
			}
		case h == host || h == name:
			return true
		}
	}
	return false
}
