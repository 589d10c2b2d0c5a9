package access

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, c Config) *Policy {
	t.Helper()
	p, probs := Compile(c)
	if probs != nil {
		t.Fatalf("Compile: %v", probs)
	}
	return p
}

func req(t testing.TB, host, uri, method, ip string) Request {
	t.Helper()
	r, err := NewRequest(host, uri, method, ip)
	if err != nil {
		t.Fatalf("NewRequest(%q, %q, %q, %q): %v", host, uri, method, ip, err)
	}
	return r
}

var (
	anon     = Subject{}
	alice    = Subject{SignedIn: true, Username: "alice", AMR: []string{"pwd"}}
	aliceMFA = Subject{SignedIn: true, Username: "alice", AMR: []string{"pwd", "otp", "mfa"}}
	bob      = Subject{SignedIn: true, Username: "Bob", Groups: []string{"admins"}, AMR: []string{"pwd"}}
	bobMFA   = Subject{SignedIn: true, Username: "bob", Groups: []string{"admins"}, AMR: []string{"hwk", "user", "mfa"}}
)

// The README's two-app example, and edges around each condition.
var example = Config{
	DefaultPolicy: Deny,
	Rules: []Rule{
		{Domain: []string{"public.example.com"}, Resources: []string{"^/admin([/?].*)?$"}, Subject: []string{"group:admins"}, Policy: TwoFactor},
		{Domain: []string{"public.example.com"}, Resources: []string{"^/admin([/?].*)?$"}, Policy: Deny},
		{Domain: []string{"public.example.com"}, Policy: Bypass},
		{Domain: []string{"app.example.com"}, Subject: []string{"user:alice", "group:ops"}, Policy: OneFactor},
		{Domain: []string{"*.example.com"}, Networks: []string{"10.0.0.0/8", "2001:db8::/32"}, Methods: []string{"get", "HEAD"}, Policy: OneFactor},
		{Domain: []string{"api.example.org"}, Resources: []string{"/health"}, Policy: Bypass},
		{Domain: []string{"api.example.org"}, Resources: []string{"^/v1/"}, Policy: TwoFactor},
		{Domain: []string{"EXACT.example.net", "[::1]"}, Networks: []string{"192.168.1.7"}, Policy: Bypass},
	},
}

func TestDecide(t *testing.T) {
	p := mustCompile(t, example)
	tests := []struct {
		name                  string
		host, uri, method, ip string
		s                     Subject
		want                  Outcome
	}{
		// bypass and the regex anchors of /admin.
		{"bypass anonymous", "public.example.com", "/", "GET", "", anon, AllowAnonymous},
		{"bypass signed in keeps the user", "public.example.com", "/x", "GET", "", alice, Allow},
		{"host with port and case", "Public.Example.COM:8443", "/", "GET", "", anon, AllowAnonymous},
		{"admin: anonymous must sign in (subject rule)", "public.example.com", "/admin", "GET", "", anon, NeedLogin},
		{"admin: member with one factor steps up", "public.example.com", "/admin/users", "GET", "", bob, NeedSecondFactor},
		{"admin: member with two factors", "public.example.com", "/admin?tab=1", "GET", "", bobMFA, Allow},
		{"admin: non-member skips to deny", "public.example.com", "/admin", "GET", "", aliceMFA, Forbidden},
		{"admin anchor: /administrator is not /admin", "public.example.com", "/administrator", "GET", "", anon, AllowAnonymous},
		{"admin anchor: /x/admin is not /admin", "public.example.com", "/x/admin", "GET", "", anon, AllowAnonymous},
		{"admin: dot-dot is cleaned", "public.example.com", "/x/../admin", "GET", "", aliceMFA, Forbidden},
		{"admin: percent-encoding is decoded", "public.example.com", "/%61dmin/", "GET", "", aliceMFA, Forbidden},
		{"admin: double slash is cleaned", "public.example.com", "//admin", "GET", "", aliceMFA, Forbidden},
		// subjects: any one matches; names case-insensitive; others fall through.
		{"user subject", "app.example.com", "/", "POST", "", alice, Allow},
		{"user subject, other case", "app.example.com", "/", "POST", "", Subject{SignedIn: true, Username: "ALICE"}, Allow},
		{"group subject", "app.example.com", "/", "POST", "", Subject{SignedIn: true, Username: "carol", Groups: []string{"x", "ops"}}, Allow},
		{"group names are exact", "app.example.com", "/", "POST", "", Subject{SignedIn: true, Username: "carol", Groups: []string{"OPS"}}, Forbidden},
		{"neither: default deny", "app.example.com", "/", "POST", "", bob, Forbidden},
		{"neither, but the network rule follows", "app.example.com", "/", "GET", "10.1.2.3", bob, Allow},
		{"anonymous on a subject rule", "app.example.com", "/", "POST", "", anon, NeedLogin},
		// wildcard: any subdomain, not the apex, not a look-alike.
		{"wildcard subdomain", "x.example.com", "/", "GET", "10.0.0.1", alice, Allow},
		{"wildcard deeper subdomain", "a.b.example.com", "/", "HEAD", "10.255.255.255", alice, Allow},
		{"wildcard not the apex", "example.com", "/", "GET", "10.0.0.1", alice, Forbidden},
		{"wildcard not a look-alike", "xexample.com", "/", "GET", "10.0.0.1", alice, Forbidden},
		{"wildcard not a suffix host", "x.example.com.evil.net", "/", "GET", "10.0.0.1", alice, Forbidden},
		{"wildcard one_factor anonymous", "x.example.com", "/", "GET", "10.0.0.1", anon, NeedLogin},
		// methods and networks.
		{"method not listed", "x.example.com", "/", "POST", "10.0.0.1", alice, Forbidden},
		{"method in lower case", "x.example.com", "/", "head", "10.0.0.1", alice, Allow},
		{"network edge below", "x.example.com", "/", "GET", "9.255.255.255", alice, Forbidden},
		{"network edge above", "x.example.com", "/", "GET", "11.0.0.0", alice, Forbidden},
		{"IPv4-mapped address", "x.example.com", "/", "GET", "::ffff:10.9.9.9", alice, Allow},
		{"IPv6 network", "x.example.com", "/", "GET", "2001:db8:ffff::1", alice, Allow},
		{"IPv6 outside", "x.example.com", "/", "GET", "2001:db9::1", alice, Forbidden},
		{"unknown address matches no network", "x.example.com", "/", "GET", "", alice, Forbidden},
		{"bare address network", "exact.example.net", "/", "GET", "192.168.1.7", anon, AllowAnonymous},
		{"bare address network, next one", "exact.example.net", "/", "GET", "192.168.1.8", anon, Forbidden},
		{"IPv6 literal host", "[::1]:8000", "/", "GET", "192.168.1.7", anon, AllowAnonymous},
		// unanchored regex and first match.
		{"unanchored regex matches anywhere", "api.example.org", "/v1/health", "GET", "", anon, AllowAnonymous},
		{"unanchored regex matches the query", "api.example.org", "/v1/x?probe=/health", "GET", "", anon, AllowAnonymous},
		{"first match wins over later", "api.example.org", "/v1/items", "GET", "", alice, NeedSecondFactor},
		{"two factors", "api.example.org", "/v1/items", "GET", "", aliceMFA, Allow},
		{"no rule: default deny", "api.example.org", "/v2/", "GET", "", aliceMFA, Forbidden},
		{"no rule, anonymous: default deny", "other.test", "/", "GET", "", anon, Forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Decide(req(t, tt.host, tt.uri, tt.method, tt.ip), tt.s); got != tt.want {
				t.Errorf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecideDefaults(t *testing.T) {
	r := Request{Host: "any.test", URI: "/", Method: "GET"}
	tests := []struct {
		def  string
		s    Subject
		want Outcome
	}{
		{"", anon, NeedLogin}, // no access_control: today's behaviour
		{"", alice, Allow},
		{OneFactor, alice, Allow},
		{OneFactor, anon, NeedLogin},
		{TwoFactor, alice, NeedSecondFactor},
		{TwoFactor, aliceMFA, Allow},
		{TwoFactor, anon, NeedLogin},
		{Bypass, anon, AllowAnonymous},
		{Bypass, alice, Allow},
		{Deny, anon, Forbidden},
		{Deny, aliceMFA, Forbidden},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.def, tt.s.Username), func(t *testing.T) {
			if got := mustCompile(t, Config{DefaultPolicy: tt.def}).Decide(r, tt.s); got != tt.want {
				t.Errorf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompileProblems(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []Problem
	}{
		{"default policy", Config{DefaultPolicy: "allow"},
			[]Problem{{"default_policy", `"allow" is not a policy (bypass, one_factor, two_factor or deny)`}}},
		{"no policy, no domain", Config{Rules: []Rule{{}}},
			[]Problem{{"rules[0].policy", "a rule needs a policy (bypass, one_factor, two_factor or deny)"}, {"rules[0].domain", "a rule needs at least one domain"}}},
		{"every list", Config{Rules: []Rule{{Domain: []string{"ok.test"}, Policy: Deny}, {
			Domain:    []string{"a.test", "*.", "a*.test", "a.test:80", "*.*.test"},
			Resources: []string{"^/ok", "(unclosed"},
			Subject:   []string{"user:bob", "bob", "group:Admins", "role:x", "user:"},
			Networks:  []string{"10.0.0.0/8", "10.0.0.0/33", "host", "::1"},
			Methods:   []string{"GET", "GE T", ""},
			Policy:    "two_factors",
		}}}, []Problem{
			{"rules[1].policy", `"two_factors" is not a policy (bypass, one_factor, two_factor or deny)`},
			{"rules[1].domain[1]", `"*." is not a domain (a host name, or *. and one for its subdomains)`},
			{"rules[1].domain[2]", `"a*.test" is not a domain (a host name, or *. and one for its subdomains)`},
			{"rules[1].domain[3]", `"a.test:80" is not a domain (a host name, or *. and one for its subdomains)`},
			{"rules[1].domain[4]", `"*.*.test" is not a domain (a host name, or *. and one for its subdomains)`},
			{"rules[1].resources[1]", "not a regular expression: error parsing regexp: missing closing ): `(unclosed`"},
			{"rules[1].subject[1]", `"bob" is neither user:NAME nor group:NAME (usernames are [A-Za-z0-9._-], 3 to 64; group names [a-z0-9._:-], up to 64)`},
			{"rules[1].subject[2]", `"group:Admins" is neither user:NAME nor group:NAME (usernames are [A-Za-z0-9._-], 3 to 64; group names [a-z0-9._:-], up to 64)`},
			{"rules[1].subject[3]", `"role:x" is neither user:NAME nor group:NAME (usernames are [A-Za-z0-9._-], 3 to 64; group names [a-z0-9._:-], up to 64)`},
			{"rules[1].subject[4]", `"user:" is neither user:NAME nor group:NAME (usernames are [A-Za-z0-9._-], 3 to 64; group names [a-z0-9._:-], up to 64)`},
			{"rules[1].networks[1]", `"10.0.0.0/33" is not an address or a CIDR network`},
			{"rules[1].networks[2]", `"host" is not an address or a CIDR network`},
			{"rules[1].methods[1]", `"GE T" is not an HTTP method`},
			{"rules[1].methods[2]", `"" is not an HTTP method`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, got := Compile(tt.c)
			if p != nil {
				t.Errorf("Compile returned a policy with problems")
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestNewRequest(t *testing.T) {
	tests := []struct {
		host, uri, method, ip string
		want                  Request
		bad                   bool
	}{
		{host: "App.Example.com:443", uri: "/a/b/?x=1&y=%2F", method: "post", ip: "10.0.0.1",
			want: Request{Host: "app.example.com", URI: "/a/b/?x=1&y=%2F", Method: "POST"}},
		{host: "app.example.com.", uri: "/a/./b/../c", want: Request{Host: "app.example.com", URI: "/a/c", Method: "GET"}},
		{host: "[2001:DB8::1]:80", uri: "/?", want: Request{Host: "[2001:db8::1]", URI: "/?", Method: "GET"}},
		{host: "", uri: "/", bad: true},
		{host: "a b", uri: "/", bad: true},
		{host: "a.test", uri: "", bad: true},
		{host: "a.test", uri: "http://evil.test/", bad: true},
		{host: "a.test", uri: "/%zz", bad: true},
		{host: "a.test", uri: "/", method: "G T", bad: true},
		// Spellings apps read differently are refused: one of them would walk around a rule.
		{host: "a.test", uri: "/admin/..%2f", bad: true},
		{host: "a.test", uri: "/admin%2Fx", bad: true},
		{host: "a.test", uri: "/admin%5c..%5c", bad: true},
		{host: "a.test", uri: `/public\..\admin`, bad: true},
		{host: "a.test", uri: "/public/%2e%2e/admin", bad: true},
		{host: "a.test", uri: "/admin%3F.css", bad: true},
		// Path parameters are dropped as Java servers drop them; an encoded ";" is data.
		{host: "a.test", uri: "/admin;jsessionid=1", want: Request{Host: "a.test", URI: "/admin", Method: "GET"}},
		{host: "a.test", uri: "/admin;x/users/?q=1;2", want: Request{Host: "a.test", URI: "/admin/users/?q=1;2", Method: "GET"}},
		{host: "a.test", uri: "/public;/../admin", want: Request{Host: "a.test", URI: "/admin", Method: "GET"}},
		{host: "a.test", uri: "/a%3Bb", want: Request{Host: "a.test", URI: "/a;b", Method: "GET"}},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.uri, func(t *testing.T) {
			got, err := NewRequest(tt.host, tt.uri, tt.method, tt.ip)
			if tt.bad {
				if err == nil {
					t.Fatalf("NewRequest = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.IP = Request{}.IP
			if got != tt.want {
				t.Errorf("NewRequest = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzRulesAndHeaders: whatever a configuration and a proxy's headers say, compiling and
// deciding never panic, a configuration either compiles or names its mistakes, a request
// either reads or is refused, and a rule that matches everything decides for everyone.
func FuzzRulesAndHeaders(f *testing.F) {
	f.Add("*.example.com", "^/admin([/?].*)?$", "group:admins", "10.0.0.0/8", "GET", "two_factor",
		"x.example.com:8080", "/admin/../admin?x=1", "get", "::ffff:10.1.1.1")
	f.Add("a.test", "(", "user:", "::1/129", "G T", "nope", "[::1", "%", "", "bad")
	f.Add("[::1]", "", "user:bob", "", "", "deny", "[::1]:1", "//a/%2e%2e/b", "HEAD", "1.2.3.4")
	f.Fuzz(func(t *testing.T, domain, resource, subject, network, method, pol, host, uri, reqMethod, ip string) {
		p, probs := Compile(Config{DefaultPolicy: Deny, Rules: []Rule{
			{Domain: []string{domain}, Resources: []string{resource}, Subject: []string{subject},
				Networks: []string{network}, Methods: []string{method}, Policy: pol},
			{Domain: []string{domain}, Policy: Bypass},
		}})
		if (p == nil) == (probs == nil) {
			t.Fatalf("Compile: policy %v and problems %v", p, probs)
		}
		r, err := NewRequest(host, uri, reqMethod, ip)
		if err != nil {
			return
		}
		if r.Host == "" || r.URI == "" || r.URI[0] != '/' || r.Method == "" {
			t.Fatalf("NewRequest read %+v", r)
		}
		// Read again from the URI an app is sent for it: each decoded segment escaped again.
		rawPath, q, hasQ := strings.Cut(r.URI, "?")
		segs := strings.Split(rawPath, "/")
		for i := range segs {
			segs[i] = url.PathEscape(segs[i])
		}
		uri2 := strings.Join(segs, "/")
		if hasQ {
			uri2 += "?" + q
		}
		again, err := NewRequest(r.Host, uri2, r.Method, ip)
		if err != nil || again != r {
			t.Fatalf("a read request reads again differently: %+v, %+v, %v", r, again, err)
		}
		if p != nil {
			for _, s := range []Subject{anon, alice, bobMFA} {
				p.Decide(r, s)
			}
		}
		everyone := mustCompile(t, Config{DefaultPolicy: Deny, Rules: []Rule{{Domain: []string{r.Host}, Policy: TwoFactor}}})
		if got := everyone.Decide(r, aliceMFA); got != Allow {
			t.Fatalf("a rule on the host %q did not decide: %v", r.Host, got)
		}
	})
}

// Rules are indexed by domain; the order across a host's own rules and its parent domains'
// wildcards is still the configuration's, for hosts of any depth.
func TestDecideOrderAcrossDomains(t *testing.T) {
	p := mustCompile(t, Config{DefaultPolicy: Deny, Rules: []Rule{
		{Domain: []string{"*.a.test"}, Resources: []string{"^/w"}, Policy: Deny},
		{Domain: []string{"x.a.test", "*.x.a.test"}, Policy: Bypass},
		{Domain: []string{"*.test"}, Policy: TwoFactor},
		{Domain: []string{"x.a.test"}, Policy: OneFactor},
	}})
	deep := strings.Repeat("l.", 100) + "a.test"
	for _, tt := range []struct {
		host, uri string
		want      Outcome
	}{
		{"x.a.test", "/w", Forbidden},        // an earlier wildcard before the host's own rule
		{"x.a.test", "/v", Allow},            // the host's own, before a later wildcard
		{"y.x.a.test", "/v", Allow},          // one rule naming the host and its subdomains
		{"y.a.test", "/v", NeedSecondFactor}, // past the rules of other hosts
		{deep, "/v", NeedSecondFactor},       // a wildcard 101 labels up
		{"a.test", "/w", NeedSecondFactor},   // *.a.test is not a.test
		{"test", "/", Forbidden},             // nor *.test test
	} {
		if got := p.Decide(req(t, tt.host, tt.uri, "GET", ""), alice); got != tt.want {
			t.Errorf("%s%s: %v, want %v", tt.host, tt.uri, got, tt.want)
		}
	}
}

// A network written IPv4-mapped is an IPv4 network, the form client addresses arrive in; a
// plain IPv6 one stays IPv6.
func TestParseNetworkUnmapsIPv4(t *testing.T) {
	for in, want := range map[string]string{
		"::ffff:203.0.113.0/120": "203.0.113.0/24",
		"::ffff:198.51.100.7":    "198.51.100.7/32",
		"10.1.2.3/8":             "10.0.0.0/8",
		"2001:db8::/32":          "2001:db8::/32",
	} {
		if p, err := parseNetwork(in); err != nil || p.String() != want {
			t.Errorf("parseNetwork(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

// cleanURI's shortcut (plainURI) returns a URI as it is only where the full decoding would
// return it unchanged too: these are the shapes near its edges, taken or refused by it.
func TestPlainURIAgreesWithDecoding(t *testing.T) {
	for _, uri := range []string{"/", "/a", "/a/", "/admin/bench", "/a.b/c~d_e-f/", "/a?", "/a?x=1&y=%2F;z#f",
		"/.a/..b/...", "//a", "/a//b", "/a/.", "/a/..", "/./a", "/../a", "/a/./", "/a;b", "/a%41", `/a\b`,
		"/a b", "/a?x y", "/a?\x01", "/é", "/a?é", "a", "", "?x"} {
		want, wantErr := decodeURI(uri)
		if plainURI(uri) && (wantErr != nil || want != uri) {
			t.Errorf("plainURI(%q) but the decoding gives %q, %v", uri, want, wantErr)
		}
		got, err := cleanURI(uri)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("cleanURI(%q) = %q, %v; the decoding: %q, %v", uri, got, err, want, wantErr)
		}
	}
	for uri, plain := range map[string]bool{"/admin/bench?page=2": true, "/": true, "/a/../b": false, "/a%2Fb": false, "/a;x": false} {
		if plainURI(uri) != plain {
			t.Errorf("plainURI(%q) = %v, want %v", uri, !plain, plain)
		}
	}
}

// FuzzPlainURI: whatever the URI, the shortcut takes it only where the decoding agrees.
func FuzzPlainURI(f *testing.F) {
	for _, s := range []string{"/", "/a/b/", "/a/../b", "/a?x=1", "//a", "/a/."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		if !plainURI(uri) {
			return
		}
		if got, err := decodeURI(uri); err != nil || got != uri {
			t.Fatalf("plainURI(%q), but the decoding gives %q, %v", uri, got, err)
		}
	})
}

// A plain original request — a host without a port, a clean path, a method in capitals, an
// IPv4 client, as a proxy sends for most requests — is read without an allocation: /verify
// reads one for every request the proxy forwards.
func TestNewRequestOfAPlainRequestAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if _, err := NewRequest("app.example.com", "/admin/users?page=2", "GET", "10.1.2.3"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("NewRequest allocates %v times, want 0", n)
	}
}
