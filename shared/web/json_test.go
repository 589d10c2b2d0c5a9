package web

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"jwtidp/shared/apperr"
)

type extras struct {
	ID    json.RawMessage `json:"id"`
	Owner json.RawMessage `json:"owner"`
}

type decodeReq struct {
	Username string            `json:"username"`
	Password string            `json:"password"`
	Done     *bool             `json:"done"`
	Labels   map[string]string `json:"labels"`
	Items    []struct {
		Name string `json:"name"`
	} `json:"items"`
	Any any `json:"any"`
	extras
}

func (r decodeReq) Valid() map[string]string {
	if r.Username == "" {
		return map[string]string{"username": `Field "username" is required`}
	}
	return nil
}

func TestDecode(t *testing.T) {
	big := `{"username":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	for _, tt := range []struct {
		name, ct, body string
		code, msg      string // code "" means accepted
	}{
		{name: "ok", body: `{"username":"a","password":"b","done":true}`},
		{name: "ok, escaped name", body: `{"\u0075sername":"a"}`},
		{name: "ok, embedded fields", body: `{"username":"a","id":5,"owner":{"x":1}}`},
		{name: "ok, nested exact names", body: `{"username":"a","items":[{"name":"x"},{"name":"y"}]}`},
		{name: "ok, map keys are free", body: `{"username":"a","labels":{"A":"1","a":"2"}}`},
		{name: "ok, surrogate pair", body: `{"username":"\ud83d\ude00"}`},
		{name: "ok, trailing whitespace", body: "{\"username\":\"a\"} \r\n\t"},
		{name: "ok, charset", ct: "application/json; charset=utf-8", body: `{"username":"a"}`},

		{name: "upper-case name", body: `{"USERNAME":"x"}`, code: apperr.EINVALID, msg: `Unknown field "USERNAME"`},
		{name: "title-case name", body: `{"Username":"x"}`, code: apperr.EINVALID, msg: `Unknown field "Username"`},
		{name: "case variant of an embedded field", body: `{"username":"a","ID":5}`, code: apperr.EINVALID, msg: `Unknown field "ID"`},
		{name: "case variant in a nested struct", body: `{"username":"a","items":[{"Name":"x"}]}`, code: apperr.EINVALID, msg: `Unknown field "Name"`},
		{name: "unknown field", body: `{"username":"a","x":1}`, code: apperr.EINVALID, msg: `Unknown field "x"`},

		{name: "duplicate", body: `{"username":"a","username":"b"}`, code: apperr.EINVALID, msg: `Duplicate field "username"`},
		{name: "duplicate spelt differently", body: `{"username":"a","\u0075sername":"b"}`, code: apperr.EINVALID, msg: `Duplicate field "username"`},
		{name: "duplicate in a map", body: `{"username":"a","labels":{"k":"1","k":"2"}}`, code: apperr.EINVALID, msg: `Duplicate field "k"`},
		{name: "duplicate in an array element", body: `{"username":"a","items":[{"name":"x","name":"y"}]}`, code: apperr.EINVALID, msg: `Duplicate field "name"`},
		{name: "duplicate in a raw message", body: `{"username":"a","id":{"a":1,"a":2}}`, code: apperr.EINVALID, msg: `Duplicate field "a"`},
		{name: "duplicate in an interface", body: `{"username":"a","any":[{"b":1,"b":2}]}`, code: apperr.EINVALID, msg: `Duplicate field "b"`},

		{name: "invalid UTF-8 in a value", body: "{\"username\":\"a\xff\"}", code: apperr.EINVALID, msg: "Request body is not valid UTF-8"},
		{name: "invalid UTF-8 in a name", body: "{\"user\xc3name\":\"a\"}", code: apperr.EINVALID, msg: "Request body is not valid UTF-8"},
		{name: "invalid UTF-8 after the object", body: "{\"username\":\"a\"}\xff", code: apperr.EINVALID, msg: "Request body is not valid UTF-8"},
		{name: "UTF-8 encoded surrogate", body: "{\"username\":\"\xed\xa0\x80\"}", code: apperr.EINVALID, msg: "Request body is not valid UTF-8"},
		{name: "lone high surrogate", body: `{"username":"\ud800"}`, code: apperr.EINVALID, msg: `Request body is not valid UTF-8: \ud800 at byte 13 is half a surrogate pair`},
		{name: "lone low surrogate", body: `{"username":"\uDC00x"}`, code: apperr.EINVALID, msg: `Request body is not valid UTF-8: \uDC00 at byte 13 is half a surrogate pair`},
		{name: "high surrogate then a letter", body: `{"username":"\ud800\u0041"}`, code: apperr.EINVALID, msg: `Request body is not valid UTF-8: \ud800 at byte 13 is half a surrogate pair`},
		{name: "escaped backslash then u", body: `{"username":"\\ud800"}`},

		{name: "no content type", ct: "-", body: `{"username":"a"}`, code: apperr.EUNSUPPORTED, msg: "Content-Type must be application/json"},
		{name: "wrong content type", ct: "text/plain", body: `{"username":"a"}`, code: apperr.EUNSUPPORTED, msg: "Content-Type must be application/json"},
		{name: "too large", body: big, code: apperr.ETOOLARGE, msg: "Request body is larger than 65536 bytes"},
		{name: "too deep", body: `{"username":"a","any":[[[[[[[[[]]]]]]]]]}`, code: apperr.EINVALID, msg: "Request body is nested too deeply"},
		{name: "two objects", body: `{"username":"a"}{}`, code: apperr.EINVALID, msg: "Request body must hold a single JSON object"},
		{name: "stray closing brace", body: `{"username":"a"}}`, code: apperr.EINVALID, msg: "Request body must hold a single JSON object"},
		{name: "stray closing bracket", body: `{"username":"a"} ]`, code: apperr.EINVALID, msg: "Request body must hold a single JSON object"},
		{name: "empty", body: ``, code: apperr.EINVALID, msg: "Request body is empty"},
		{name: "ends early", body: `{"username":`, code: apperr.EINVALID, msg: "Request body is not valid JSON: it ends early"},
		{name: "syntax", body: `{"username" "a"}`, code: apperr.EINVALID, msg: "Request body is not valid JSON at byte 13"},
		{name: "array", body: `[]`, code: apperr.EINVALID, msg: "Request body must be a JSON object"},
		{name: "wrong type", body: `{"username":"a","done":"yes"}`, code: apperr.EINVALID, msg: `Field "done" must be a boolean`},
		{name: "validator", body: `{"password":"b"}`, code: apperr.EINVALID, msg: `Field "username" is required`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			switch tt.ct {
			case "":
				r.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				r.Header.Set("Content-Type", tt.ct)
			}
			var v decodeReq
			err := Decode(httptest.NewRecorder(), r, &v)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if apperr.Code(err) != tt.code || apperr.Message(err) != tt.msg {
				t.Fatalf("got %v, want %s: %s", err, tt.code, tt.msg)
			}
		})
	}
}

type embedA struct{ X int }
type embedB struct{ X int }
type untagged struct{ Shared, Deep int }
type conflicts struct {
	embedA        // X, cancelled by embedB's at the same depth ...
	embedB        //
	Lower  int    `json:"x"` // ... so encoding/json folds "X" onto this one
	Plain  string // no tag: the Go name
	Skip   string `json:"-"`
	Dash   string `json:"-,"`
	Opts   string `json:",omitempty"`
	Bad    string `json:"a\"b"` // not a valid name: the Go name
	Shared int    `json:"shared"`
	untagged
	hidden int
}

// exactFields must name what encoding/json decodes, including its embedding rules.
func TestExactFieldsFollowEncodingJSON(t *testing.T) {
	_ = conflicts{}.hidden
	got := slices.Sorted(maps.Keys(exactFields(reflect.TypeFor[conflicts]())))
	want := []string{"-", "Bad", "Deep", "Opts", "Plain", "Shared", "shared", "x"}
	if !slices.Equal(got, want) {
		t.Fatalf("names %q, want %q", got, want)
	}
	for _, name := range want {
		dec := json.NewDecoder(strings.NewReader(`{"` + name + `":null}`))
		dec.DisallowUnknownFields()
		var v conflicts
		if err := dec.Decode(&v); err != nil {
			t.Errorf("encoding/json refuses %q: %v", name, err)
		}
	}
	// encoding/json takes "X" for "x"; Decode does not.
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"X":1}`))
	r.Header.Set("Content-Type", "application/json")
	var v conflicts
	if err := Decode(httptest.NewRecorder(), r, &v); apperr.Message(err) != `Unknown field "X"` {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeIntoMapAndRaw(t *testing.T) {
	for _, tt := range []struct {
		body string
		ok   bool
	}{
		{`{"a":1,"A":2}`, true},
		{`{"a":1,"a":2}`, false},
		{`{"a":{"b":1,"b":1}}`, false},
	} {
		for _, v := range []any{&map[string]any{}, &json.RawMessage{}} {
			r := httptest.NewRequest("POST", "/", bytes.NewReader([]byte(tt.body)))
			r.Header.Set("Content-Type", "application/json")
			if err := Decode(httptest.NewRecorder(), r, v); (err == nil) != tt.ok {
				t.Errorf("%T %s: %v", v, tt.body, err)
			}
		}
	}
}
