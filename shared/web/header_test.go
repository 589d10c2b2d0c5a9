package web

import (
	"net/http"
	"testing"
)

func TestHeaderIsGetForCanonicalNames(t *testing.T) {
	h := http.Header{}
	h.Add("x-forwarded-uri", "/a") // stored canonical, as the server stores what it reads
	h.Add("X-Forwarded-Uri", "/b")
	if got := Header(h, "X-Forwarded-Uri"); got != "/a" || got != h.Get("X-Forwarded-Uri") {
		t.Errorf("Header = %q, Get = %q; want the first value, /a", got, h.Get("X-Forwarded-Uri"))
	}
	if got := Header(h, "X-Forwarded-Host"); got != "" {
		t.Errorf("missing header: %q", got)
	}
}
