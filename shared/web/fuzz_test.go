package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

type fuzzReq struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Done     *bool  `json:"done"`
}

func (r fuzzReq) Valid() map[string]string {
	if r.Username == "" {
		return map[string]string{"username": "required"}
	}
	return nil
}

// FuzzDecode: any body and content type gets either a decoded value or a client error with a
// message — never a panic, never an internal error. What is accepted is valid UTF-8 and names
// only the fields, spelt exactly as tagged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"username":"a","password":"b"}`, `{"username":"a","done":true}`, `{`, `[]`, `null`,
		`{"username":"a"}{}`, `{"x":1}`, `[[[[[[[[[[]]]]]]]]]]`, `{"username":"\ud800"}`, `{"username":1}`, "",
		`{"USERNAME":"a"}`, `{"username":"a","Password":"b"}`, `{"username":"a","username":"b"}`, "{\"username\":\"a\xff\"}",
		`{"username":"\ud83d\ude00"}`, `{"username":"a"}}`} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{"username":"a"}`), "application/json; charset=utf-8")
	f.Add([]byte(`{"username":"a"}`), "text/plain")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		var v fuzzReq
		err := Decode(httptest.NewRecorder(), r, &v)
		if err == nil {
			if v.Username == "" {
				t.Fatalf("decoded %q without its required field", body)
			}
			if !utf8.Valid(body) {
				t.Fatalf("accepted invalid UTF-8 %q", body)
			}
			var members map[string]json.RawMessage
			if err := json.Unmarshal(body, &members); err != nil {
				t.Fatalf("accepted %q: %v", body, err)
			}
			for name := range members {
				if name != "username" && name != "password" && name != "done" {
					t.Fatalf("accepted %q with the member %q", body, name)
				}
			}
			return
		}
		switch apperr.Code(err) {
		case apperr.EINVALID, apperr.ETOOLARGE, apperr.EUNSUPPORTED:
		default:
			t.Fatalf("body %q, type %q: %v", body, ct, err)
		}
		if apperr.Message(err) == "" {
			t.Fatal("error without a message")
		}
	})
}

// FuzzClientAddrsOf holds ClientAddrs.Of, which reads X-Forwarded-For from the right without
// joining its lines, to the plain reading it replaced: every line joined with commas, split,
// and the hops walked from the right past the trusted proxies, a malformed hop ending the walk.
func FuzzClientAddrsOf(f *testing.F) {
	for _, s := range [][2]string{{"203.0.113.9", ""}, {"203.0.113.9, 10.0.0.1", ""}, {"10.0.0.1,203.0.113.9", "10.0.0.2"},
		{"", ""}, {",", "203.0.113.9"}, {"x, 10.0.0.1", ""}, {" 2001:db8::1 ,::ffff:10.0.0.1", ""}, {"10.0.0.1", "10.0.0.2,,"},
		{"203.0.113.9,", ""}, {"::ffff:203.0.113.9", "10.0.0.3"}} {
		f.Add(s[0], s[1], "10.0.0.1:5000")
	}
	f.Add("203.0.113.9", "", "[::1]:80")
	f.Add("203.0.113.9", "", "nonsense")
	addrs := ClientAddrs{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	reference := func(r *http.Request) string {
		host, peer, err := peerOf(r)
		if err != nil || !addrs.trusted(peer) {
			return host
		}
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			if !addrs.trusted(a) {
				return a.Unmap().String()
			}
		}
		return host
	}
	f.Fuzz(func(t *testing.T, first, second, remote string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if first != "" || second != "" {
			r.Header.Add("X-Forwarded-For", first)
		}
		if second != "" {
			r.Header.Add("X-Forwarded-For", second)
		}
		if got, want := addrs.Of(r), reference(r); got != want {
			t.Fatalf("Of(%q, %q from %q) = %q, the joined reading says %q", first, second, remote, got, want)
		}
	})
}
