// Package access decides, at the edge (/verify), who may reach which app and with which factors:
// Authelia's access_control, first match wins. It is pure: the rules come from the configuration
// file's access_control section, the request and the subject from /verify.
package access

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

// Policy is a compiled Config, ready to decide; safe for concurrent use.
type Policy struct {
	cfg Config
}

// Compile checks c and compiles it (its regular expressions, networks, domains). Every mistake
// is reported, each with its path; nil Policy when there is any.
func Compile(c Config) (*Policy, []Problem) {
	return &Policy{cfg: c}, nil // the rules engine is to come (issue 27)
}
