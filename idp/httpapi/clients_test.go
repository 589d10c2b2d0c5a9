package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// clientsIdP is the IdP with an admin token, and the answer of a request to it.
func clientsIdP(t *testing.T) func(method, path, authz, ctype, body string) *httptest.ResponseRecorder {
	h := newIdPWith(t, func(d *Deps) { d.AdminToken = "admin-token-for-tests" })
	return func(method, path, authz, ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
}

const adminAuth = "Bearer admin-token-for-tests"

// register registers a client through the admin route and returns its generated secret.
func register(t *testing.T, do func(method, path, authz, ctype, body string) *httptest.ResponseRecorder, body string) string {
	t.Helper()
	w := do("POST", "/admin/clients", adminAuth, "application/json", body)
	if w.Code != 201 {
		t.Fatalf("register %s: %d %s", body, w.Code, w.Body)
	}
	var env struct{ Result ClientInfo }
	json.Unmarshal(w.Body.Bytes(), &env)
	return env.Result.ClientSecret
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// Every refusal of the client-credentials grant, with RFC 6749 §5.2's status and code.
func TestClientCredentialsRefusals(t *testing.T) {
	do := clientsIdP(t)
	secret := register(t, do, `{"client_id":"svc","grant_types":["client_credentials"],"scopes":["workitems:read"]}`)
	webSecret := register(t, do, `{"client_id":"web","grant_types":["authorization_code"],"redirect_uris":["https://web.example/cb"]}`)
	if s := register(t, do, `{"client_id":"spa","public":true,"grant_types":["authorization_code"],"redirect_uris":["https://spa.example/cb"]}`); s != "" {
		t.Fatal("a public client got a secret")
	}
	const form = "application/x-www-form-urlencoded"
	const cc = "grant_type=client_credentials"
	for _, tt := range []struct {
		name, authz, body string
		status            int
		code              string
		challenge         bool // WWW-Authenticate: Basic
	}{
		{"unknown client (Basic)", basic("nobody", secret), cc, 401, "invalid_client", true},
		{"unknown client (post)", "", cc + "&client_id=nobody&client_secret=" + url.QueryEscape(secret), 401, "invalid_client", true},
		{"wrong secret with Basic", basic("svc", webSecret), cc, 401, "invalid_client", true},
		{"wrong secret with post", "", cc + "&client_id=svc&client_secret=" + url.QueryEscape(webSecret), 401, "invalid_client", true},
		{"no credentials", "", cc, 401, "invalid_client", true},
		{"a client id without its secret", "", cc + "&client_id=svc", 401, "invalid_client", true},
		{"a Basic header that is not Basic", "Bearer " + secret, cc, 401, "invalid_client", true},
		{"Basic not form-encoded", "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:%zz")), cc, 401, "invalid_client", true},
		{"both methods at once", basic("svc", secret), cc + "&client_secret=" + url.QueryEscape(secret), 400, "invalid_request", false},
		{"Basic and another client_id", basic("svc", secret), cc + "&client_id=web", 400, "invalid_request", false},
		{"public client", "", cc + "&client_id=spa", 400, "unauthorized_client", false},
		{"client without the grant", basic("web", webSecret), cc, 400, "unauthorized_client", false},
		{"scope not allowed", basic("svc", secret), cc + "&scope=workitems:write", 400, "invalid_scope", false},
		{"unsupported grant", basic("svc", secret), "grant_type=password&username=a&password=b", 400, "unsupported_grant_type", false},
	} {
		w := do("POST", "/token", tt.authz, form, tt.body)
		var body struct {
			Error string `json:"error"`
		}
		json.Unmarshal(w.Body.Bytes(), &body)
		challenge := w.Header().Get("WWW-Authenticate") == `Basic realm="idp"`
		if w.Code != tt.status || body.Error != tt.code || challenge != tt.challenge || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %.80s (WWW-Authenticate %q), want %d %s", tt.name, w.Code, w.Body, w.Header().Get("WWW-Authenticate"), tt.status, tt.code)
		}
		if strings.Contains(w.Body.String(), secret) || strings.Contains(w.Body.String(), webSecret) {
			t.Errorf("%s: the answer carries a secret", tt.name)
		}
	}
	// The same client, properly authenticated either way, gets a token.
	for _, tt := range []struct{ name, authz, body string }{
		{"Basic", basic("svc", secret), cc},
		{"post", "", cc + "&client_id=svc&client_secret=" + url.QueryEscape(secret) + "&scope=workitems:read"},
		{"Basic with its own client_id in the body", basic("svc", secret), cc + "&client_id=svc"},
	} {
		w := do("POST", "/token", tt.authz, form, tt.body)
		var tok map[string]any
		json.Unmarshal(w.Body.Bytes(), &tok)
		if w.Code != 200 || tok["token_type"] != "Bearer" || tok["scope"] != "workitems:read" || tok["refresh_token"] != nil ||
			tok["id_token"] != nil || tok["expires_in"] != float64(900) || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %d %s", tt.name, w.Code, w.Body)
		}
		claims := jwt.MapClaims{}
		jwt.NewParser().ParseUnverified(tok["access_token"].(string), claims)
		if claims["sub"] != "svc" || claims["client_id"] != "svc" || claims["scope"] != "workitems:read" {
			t.Fatalf("%s: claims %v", tt.name, claims)
		}
	}
	// The refresh grant is unchanged: no client authentication needed for the first-party client.
	if w := do("POST", "/signup", "", "application/json", `{"username":"alice","password":"correct-horse-9"}`); w.Code != 201 {
		t.Fatal(w.Body)
	}
	w := do("POST", "/auth", "", "application/json", `{"username":"alice","password":"correct-horse-9"}`)
	var login map[string]any
	json.Unmarshal(w.Body.Bytes(), &login)
	if w := do("POST", "/token", "", form, "grant_type=refresh_token&refresh_token="+login["refresh_token"].(string)); w.Code != 200 {
		t.Fatalf("refresh: %d %s", w.Code, w.Body)
	}
}

// The client admin routes: registration, listing and reading never show a secret hash, and
// their refusals use the app envelope.
func TestClientAdminRoutes(t *testing.T) {
	do := clientsIdP(t)
	w := do("POST", "/admin/clients", adminAuth, "application/json",
		`{"client_id":"grafana","name":"Grafana","public":false,"redirect_uris":["https://grafana.example.com/login/generic_oauth"],`+
			`"post_logout_redirect_uris":["https://grafana.example.com/"],"grant_types":["authorization_code","refresh_token"],`+
			`"scopes":["openid","profile"],"first_party":true}`)
	var created struct {
		Status string
		Result map[string]any
	}
	json.Unmarshal(w.Body.Bytes(), &created)
	secret, _ := created.Result["client_secret"].(string)
	if w.Code != 201 || created.Status != "Success" || len(secret) != 43 || created.Result["client_id"] != "grafana" ||
		created.Result["first_party"] != true || created.Result["created_at"] == nil || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/admin/clients", "/admin/clients/grafana"} {
		w := do("GET", path, adminAuth, "", "")
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"grafana"`) {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		for _, leak := range []string{secret, "secret", "hash", "Hash"} {
			if strings.Contains(w.Body.String(), leak) {
				t.Fatalf("%s shows %q: %s", path, leak, w.Body)
			}
		}
	}
	const j = "application/json"
	ok := `{"client_id":"svc","grant_types":["client_credentials"]}`
	for _, tt := range []struct {
		name, method, path, authz, ctype, body string
		status                                 int
	}{
		{"no admin token", "POST", "/admin/clients", "", j, ok, 401},
		{"a wrong admin token", "GET", "/admin/clients", "Bearer wrong", "", "", 401},
		{"not JSON", "POST", "/admin/clients", adminAuth, "text/plain", ok, 415},
		{"an unknown field", "POST", "/admin/clients", adminAuth, j, `{"client_id":"svc","grant_types":["client_credentials"],"secret":"x"}`, 400},
		{"a secret of one's choosing", "POST", "/admin/clients", adminAuth, j, `{"client_id":"svc","grant_types":["client_credentials"],"client_secret":"x"}`, 400},
		{"a field in another case", "POST", "/admin/clients", adminAuth, j, `{"Client_id":"svc","grant_types":["client_credentials"]}`, 400},
		{"no client_id", "POST", "/admin/clients", adminAuth, j, `{"grant_types":["client_credentials"]}`, 400},
		{"no grant types", "POST", "/admin/clients", adminAuth, j, `{"client_id":"svc"}`, 400},
		{"the IdP's own id", "POST", "/admin/clients", adminAuth, j, `{"client_id":"idp","grant_types":["client_credentials"]}`, 400},
		{"an unsupported grant", "POST", "/admin/clients", adminAuth, j, `{"client_id":"svc","grant_types":["password"]}`, 400},
		{"a public client with client credentials", "POST", "/admin/clients", adminAuth, j, `{"client_id":"svc","public":true,"grant_types":["client_credentials"]}`, 400},
		{"an http redirect URI", "POST", "/admin/clients", adminAuth, j, `{"client_id":"svc","grant_types":["authorization_code"],"redirect_uris":["http://app.example/cb"]}`, 400},
		{"a taken id", "POST", "/admin/clients", adminAuth, j, `{"client_id":"grafana","grant_types":["client_credentials"]}`, 409},
		{"an unknown client", "GET", "/admin/clients/nobody", adminAuth, "", "", 404},
		{"deleting an unknown client", "DELETE", "/admin/clients/nobody", adminAuth, "", "", 404},
	} {
		w := do(tt.method, tt.path, tt.authz, tt.ctype, tt.body)
		var env struct{ Status, Result string }
		json.Unmarshal(w.Body.Bytes(), &env)
		if w.Code != tt.status || env.Status != "Error" || env.Result == "" {
			t.Errorf("%s: %d %s, want %d in the envelope", tt.name, w.Code, w.Body, tt.status)
		}
	}
	if w := do("DELETE", "/admin/clients/grafana", adminAuth, "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/admin/clients/grafana", adminAuth, "", ""); w.Code != 404 {
		t.Fatalf("after delete: %d", w.Code)
	}
	if w := do("GET", "/admin/clients", adminAuth, "", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"result":[]`) {
		t.Fatalf("empty list: %d %s", w.Code, w.Body)
	}
}
