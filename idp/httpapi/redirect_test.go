package httpapi

import "testing"

func TestRedirectsRefuseOpenRedirects(t *testing.T) {
	rv := Redirects{Hosts: []string{"app.example.com", ".corp.example", "127.0.0.1:8000"}, Default: "/"}
	for rd, want := range map[string]string{
		"/dashboard?x=1":                           "/dashboard?x=1",
		"https://app.example.com/a?b=c":            "https://app.example.com/a?b=c",
		"http://APP.example.com:8443/":             "http://APP.example.com:8443/",
		"https://wiki.corp.example/page":           "https://wiki.corp.example/page",
		"https://corp.example/":                    "https://corp.example/",
		"http://127.0.0.1:8000/x":                  "http://127.0.0.1:8000/x",
		"":                                         "/",
		"//evil.example/":                          "/",
		"///evil.example/":                         "/",
		"https:evil.example":                       "/",
		"https:/evil.example":                      "/",
		"javascript:alert(1)":                      "/",
		"JavaScript:alert(1)":                      "/",
		"data:text/html,<script>":                  "/",
		"/\\evil.example":                          "/",
		"\\\\evil.example":                         "/",
		"https://app.example.com\\@evil.example":   "/",
		"https://app.example.com@evil.example/":    "/",
		"https://user:pw@app.example.com/":         "/",
		"https://evil.example/":                    "/",
		"https://app.example.com.evil.example/":    "/",
		"https://evilcorp.example/":                "/",
		"http://127.0.0.1:9999/":                   "/",
		"ftp://app.example.com/":                   "/",
		"/\tjavascript:x":                          "/",
		"https://app.example.com/\r\nSet-Cookie:x": "/",
		"relative/path":                            "/",
		"%2F%2Fevil.example":                       "/",
	} {
		if got := rv.Safe(rd); got != want {
			t.Errorf("Safe(%q) = %q, want %q", rd, got, want)
		}
	}
}
