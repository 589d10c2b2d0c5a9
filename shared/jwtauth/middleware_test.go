package jwtauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// RequireAMR lets through only a token that says the user signed in with the method: a valid
// token without it is 401 with RFC 9470's insufficient_user_authentication, so the client knows
// to ask for a stronger sign-in; the scope is still checked first.
func TestRequireAMR(t *testing.T) {
	v, _, m, _ := setup(t, 10)
	h := v.RequireAMR("svc", "read", "mfa")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	call := func(amr any, scope string) *httptest.ResponseRecorder {
		c := m.Claims()
		c["scope"] = scope
		if amr != nil {
			c["amr"] = amr
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+m.Sign(c, nil, jwt.SigningMethodRS256, m.Key))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, tt := range []struct {
		name   string
		amr    any
		scope  string
		status int
		err    string
	}{
		{"no amr", nil, "read", 401, "insufficient_user_authentication"},
		{"a password only", []string{"pwd"}, "read", 401, "insufficient_user_authentication"},
		{"a second factor", []string{"pwd", "otp", "mfa"}, "read", 204, ""},
		{"a second factor, another scope", []string{"pwd", "otp", "mfa"}, "write", 403, "insufficient_scope"},
	} {
		w := call(tt.amr, tt.scope)
		if w.Code != tt.status || (tt.err != "" && !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="`+tt.err+`"`)) {
			t.Errorf("%s: %d %q", tt.name, w.Code, w.Header().Get("WWW-Authenticate"))
		}
	}
}
