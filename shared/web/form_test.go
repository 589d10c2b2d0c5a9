package web

import (
	"io"
	"maps"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

const formType = "application/x-www-form-urlencoded"

func TestDecodeForm(t *testing.T) {
	for _, tt := range []struct {
		name, ct, body string
		want           url.Values // for an accepted form
		code, msg      string     // for a refused one
	}{
		{name: "ok", body: "grant_type=refresh_token&refresh_token=a%2Bb+c", want: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"a+b c"}}},
		{name: "empty", body: "", want: url.Values{}},
		{name: "empty pairs skipped", body: "a=1&&b=", want: url.Values{"a": {"1"}, "b": {""}}},
		{name: "name without value", body: "a", want: url.Values{"a": {""}}},
		{name: "UTF-8", body: "name=%C3%A9t%C3%A9&raw=été", want: url.Values{"name": {"été"}, "raw": {"été"}}},
		{name: "charset parameter", ct: formType + "; charset=UTF-8", body: "a=1", want: url.Values{"a": {"1"}}},
		{name: "query string ignored", body: "a=1", want: url.Values{"a": {"1"}}},

		{name: "repeated", body: "scope=a&scope=b", code: apperr.EINVALID, msg: `Parameter "scope" is repeated`},
		{name: "repeated, spelt differently", body: "scope=a&%73cope=b", code: apperr.EINVALID, msg: `Parameter "scope" is repeated`},
		{name: "repeated, same value", body: "a=1&a=1", code: apperr.EINVALID, msg: `Parameter "a" is repeated`},
		{name: "repeated without value", body: "a&a", code: apperr.EINVALID, msg: `Parameter "a" is repeated`},
		{name: "invalid UTF-8 value", body: "a=%FF", code: apperr.EINVALID, msg: `Parameter "a" is not valid UTF-8`},
		{name: "invalid raw UTF-8 value", body: "a=\xc3", code: apperr.EINVALID, msg: `Parameter "a" is not valid UTF-8`},
		{name: "invalid UTF-8 name", body: "%C3=1", code: apperr.EINVALID, msg: `Parameter name "\xc3" is not valid UTF-8`},
		{name: "encoded surrogate", body: "a=%ED%A0%80", code: apperr.EINVALID, msg: `Parameter "a" is not valid UTF-8`},
		{name: "bad escape", body: "a=%zz", code: apperr.EINVALID, msg: "Request body is not a valid form: bad %-escape"},
		{name: "truncated escape", body: "a=1&b=%4", code: apperr.EINVALID, msg: "Request body is not a valid form: bad %-escape"},
		{name: "bad escape in a name", body: "%=1", code: apperr.EINVALID, msg: "Request body is not a valid form: bad %-escape"},
		{name: "semicolon", body: "a=1;b=2", code: apperr.EINVALID, msg: "Request body is not a valid form: ';' is not a separator"},

		{name: "no content type", ct: "-", body: "a=1", code: apperr.EUNSUPPORTED, msg: "Content-Type must be application/x-www-form-urlencoded"},
		{name: "JSON", ct: "application/json", body: `{"a":1}`, code: apperr.EUNSUPPORTED, msg: "Content-Type must be application/x-www-form-urlencoded"},
		{name: "multipart", ct: "multipart/form-data; boundary=x", body: "", code: apperr.EUNSUPPORTED, msg: "Content-Type must be application/x-www-form-urlencoded"},
		{name: "malformed content type", ct: formType + "; ;", body: "a=1", code: apperr.EUNSUPPORTED, msg: "Content-Type must be application/x-www-form-urlencoded"},
		{name: "too large", body: "a=" + strings.Repeat("b", MaxBodyBytes), code: apperr.ETOOLARGE, msg: "Request body is larger than 65536 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/token?b=2&a=3", strings.NewReader(tt.body))
			switch tt.ct {
			case "":
				r.Header.Set("Content-Type", formType)
			case "-":
			default:
				r.Header.Set("Content-Type", tt.ct)
			}
			form, err := DecodeForm(httptest.NewRecorder(), r)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !maps.EqualFunc(form, tt.want, slices.Equal) {
					t.Fatalf("got %q, want %q", form, tt.want)
				}
				return
			}
			if apperr.Code(err) != tt.code || apperr.Message(err) != tt.msg {
				t.Fatalf("got %v, want %s: %s", err, tt.code, tt.msg)
			}
		})
	}
}

// A body declared too large is refused before a byte is read, and the connection closed.
func TestDecodeFormTooLargeUnread(t *testing.T) {
	body := &countingReader{r: strings.NewReader("a=1")}
	r := httptest.NewRequest("POST", "/", body)
	r.Header.Set("Content-Type", formType)
	r.ContentLength = MaxBodyBytes + 1
	w := httptest.NewRecorder()
	_, err := DecodeForm(w, r)
	if apperr.Code(err) != apperr.ETOOLARGE || Status(apperr.Code(err)) != 413 {
		t.Fatalf("got %v", err)
	}
	if body.n != 0 || w.Header().Get("Connection") != "close" {
		t.Fatalf("read %d bytes; Connection %q", body.n, w.Header().Get("Connection"))
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzDecodeForm: never a panic; what is accepted is valid UTF-8, has each name once, and
// survives url.Values.Encode and decoding again unchanged.
func FuzzDecodeForm(f *testing.F) {
	for _, s := range []string{"grant_type=refresh_token&refresh_token=abc", "a=1&a=2", "a=%FF", "a=%zz", "a=1;b=2",
		"a", "&&", "=", "==", "%3D=%26", "a+b=c+d", "a=%C3%A9&b=été", "a=1&%61=2", "\xff=1", "a=\x00"} {
		f.Add([]byte(s), formType)
	}
	f.Add([]byte("a=1"), "application/json")
	f.Add([]byte("a=1"), formType+"; charset=utf-8")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		decode := func(body []byte) (url.Values, error) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
			r.Header.Set("Content-Type", ct)
			return DecodeForm(httptest.NewRecorder(), r)
		}
		form, err := decode(body)
		if err != nil {
			switch apperr.Code(err) {
			case apperr.EINVALID, apperr.ETOOLARGE, apperr.EUNSUPPORTED:
			default:
				t.Fatalf("body %q, type %q: %v", body, ct, err)
			}
			if apperr.Message(err) == "" {
				t.Fatal("error without a message")
			}
			return
		}
		for k, vs := range form {
			if len(vs) != 1 {
				t.Fatalf("body %q: %q has %d values", body, k, len(vs))
			}
			if !utf8.ValidString(k) || !utf8.ValidString(vs[0]) {
				t.Fatalf("body %q: accepted invalid UTF-8 in %q=%q", body, k, vs[0])
			}
		}
		enc := form.Encode()
		var again url.Values
		if len(enc) <= MaxBodyBytes {
			again, err = decode([]byte(enc))
		} else { // escaping made it longer than DecodeForm takes
			again, err = url.ParseQuery(enc)
		}
		if err != nil {
			t.Fatalf("body %q: re-encoded as %q, refused: %v", body, enc, err)
		}
		if !maps.EqualFunc(form, again, slices.Equal) {
			t.Fatalf("body %q: decoded %q, re-encoded %q, decoded again %q", body, form, enc, again)
		}
	})
}
