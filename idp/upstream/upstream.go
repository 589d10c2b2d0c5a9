// Package upstream is sign-in through another identity provider: the configuration file's
// connectors (an OpenID provider, an LDAP directory), what each says about a person (an
// Identity), how its groups become ours, and each connector's last success and error.
//
// A connector only proves who someone is upstream. What that means here — which local user it
// is (linked by connector and upstream subject, never by email), their groups, the session —
// is decided by auth (SignIn.Federated) and finished by its one finisher, Complete.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Connector types.
const (
	TypeOIDC = "oidc"
	TypeLDAP = "ldap"
)

// Link modes: what the first sign-in of an upstream subject does.
const (
	LinkCreate   = "create"   // a local user is made just in time
	LinkExisting = "existing" // the person proves a local account's password once
)

// Second-factor modes.
const (
	SecondFactorOptional = "optional" // our second factor is asked when the user has one
	SecondFactorRequired = "required" // the user must have and give our TOTP or passkey
)

// Local is the password backend of the IdP's own accounts, in password_backends.
const Local = "local"

// Identity is what an upstream said about a person, before any mapping.
type Identity struct {
	Connector     string   // the connector's id
	Subject       string   // the upstream's stable id for the person (OIDC sub, LDAP DN)
	Username      string   // the claim or attribute configured as the username
	Email         string   // "" when none
	EmailVerified bool     // the upstream vouches for Email (LDAP: always false)
	Groups        []string // the upstream's group names, before Config.Groups maps them
}

// Claims names which ID token or userinfo claims give the username, email and groups.
type Claims struct {
	Username string `yaml:"username"`
	Email    string `yaml:"email"`
	Groups   string `yaml:"groups"`
}

// GroupMapping turns the upstream's groups into ours: Prefix prepended to each (names that do
// not make a valid group name are dropped), or Map (upstream name → ours; unlisted ones are
// dropped). Neither: no groups are taken.
type GroupMapping struct {
	Prefix string            `yaml:"prefix"`
	Map    map[string]string `yaml:"map"`
}

// UserSearch is how an LDAP connector finds a user.
type UserSearch struct {
	BaseDN       string `yaml:"base_dn"`
	Filter       string `yaml:"filter"`
	UsernameAttr string `yaml:"username_attr"`
	EmailAttr    string `yaml:"email_attr"`
	NameAttr     string `yaml:"name_attr"`
}

// GroupSearch is how an LDAP connector finds a user's groups: entries under BaseDN matching
// Filter whose MemberAttr holds the user's DN, named by NameAttr.
type GroupSearch struct {
	BaseDN     string `yaml:"base_dn"`
	Filter     string `yaml:"filter"`
	MemberAttr string `yaml:"member_attr"`
	NameAttr   string `yaml:"name_attr"`
}

// Config is one entry of the connectors section.
type Config struct {
	ID           string       `yaml:"id"`
	Type         string       `yaml:"type"`
	Name         string       `yaml:"name"`
	Link         string       `yaml:"link"`          // LinkCreate (default) or LinkExisting
	SecondFactor string       `yaml:"second_factor"` // SecondFactorOptional (default) or SecondFactorRequired
	Groups       GroupMapping `yaml:"groups"`

	// oidc
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	ClientSecret     string   `yaml:"-"` // read from ClientSecretFile by Load
	Scopes           []string `yaml:"scopes"`
	Claims           Claims   `yaml:"claims"`

	// ldap
	URL              string      `yaml:"url"`
	StartTLS         bool        `yaml:"start_tls"`
	CAFile           string      `yaml:"ca_file"`
	BindDN           string      `yaml:"bind_dn"`
	BindPasswordFile string      `yaml:"bind_password_file"`
	BindPassword     string      `yaml:"-"` // read from BindPasswordFile by Load
	UserSearch       UserSearch  `yaml:"user_search"`
	GroupSearch      GroupSearch `yaml:"group_search"`
}

var idRule = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// Defaults fills what a connector may leave out.
func (c *Config) Defaults() {
	if c.Link == "" {
		c.Link = LinkCreate
	}
	if c.SecondFactor == "" {
		c.SecondFactor = SecondFactorOptional
	}
	if c.Type == TypeOIDC {
		if len(c.Scopes) == 0 {
			c.Scopes = []string{"openid", "profile", "email"}
		}
		if c.Claims.Username == "" {
			c.Claims.Username = "preferred_username"
		}
		if c.Claims.Email == "" {
			c.Claims.Email = "email"
		}
	}
	if c.Type == TypeLDAP {
		if c.UserSearch.UsernameAttr == "" {
			c.UserSearch.UsernameAttr = "uid"
		}
		if c.UserSearch.Filter == "" {
			c.UserSearch.Filter = "(objectClass=person)"
		}
		if c.GroupSearch.MemberAttr == "" {
			c.GroupSearch.MemberAttr = "member"
		}
		if c.GroupSearch.NameAttr == "" {
			c.GroupSearch.NameAttr = "cn"
		}
	}
	if c.Name == "" {
		c.Name = c.ID
	}
}

// Validate checks a connector's settings (after Defaults), each mistake a sentence naming the
// key. Files are not read here (Load does).
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !idRule.MatchString(c.ID) {
		bad("id must be 1 to 32 characters of a-z, 0-9 and '-': it goes into URLs and the idp claim")
	}
	if c.ID == Local {
		bad("id %q is the local accounts' name in password_backends", Local)
	}
	if c.Link != LinkCreate && c.Link != LinkExisting {
		bad("link must be %s or %s", LinkCreate, LinkExisting)
	}
	if c.SecondFactor != SecondFactorOptional && c.SecondFactor != SecondFactorRequired {
		bad("second_factor must be %s or %s", SecondFactorOptional, SecondFactorRequired)
	}
	if c.Groups.Prefix != "" && len(c.Groups.Map) > 0 {
		bad("groups: give a prefix or a map, not both")
	}
	if p := c.Groups.Prefix; p != "" {
		if err := identity.ValidateGroupName(p + "x"); err != nil {
			bad("groups.prefix: %s", apperr.Message(err))
		}
		if !strings.HasSuffix(p, ":") {
			// "a" would make the upstream's "dmins" our "admins": a prefix must set its groups apart
			bad("groups.prefix must end with ':' (such as %q), so the upstream's groups cannot become ours", strings.TrimRight(p, ":")+":")
		}
	}
	if c.Type == TypeLDAP && c.Link == LinkExisting {
		bad("link: existing is for oidc connectors: a directory's sign-in is the password form, which has no way to link")
	}
	if c.Link == LinkCreate && c.SecondFactor == SecondFactorRequired {
		bad("second_factor: required needs link: existing — a user made just in time has no second factor here, and would be refused for ever")
	}
	for from, to := range c.Groups.Map {
		if err := identity.ValidateGroupName(to); err != nil {
			bad("groups.map[%q]: %s", from, apperr.Message(err))
		}
	}
	switch c.Type {
	case TypeOIDC:
		if u, err := url.Parse(c.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname()))) {
			bad("issuer must be an https URL (http only for a loopback host)")
		}
		if c.ClientID == "" {
			bad("client_id is required")
		}
		if c.ClientSecretFile == "" && c.ClientSecret == "" {
			bad("client_secret_file is required")
		}
		if !slices.Contains(c.Scopes, "openid") {
			bad("scopes must include openid")
		}
	case TypeLDAP:
		u, err := url.Parse(c.URL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps"):
			bad("url must be ldaps://HOST[:PORT] or ldap://HOST[:PORT]")
		case u.Scheme == "ldaps" && c.StartTLS:
			bad("start_tls is for ldap:// URLs: ldaps:// is TLS already")
		case u.Scheme == "ldap" && !c.StartTLS && !IsLoopback(u.Hostname()):
			bad("url: plain ldap:// only to a loopback host; use ldaps:// or start_tls: true")
		}
		if (c.BindDN == "") != (c.BindPasswordFile == "" && c.BindPassword == "") {
			bad("bind_dn and bind_password_file go together")
		}
		if c.UserSearch.BaseDN == "" {
			bad("user_search.base_dn is required")
		}
		if c.GroupSearch.BaseDN == "" && c.GroupSearch.Filter != "" {
			bad("group_search.base_dn is required with group_search.filter")
		}
	default:
		bad("type must be %s or %s", TypeOIDC, TypeLDAP)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("connector %q: %s", c.ID, strings.Join(errs, "; "))
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Apply maps upstream group names to ours: sorted, without duplicates, never nil.
func (m GroupMapping) Apply(upstream []string) []string {
	out := []string{}
	for _, g := range upstream {
		var ours string
		switch {
		case m.Prefix != "":
			ours = strings.ToLower(m.Prefix + g)
		case m.Map != nil:
			ours = m.Map[g]
		}
		if ours != "" && identity.ValidateGroupName(ours) == nil {
			out = append(out, ours)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Errors a connector answers with.
var (
	// ErrInvalidCredentials: the directory refused the username and password (or has no such
	// user). EUNAUTHORIZED, the same words as a local wrong password.
	ErrInvalidCredentials = apperr.Errorf(apperr.EUNAUTHORIZED, "Invalid credentials")
	// ErrUnavailable: the upstream could not be asked (down, answering garbage). EUNAVAILABLE.
	ErrUnavailable = apperr.Errorf(apperr.EUNAVAILABLE, "The sign-in service is unavailable; try again later")
	// ErrGone: the person is no longer known upstream, or disabled there. EUNAUTHORIZED.
	ErrGone = apperr.Errorf(apperr.EUNAUTHORIZED, "The account is no longer active upstream")
)

// PasswordConnector checks a username and password upstream (LDAP).
type PasswordConnector interface {
	// Login binds as the user: ErrInvalidCredentials for a wrong password or unknown user,
	// ErrUnavailable when the directory cannot be asked.
	Login(ctx context.Context, username, password string) (Identity, error)
	// Refresh asks whether the person is still there and active: their identity as it is now,
	// ErrGone when not, ErrUnavailable when the directory cannot be asked.
	Refresh(ctx context.Context, id Identity) (Identity, error)
}

// RedirectConnector signs in through the browser at the upstream (OpenID Connect).
type RedirectConnector interface {
	// AuthCodeURL is where the browser goes: the upstream's authorization endpoint with the
	// state, nonce and PKCE S256 challenge of verifier.
	AuthCodeURL(state, nonce, verifier string) string
	// Exchange redeems code with verifier and returns who the upstream's ID token (verified:
	// signature by the upstream's JWKS, iss, aud, expiry, and nonce) names. ErrUnavailable when
	// the upstream cannot be reached; EUNAUTHORIZED for a token that fails a check.
	Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error)
}

// Status is what a connector last did.
type Status struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Name        string    `json:"name"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   time.Time `json:"last_error,omitzero"`
	Error       string    `json:"error,omitempty"` // the last error's words: never a secret
}

// Statuses keeps each connector's Status in this process (each replica its own).
type Statuses struct {
	mu sync.Mutex
	s  map[string]*Status
	// order is the connectors' order in the file.
	order []string
}

// NewStatuses starts the record of cs's connectors.
func NewStatuses(cs []Config) *Statuses {
	st := &Statuses{s: map[string]*Status{}}
	for _, c := range cs {
		st.s[c.ID] = &Status{ID: c.ID, Type: c.Type, Name: c.Name}
		st.order = append(st.order, c.ID)
	}
	return st
}

// Record notes the outcome of asking connector id at now: err nil is a success; an error of
// the person's (wrong password, ErrGone) is a success of the connector too — only
// ErrUnavailable and unexpected errors count as its errors.
func (st *Statuses) Record(id string, now time.Time, err error) {
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.s[id]
	if s == nil {
		return
	}
	switch apperr.Code(err) {
	case "", apperr.EUNAUTHORIZED, apperr.EINVALID:
		s.LastSuccess = now.UTC()
	default:
		s.LastError, s.Error = now.UTC(), apperr.Message(err)
	}
}

// List returns every connector's status, in the file's order.
func (st *Statuses) List() []Status {
	if st == nil {
		return []Status{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]Status, 0, len(st.order))
	for _, id := range st.order {
		out = append(out, *st.s[id])
	}
	return out
}

// Load reads the connector's secret files (client_secret_file, bind_password_file), each
// required to hold a secret.
func (c *Config) Load() error {
	read := func(path, what string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("connector %q: cannot read its %s: %w", c.ID, what, errors.Unwrap(err))
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("connector %q: its %s is empty", c.ID, what)
		}
		return s, nil
	}
	var err error
	if c.ClientSecretFile != "" {
		if c.ClientSecret, err = read(c.ClientSecretFile, "client_secret_file"); err != nil {
			return err
		}
	}
	if c.BindPasswordFile != "" {
		if c.BindPassword, err = read(c.BindPasswordFile, "bind_password_file"); err != nil {
			return err
		}
	}
	return nil
}

// CheckBackends checks password_backends against the connectors: each is upstream.Local or an
// ldap connector's id, once. Empty means local only.
func CheckBackends(backends []string, cs []Config) error {
	seen := map[string]bool{}
	for _, b := range backends {
		if seen[b] {
			return fmt.Errorf("password_backends names %q twice", b)
		}
		seen[b] = true
		if b == Local {
			continue
		}
		i := slices.IndexFunc(cs, func(c Config) bool { return c.ID == b })
		switch {
		case i < 0:
			return fmt.Errorf("password_backends: %q is neither %q nor a connector's id", b, Local)
		case cs[i].Type != TypeLDAP:
			return fmt.Errorf("password_backends: connector %q is of type %s: only ldap connectors check passwords", b, cs[i].Type)
		}
	}
	return nil
}
