package web

import "net/http"

// Header is h's first value of name, as h.Get(name) is, for a name already in canonical form
// (http.CanonicalHeaderKey's): net/http's server stores every header it reads under that
// form, and h.Get canonicalizes its argument on every call — a scan of the name, and a copy
// of it when it is not canonical. The paths every proxied request takes (/verify, the client's
// address) read their few headers through this.
func Header(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
