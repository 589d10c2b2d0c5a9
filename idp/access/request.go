package access

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// NewRequest reads the original request from what the proxy said of it: its host (a Host
// header's form, a port allowed), its request URI (path and query), its method, and the
// client's address ("" when unknown). The path is decoded and cleaned as the app will see it
// ("/a/../admin" is "/admin", "/%61dmin" is "/admin", "/admin;x=1" is "/admin"), keeping a
// trailing slash, so that a rule on a path cannot be walked around by spelling it
// differently; the query follows as sent. A path whose decoding apps disagree on (an encoded
// slash, backslash, dot or question mark) is an error. An error when the host or URI cannot be read: the caller refuses the request.
func NewRequest(host, uri, method, clientIP string) (Request, error) {
	h, err := cleanHost(host)
	if err != nil {
		return Request{}, err
	}
	p, err := cleanURI(uri)
	if err != nil {
		return Request{}, err
	}
	if method == "" {
		method = "GET"
	}
	if !validMethod(method) {
		return Request{}, errors.New("the method is not an HTTP method")
	}
	r := Request{Host: h, URI: p, Method: strings.ToUpper(method)}
	if a, err := netip.ParseAddr(clientIP); err == nil {
		r.IP = a
	}
	return r, nil
}

func cleanHost(host string) (string, error) {
	h := host
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			h = h[:end+1] // "[::1]:8000" → "[::1]"
		}
	} else if strings.IndexByte(h, ':') >= 0 { // no port, no SplitHostPort: its error is a copy per request
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if !validHost(h) {
		return "", errors.New("the host is not a host name")
	}
	return h, nil
}

func cleanURI(uri string) (string, error) {
	if plainURI(uri) {
		return uri, nil // what the decoding below would make of it, without the copies
	}
	return decodeURI(uri)
}

// plainURI reports whether uri is a request URI that every reading of it agrees on and that is
// already clean, so that decodeURI would return it as it is: a path of unreserved characters
// and slashes with no empty, "." or ".." segment (a trailing slash aside), and a query, if any,
// of printable ASCII. Behind a proxy most requests are such; anything else is decoded.
func plainURI(uri string) bool {
	p, q, _ := strings.Cut(uri, "?")
	if p == "" || p[0] != '/' {
		return false
	}
	seg := 0 // where the current segment's slash is
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if s := p[seg+1 : i]; s == "" && i < len(p) || s == "." || s == ".." {
				return false
			}
			seg = i
			continue
		}
		if c := p[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	for i := 0; i < len(q); i++ {
		if q[i] <= ' ' || q[i] >= 0x7f {
			return false
		}
	}
	return true
}

// decodeURI is cleanURI for any request URI.
func decodeURI(uri string) (string, error) {
	if !strings.HasPrefix(uri, "/") {
		return "", errors.New("the URI is not a path")
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Path == "" || u.Opaque != "" {
		return "", errors.New("the URI is not a path")
	}
	raw := u.EscapedPath()
	// An encoded slash, backslash, dot or question mark is decoded here but not by every app:
	// "/admin/..%2f" is "/" to a decoder and a path under /admin to a router that splits the
	// raw path. No reading is safe for every app behind the proxy, so such a path is refused,
	// and so is a backslash, a separator to some servers.
	l := strings.ToLower(raw)
	for _, bad := range []string{"%2f", "%5c", "%2e", "%3f", `\`} {
		if strings.Contains(l, bad) {
			return "", errors.New("the path holds an encoded slash, backslash, dot or question mark, or a backslash")
		}
	}
	// Path parameters ("/admin;jsessionid=1/x") are dropped, as Java servers do before
	// routing, so that "/admin;x" is judged as /admin.
	segs := strings.Split(raw, "/")
	for i, seg := range segs {
		seg, _, _ = strings.Cut(seg, ";")
		if segs[i], err = url.PathUnescape(seg); err != nil {
			return "", errors.New("the URI is not a path")
		}
	}
	decoded := strings.Join(segs, "/")
	p := path.Clean(decoded)
	if strings.HasSuffix(decoded, "/") && p != "/" {
		p += "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		p += "?" + u.RawQuery
	}
	return p, nil
}
