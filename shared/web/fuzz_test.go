package web

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
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
