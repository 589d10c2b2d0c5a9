// Package access decides, at the edge (/verify), who may reach which app and with which factors:
// Authelia's access_control, first match wins. It is pure: the rules come from the configuration
// file's access_control section, the request and the subject from /verify.
package access

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"jwtidp/idp/identity"
)

// Policies a rule (or the default) may have.
const (
	Bypass    = "bypass"     // anyone, signed in or not
	OneFactor = "one_factor" // any signed-in user
	TwoFactor = "two_factor" // a signed-in user whose sign-in used two factors (amr has mfa)
	Deny      = "deny"       // nobody
)

// Config is the configuration file's access_control section.
type Config struct {
	DefaultPolicy string `yaml:"default_policy"`
	Rules         []Rule `yaml:"rules"`
}

// Rule is one access rule; every condition given must hold for it to match, and within one
// condition any one value matches.
type Rule struct {
	Domain    []string `yaml:"domain"`    // exact host, or "*.example.com" for any subdomain
	Resources []string `yaml:"resources"` // regular expressions on the path and query
	Subject   []string `yaml:"subject"`   // "user:NAME" or "group:NAME"
	Networks  []string `yaml:"networks"`  // CIDRs of the client's address
	Methods   []string `yaml:"methods"`   // HTTP methods
	Policy    string   `yaml:"policy"`
}

// Problem is one mistake in a Config: where (a path such as "rules[2].resources[0]" or
// "default_policy") and what. The configuration file turns the path into a line.
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) String() string { return p.Path + ": " + p.Msg }

// Policy is a compiled Config, ready to decide; safe for concurrent use.
type Policy struct {
	rules []rule
	def   policy
	// byDomain indexes the rules by their domains (a wildcard's by ".example.com"), ascending,
	// so that Decide reads only the rules of a request's host and its parent domains.
	byDomain map[string][]int
}

// policy is a policy name, compiled.
type policy uint8

const (
	pOneFactor policy = iota // the zero value: today's behaviour, every signed-in user passes
	pBypass
	pTwoFactor
	pDeny
)

var policies = map[string]policy{Bypass: pBypass, OneFactor: pOneFactor, TwoFactor: pTwoFactor, Deny: pDeny}

// rule is a Rule, compiled: each empty list matches anything.
type rule struct {
	exact     []string // lower-case hosts
	suffixes  []string // ".example.com" of "*.example.com"
	resources []*regexp.Regexp
	users     []string // lower-case usernames
	groups    []string
	networks  []netip.Prefix
	methods   []string // upper-case
	subject   bool     // the rule names users or groups
	policy    policy
}

// Compile checks c and compiles it (its regular expressions, networks, domains). Every mistake
// is reported, each with its path; nil Policy when there is any.
//
// A missing default_policy is one_factor: with no access_control at all, every signed-in user
// passes, as before rules existed.
func Compile(c Config) (*Policy, []Problem) {
	var probs []Problem
	bad := func(path, format string, args ...any) {
		probs = append(probs, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	p := &Policy{}
	if c.DefaultPolicy != "" {
		d, ok := policies[c.DefaultPolicy]
		if !ok {
			bad("default_policy", "%q is not a policy (bypass, one_factor, two_factor or deny)", c.DefaultPolicy)
		}
		p.def = d
	}
	for i, r := range c.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		cr, ok := policies[r.Policy]
		var out rule
		out.policy = cr
		if !ok {
			if r.Policy == "" {
				bad(at+".policy", "a rule needs a policy (bypass, one_factor, two_factor or deny)")
			} else {
				bad(at+".policy", "%q is not a policy (bypass, one_factor, two_factor or deny)", r.Policy)
			}
		}
		if len(r.Domain) == 0 {
			bad(at+".domain", "a rule needs at least one domain")
		}
		for j, d := range r.Domain {
			host, wild, err := compileDomain(d)
			if err != nil {
				bad(fmt.Sprintf("%s.domain[%d]", at, j), "%v", err)
			} else if wild {
				out.suffixes = append(out.suffixes, host)
			} else {
				out.exact = append(out.exact, host)
			}
		}
		for j, res := range r.Resources {
			re, err := regexp.Compile(res)
			if err != nil {
				bad(fmt.Sprintf("%s.resources[%d]", at, j), "not a regular expression: %v", err)
				continue
			}
			out.resources = append(out.resources, re)
		}
		for j, s := range r.Subject {
			kind, name, _ := strings.Cut(s, ":")
			switch {
			case kind == "user" && identity.ValidateUsername(name) == nil:
				out.users = append(out.users, strings.ToLower(name))
			case kind == "group" && identity.ValidateGroupName(name) == nil:
				out.groups = append(out.groups, name)
			default:
				bad(fmt.Sprintf("%s.subject[%d]", at, j), "%q is neither user:NAME nor group:NAME (usernames are [A-Za-z0-9._-], 3 to 64; group names [a-z0-9._:-], up to 64)", s)
			}
		}
		out.subject = len(r.Subject) > 0
		for j, n := range r.Networks {
			pf, err := parseNetwork(n)
			if err != nil {
				bad(fmt.Sprintf("%s.networks[%d]", at, j), "%q is not an address or a CIDR network", n)
				continue
			}
			out.networks = append(out.networks, pf)
		}
		for j, m := range r.Methods {
			if !validMethod(m) {
				bad(fmt.Sprintf("%s.methods[%d]", at, j), "%q is not an HTTP method", m)
				continue
			}
			out.methods = append(out.methods, strings.ToUpper(m))
		}
		p.rules = append(p.rules, out)
	}
	if probs != nil {
		return nil, probs
	}
	p.byDomain = map[string][]int{}
	for i, ru := range p.rules {
		for _, d := range slices.Concat(ru.exact, ru.suffixes) {
			if l := p.byDomain[d]; len(l) == 0 || l[len(l)-1] != i {
				p.byDomain[d] = append(l, i)
			}
		}
	}
	return p, nil
}

// compileDomain checks a rule's domain: a host name, or "*." and a host name for any of its
// subdomains (not itself). Hosts compare case-insensitively.
func compileDomain(d string) (host string, wild bool, err error) {
	h := strings.ToLower(strings.TrimSuffix(d, "."))
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		h, wild = rest, true
	}
	if !validHost(h) {
		return "", false, fmt.Errorf("%q is not a domain (a host name, or *. and one for its subdomains)", d)
	}
	if wild {
		return "." + h, true, nil
	}
	return h, false, nil
}

// validHost accepts DNS names and IP addresses written as hosts are in a Host header (no port).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		_, err := netip.ParseAddr(h[1 : len(h)-1])
		return err == nil
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// parseNetwork reads a CIDR network or a bare address (the one address). An IPv4 network
// written IPv4-mapped (::ffff:203.0.113.0/120) is kept as IPv4, the form client addresses
// arrive in, so that it matches them.
func parseNetwork(n string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(n, "/") {
		var err error
		if p, err = netip.ParsePrefix(n); err != nil {
			return p, err
		}
	} else {
		a, err := netip.ParseAddr(n)
		if err != nil {
			return netip.Prefix{}, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// validMethod: an HTTP method is a token (RFC 9110 §9.1); rules name them in any case.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// Outcome is what Decide says of a request.
type Outcome uint8

const (
	// Forbidden: not this subject (a deny rule, or the default deny); 403.
	Forbidden Outcome = iota
	// Allow: the signed-in subject passes; 200 with their headers.
	Allow
	// AllowAnonymous: bypass, and no one is signed in; 200 without user headers.
	AllowAnonymous
	// NeedLogin: someone must sign in first; 401 to the login page.
	NeedLogin
	// NeedSecondFactor: the signed-in subject must add a second factor to this sign-in
	// (step-up); 401 to the second-factor step.
	NeedSecondFactor
)

func (o Outcome) String() string {
	switch o {
	case Allow:
		return "Allow"
	case AllowAnonymous:
		return "AllowAnonymous"
	case NeedLogin:
		return "NeedLogin"
	case NeedSecondFactor:
		return "NeedSecondFactor"
	}
	return "Forbidden"
}

// Request is the original request, as NewRequest makes it.
type Request struct {
	Host   string     // lower-case, without port
	URI    string     // the decoded, cleaned path, and "?" and the query as sent when there is one
	Method string     // upper-case
	IP     netip.Addr // the client's; the zero Addr when unknown, matching no network
}

// Subject is who asks: signed in or not, and how.
type Subject struct {
	SignedIn bool
	Username string
	Groups   []string
	AMR      []string // RFC 8176; "mfa" means two factors
}

// Decide applies the first rule that matches r and s, else the default policy. A rule with a
// subject is skipped for a signed-in user it does not name; for someone not signed in, it is
// NeedLogin, since who they are decides whether it applies (Authelia does the same).
func (p *Policy) Decide(r Request, s Subject) Outcome {
	// The rules naming the host, and those naming one of its parent domains with "*.": each
	// list ascends, so merging them visits the candidates in the configuration's order.
	var lists [maxLabels][]int
	n := 0
	lists[n], n = p.byDomain[r.Host], 1
	for i := strings.IndexByte(r.Host, '.'); i >= 0 && n < maxLabels; {
		lists[n], n = p.byDomain[r.Host[i:]], n+1
		j := strings.IndexByte(r.Host[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	last := -1
	for {
		next := -1
		for k := range n {
			for len(lists[k]) > 0 && lists[k][0] <= last {
				lists[k] = lists[k][1:]
			}
			if len(lists[k]) > 0 && (next < 0 || lists[k][0] < next) {
				next = lists[k][0]
			}
		}
		if next < 0 {
			return p.def.outcome(s)
		}
		last = next
		ru := &p.rules[next]
		if !ru.matches(r) {
			continue
		}
		if ru.subject {
			if !s.SignedIn {
				return NeedLogin
			}
			if !ru.names(s) {
				continue
			}
		}
		return ru.policy.outcome(s)
	}
}

// maxLabels bounds the parent domains of a host whose wildcards are looked up: a name has at
// most 127 labels; deeper than this, the further ones' wildcard rules do not apply.
const maxLabels = 128

func (pol policy) outcome(s Subject) Outcome {
	switch {
	case pol == pDeny:
		return Forbidden
	case pol == pBypass && !s.SignedIn:
		return AllowAnonymous
	case pol == pBypass:
		return Allow
	case !s.SignedIn:
		return NeedLogin
	case pol == pTwoFactor && !slices.Contains(s.AMR, "mfa"):
		return NeedSecondFactor
	}
	return Allow
}

// matches tells whether every condition but the domain (Decide's index) and the subject
// holds for r.
func (ru *rule) matches(r Request) bool {
	if len(ru.methods) > 0 && !slices.Contains(ru.methods, r.Method) {
		return false
	}
	if len(ru.networks) > 0 && !ru.inNetworks(r.IP) {
		return false
	}
	if len(ru.resources) > 0 && !slices.ContainsFunc(ru.resources, func(re *regexp.Regexp) bool { return re.MatchString(r.URI) }) {
		return false
	}
	return true
}

func (ru *rule) inNetworks(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	un := ip.Unmap()
	for _, n := range ru.networks {
		if n.Contains(un) || n.Contains(ip) {
			return true
		}
	}
	return false
}

// names tells whether the rule's subject names s: one of its users or groups.
func (ru *rule) names(s Subject) bool {
	if len(ru.users) > 0 && slices.Contains(ru.users, strings.ToLower(s.Username)) {
		return true
	}
	for _, g := range ru.groups {
		if slices.Contains(s.Groups, g) {
			return true
		}
	}
	return false
}
