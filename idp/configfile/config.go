// Package configfile reads the IdP's configuration file (`idp serve --config idp.yaml`): YAML whose
// keys are the settings' (envflag's layer below the command line and the environment) and its
// sections — the registered clients, the scopes limited to groups, the access rules. Every
// mistake is reported with its line, and all of them at once, so `idp config check` and a
// refused reload can name each; a file is used whole or not at all.
package configfile

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/idp/httpapi"
	"jwtidp/idp/identity"
	"jwtidp/idp/upstream"
	"jwtidp/shared/envflag"
)

// Mistake is one mistake in a file: its line (0: the file as a whole) and what is wrong. It
// never repeats a secret.
type Mistake struct {
	File string
	Line int
	Msg  string
}

func (m Mistake) Error() string {
	if m.Line == 0 {
		return m.File + ": " + m.Msg
	}
	return fmt.Sprintf("%s:%d: %s", m.File, m.Line, m.Msg)
}

// Sections beyond the settings' keys.
const (
	SectionClients    = "clients"           // registered clients: the objects of the --clients file
	SectionScopes     = "scopes"            // scope → auth.ScopeRule
	SectionAccess     = "access_control"    // access.Config
	SectionConnectors = "connectors"        // upstream identity: []upstream.Config
	SectionBackends   = "password_backends" // what the password form tries, in order
	SectionSMTP       = "smtp"              // the mail server: its keys are the smtp_* settings'
)

// File is what a configuration file says.
type File struct {
	Path     string
	Settings []envflag.FileValue // the settings' keys, for envflag.Set.Layer
	Clients  []httpapi.ClientInfo
	// ClientLines is where each client is (client id → "FILE:LINE").
	ClientLines map[string]string
	Scopes      map[string]auth.ScopeRule
	// Access is the access_control section compiled; nil when the file has none.
	Access *access.Policy
	// Connectors are the upstream identity providers, checked (their secret files not read).
	Connectors []upstream.Config
	// PasswordBackends is what the password form tries, in order; nil: local accounts only.
	PasswordBackends []string
}

// Read reads and checks the file at path; keys are the settings' file keys (envflag's
// FileKeys, key → flag name). On any mistake it returns them all (errors.Join of Mistakes),
// with what it could read of the file: its settings still go through their own checks, so one
// check reports every mistake.
func Read(path string, keys map[string]string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Mistake{File: path, Msg: fmt.Sprintf("cannot read the configuration file: %v", errors.Unwrap(err))}
	}
	f, mistakes := Parse(path, b, keys)
	if len(mistakes) > 0 {
		errs := make([]error, len(mistakes))
		for i, m := range mistakes {
			errs[i] = m
		}
		return f, errors.Join(errs...)
	}
	return f, nil
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// Parse checks the file named name with content b. The sections take their names before the
// settings' keys (the --clients setting, a file name, has no key: the clients section is the
// file's own list). With mistakes, the File is what could be read (nil when it is not YAML).
func Parse(name string, b []byte, keys map[string]string) (*File, []Mistake) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		m := Mistake{File: name, Msg: err.Error()}
		if sub := yamlLine.FindStringSubmatch(err.Error()); sub != nil {
			m.Line, _ = strconv.Atoi(sub[1])
			m.Msg = "not YAML: " + sub[2]
		}
		return nil, []Mistake{m}
	}
	d := &decoder{file: name, lines: map[string]int{}}
	f := &File{Path: name, ClientLines: map[string]string{}}
	var top *yaml.Node
	if len(doc.Content) > 0 {
		top = doc.Content[0]
	} else {
		top = &yaml.Node{Kind: yaml.MappingNode, Line: 1} // an empty file: every default
	}
	known := []string{SectionClients, SectionScopes, SectionAccess, SectionConnectors, SectionBackends, SectionSMTP}
	for k := range keys {
		known = append(known, k)
	}
	slices.Sort(known)
	var accessCfg *access.Config
	backendsLine := 0
	d.pairs(top, "", func(k, v *yaml.Node) {
		switch k.Value {
		case SectionClients:
			f.clients(d, v, k.Line)
		case SectionScopes:
			f.scopes(d, v, k.Line)
		case SectionAccess:
			accessCfg = new(access.Config)
			d.decode(v, reflect.ValueOf(accessCfg).Elem(), k.Value, k.Line)
		case SectionSMTP:
			f.smtp(d, v, k.Line, keys)
		case SectionConnectors:
			f.connectors(d, v, k.Line)
		case SectionBackends:
			backendsLine = k.Line
			d.decode(v, reflect.ValueOf(&f.PasswordBackends).Elem(), k.Value, k.Line)
		default:
			flag, ok := keys[k.Value]
			if rest, section := strings.CutPrefix(k.Value, SectionSMTP+"_"); ok && section {
				// One spelling: the mail server's settings live in their section.
				d.bad(k.Line, "%s belongs in the smtp section (smtp: {%s: …})", k.Value, rest)
				return
			}
			if !ok {
				d.bad(k.Line, "unknown key %s%s", k.Value, suggest(k.Value, known))
				return
			}
			f.setting(d, k.Value, flag, v, k.Line)
		}
	})
	if accessCfg != nil && len(d.mistakes) == 0 {
		// Compile only a section that decoded: its problems name paths, each a line here.
		policy, problems := access.Compile(*accessCfg)
		for _, p := range problems {
			d.bad(d.lineOf(SectionAccess, p.Path), "%s: %s", join(SectionAccess, p.Path), p.Msg)
		}
		f.Access = policy
	}
	if backendsLine > 0 && len(d.mistakes) == 0 {
		if err := upstream.CheckBackends(f.PasswordBackends, f.Connectors); err != nil {
			d.bad(backendsLine, "%v", err)
		}
	}
	return f, d.mistakes
}

// connectors decodes the connectors section and checks each entry that decoded, and that no
// two share an id.
func (f *File) connectors(d *decoder, n *yaml.Node, line int) {
	seen := map[string]bool{}
	eachEntry(d, n, SectionConnectors, line, func(_ int, path string, c upstream.Config) {
		c.Defaults()
		switch err := c.Validate(); {
		case err != nil:
			d.bad(d.lines[path], "%s: %v", path, err)
		case seen[c.ID]:
			d.bad(d.lines[path], "%s: a connector with id %q comes before", path, c.ID)
		default:
			seen[c.ID] = true
			f.Connectors = append(f.Connectors, c)
		}
	})
}

// eachEntry decodes a section that is a list, entry by entry, into T, and hands check each
// entry that decoded with its path: an entry's mistakes are said, and checking what could be
// read of it would add noise.
func eachEntry[T any](d *decoder, n *yaml.Node, section string, line int, check func(i int, path string, v T)) {
	var nodes []*yaml.Node
	d.decode(n, reflect.ValueOf(&nodes).Elem(), section, line)
	for i, e := range nodes {
		var v T
		path, before := fmt.Sprintf("%s[%d]", section, i), len(d.mistakes)
		d.decode(e, reflect.ValueOf(&v).Elem(), path, resolve(e).Line)
		if len(d.mistakes) == before {
			check(i, path, v)
		}
	}
}

// lineOf is the line of path under section, or of the nearest enclosing path decoded.
func (d *decoder) lineOf(section, path string) int {
	p := join(section, path)
	for {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := max(strings.LastIndexByte(p, '.'), strings.LastIndexByte(p, '['))
		if i <= 0 {
			return d.lines[section]
		}
		p = p[:i]
	}
}

// clients decodes the clients section and checks each client that decoded as the --clients
// file's are checked.
func (f *File) clients(d *decoder, n *yaml.Node, line int) {
	seen := map[string]bool{}
	eachEntry(d, n, SectionClients, line, func(i int, path string, ci httpapi.ClientInfo) {
		if err := CheckClient(i, ci, seen); err != nil {
			d.bad(d.lines[path], "%v", err)
			return
		}
		f.Clients = append(f.Clients, ci)
		f.ClientLines[ci.ClientID] = fmt.Sprintf("%s:%d", d.file, d.lines[path])
	})
}

// scopes decodes the scopes section and checks each scope that decoded: a scope token limited
// to at least one group.
func (f *File) scopes(d *decoder, n *yaml.Node, line int) {
	var nodes map[string]*yaml.Node
	d.decode(n, reflect.ValueOf(&nodes).Elem(), SectionScopes, line)
	f.Scopes = map[string]auth.ScopeRule{}
	for _, scope := range slices.Sorted(maps.Keys(nodes)) {
		var rule auth.ScopeRule
		path, before := join(SectionScopes, scope), len(d.mistakes)
		d.decode(nodes[scope], reflect.ValueOf(&rule).Elem(), path, d.lines[path])
		if len(d.mistakes) > before {
			continue
		}
		if !identity.ScopeToken(scope) {
			d.bad(d.lines[path], "%q is not a scope (a word without spaces or quotes)", scope)
		}
		if len(rule.Groups) == 0 {
			d.bad(d.lines[path], "%s: groups must name at least one group (members only are granted the scope)", path)
		}
		for i, g := range rule.Groups {
			if identity.ValidateGroupName(g) != nil {
				d.bad(d.lines[fmt.Sprintf("%s.groups[%d]", path, i)], "%s: %q is not a group name (a-z, 0-9 and . _ : -, at most 64)", path, g)
			}
		}
		f.Scopes[scope] = rule
	}
}

// setting records the value of the settings' key (whose flag is flag) at line, a single value.
func (f *File) setting(d *decoder, key, flag string, v *yaml.Node, line int) {
	v = resolve(v)
	switch {
	case v.Kind != yaml.ScalarNode:
		d.bad(line, "%s must be a single value, not %s", key, shape(v))
	case isNull(v):
		d.bad(line, "%s has no value (leave the key out for the default)", key)
	default:
		f.Settings = append(f.Settings, envflag.FileValue{Name: flag, Value: v.Value, Where: fmt.Sprintf("%s:%d", d.file, line)})
	}
}

// smtp reads the smtp section: each of its keys is the setting smtp_KEY (host is the
// --smtp-host flag's), so a flag or variable given as well wins, as for every setting.
func (f *File) smtp(d *decoder, n *yaml.Node, line int, keys map[string]string) {
	d.lines[SectionSMTP] = line
	var known []string
	for k := range keys {
		if rest, ok := strings.CutPrefix(k, SectionSMTP+"_"); ok {
			known = append(known, rest)
		}
	}
	slices.Sort(known)
	d.pairs(n, SectionSMTP, func(k, v *yaml.Node) {
		flag, ok := keys[SectionSMTP+"_"+k.Value]
		if !ok {
			d.bad(k.Line, "unknown key %s%s", join(SectionSMTP, k.Value), suggest(k.Value, known))
			return
		}
		f.setting(d, join(SectionSMTP, k.Value), flag, v, k.Line)
	})
}
