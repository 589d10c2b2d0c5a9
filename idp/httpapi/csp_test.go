package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Only the pages that run the passkey script allow scripts, fetches and data: images; every
// other page (the authorize error page, the consent page, the second step) allows its one style
// and nothing else.
func TestPagesAllowScriptsOnlyWhereNeeded(t *testing.T) {
	b, _, s := newBrowser(false)
	w := httptest.NewRecorder()
	handleLoginForm(b).ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	if p := w.Header().Get("Content-Security-Policy"); !strings.Contains(p, "script-src 'self'") || !strings.HasPrefix(p, "default-src 'none'") {
		t.Fatalf("the login page's CSP: %q", p)
	}
	a := fakeAuthorize(b, true)
	for name, query := range map[string]string{
		"the error page":   "client_id=nobody",
		"the consent page": "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
	} {
		r := httptest.NewRequest("GET", "/authorize?"+query, nil)
		r.AddCookie(&http.Cookie{Name: b.cfg.CookieName, Value: s.live})
		w := httptest.NewRecorder()
		a.start(w, r)
		p := w.Header().Get("Content-Security-Policy")
		if w.Code != 400 && w.Code != 200 || strings.Contains(p, "script-src") || strings.Contains(p, "img-src") || !strings.Contains(p, "default-src 'none'") {
			t.Errorf("%s: %d, CSP %q", name, w.Code, p)
		}
	}
}
