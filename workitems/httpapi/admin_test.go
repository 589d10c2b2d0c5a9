package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// GET /workitems?owner=all lists every owner's items with the workitems:admin scope, in pages;
// each says whose it is ("owner", the subject); without it, 403 insufficient_scope; any other owner is a 400.
func TestListAllOwners(t *testing.T) {
	h := newServer(t)
	do := func(method, path, tok, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	rw := "workitems:read workitems:write"
	alice, bob := token(t, "alice", rw), token(t, "bob", rw)
	admin := token(t, "carol", "workitems:read workitems:admin")
	for _, c := range []struct{ tok, title string }{{alice, "a1"}, {bob, "b1"}, {alice, "a2"}} {
		if w := do("POST", "/workitems", c.tok, `{"title":"`+c.title+`"}`); w.Code != 201 {
			t.Fatalf("create %s: %d", c.title, w.Code)
		}
	}
	titles := func(w *httptest.ResponseRecorder) string {
		var env struct {
			Result []struct {
				Title string
				Owner *string
			} `json:"result"`
		}
		json.Unmarshal(w.Body.Bytes(), &env)
		var out []string
		for _, it := range env.Result {
			if it.Owner != nil { // only the list of every owner's items says whose
				it.Title = *it.Owner + ":" + it.Title
			}
			out = append(out, it.Title)
		}
		return strings.Join(out, " ")
	}
	if w := do("GET", "/workitems?owner=all", admin, ""); w.Code != 200 || titles(w) != "alice:a1 bob:b1 alice:a2" {
		t.Fatalf("owner=all with workitems:admin: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/workitems?owner=all&after=1&limit=1", admin, ""); w.Code != 200 || titles(w) != "bob:b1" {
		t.Fatalf("owner=all, a page: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/workitems", admin, ""); w.Code != 200 || titles(w) != "" {
		t.Fatalf("the admin's own items: %d %s", w.Code, w.Body)
	}
	w := do("GET", "/workitems?owner=all", alice, "")
	if w.Code != 403 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`) ||
		!strings.Contains(w.Header().Get("WWW-Authenticate"), `scope="workitems:admin"`) {
		t.Fatalf("owner=all without workitems:admin: %d %q %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
	}
	if w := do("GET", "/workitems?owner=bob", alice, ""); w.Code != 400 {
		t.Fatalf("owner=bob: %d %s", w.Code, w.Body)
	}
}
