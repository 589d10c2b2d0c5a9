package web

import (
	"bytes"
	"net/http/httptest"
	"testing"

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
// message — never a panic, never an internal error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"username":"a","password":"b"}`, `{"username":"a","done":true}`, `{`, `[]`, `null`,
		`{"username":"a"}{}`, `{"x":1}`, `[[[[[[[[[[]]]]]]]]]]`, `{"username":"\ud800"}`, `{"username":1}`, ""} {
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
