// Package envflag gives every setting a flag and an environment variable of the same meaning;
// the flag wins. Settings parse straight into typed values, and the packages that own a value
// validate it (Check); whatever refuses a value — its parser or a rule — the error is one
// InvalidError naming the flag and the variable, so an operator knows what to change.
package envflag

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Set is a flag.FlagSet whose flags also read an environment variable.
type Set struct {
	name     string
	fs       *flag.FlagSet
	out      io.Writer
	settings map[string]*setting
	order    []*setting // as defined: variables are read, and reported, in this order
	checks   []check
	layers   []func() ([]FileValue, error)
	bad      *InvalidError // the first value the command line gave that did not parse
}

type setting struct {
	name, env, usage string
	kind             string // the type word of the usage text; "" for a boolean
	def              string // default as text, "" when it is the type's zero (not shown)
	quote            bool   // the default is shown quoted
	secret           bool   // never repeated in an error
	given            bool   // set by the command line, the environment or a file (where)
	raw              string // the text it was set with
	where            string // "FILE:LINE" when a file (Layer) set it
	value            flag.Value
}

type check struct {
	rule  func() error
	names []string
}

// New returns an empty Set; usage goes to out. As with flag, a back-quoted word in a setting's
// usage names its value in the usage text.
func New(name string, out io.Writer) *Set {
	s := &Set{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError), out: out, settings: map[string]*setting{}}
	s.fs.SetOutput(out)
	s.fs.Usage = s.usage
	return s
}

// InvalidError is the one error for a refused setting. Settings are those the refusal is about
// (for a rule over several, the ones the operator set).
type InvalidError struct {
	Settings []Setting
	Err      error
}

// Setting names a setting and the value it was refused with.
type Setting struct {
	Flag  string // without dashes
	Env   string // "" when the setting has no variable
	Value string // as given; "" for a secret (never repeated)
	Where string // "FILE:LINE" when a configuration file gave the value (Layer), else ""
}

// Error names each setting as the operator wrote it: a flag with its variable, or a file's key;
// when a file gave any of the values, it begins with that place ("idp.yaml:3: invalid
// token_ttl …"), as a compiler names a line.
func (e *InvalidError) Error() string {
	var b strings.Builder
	for _, s := range e.Settings {
		if s.Where != "" {
			b.WriteString(s.Where + ": ")
			break
		}
	}
	b.WriteString("invalid ")
	for i, s := range e.Settings {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case s.Where != "":
			b.WriteString(Key(s.Flag))
		default:
			b.WriteString("--" + s.Flag)
			if s.Env != "" {
				b.WriteString(" (" + s.Env + ")")
			}
		}
		if s.Value != "" {
			fmt.Fprintf(&b, " %q", s.Value)
		}
	}
	return b.String() + ": " + e.Err.Error()
}

func (e *InvalidError) Unwrap() error { return e.Err }

func (s *Set) invalid(err error, settings ...*setting) *InvalidError {
	e := &InvalidError{Err: err}
	for _, st := range settings {
		v := st.raw
		if !st.given {
			v = st.value.String() // the default
		}
		e.Settings = append(e.Settings, st.named(v))
	}
	return e
}

// named names the setting with value v, unless it is secret, and the file line that gave it.
func (st *setting) named(v string) Setting {
	if st.secret {
		v = ""
	}
	return Setting{Flag: st.name, Env: st.env, Value: v, Where: st.where}
}

// arg is what the flag package holds for a setting: it records a value that does not parse,
// so Parse can name the setting.
type arg struct {
	s  *Set
	st *setting
}

func (a *arg) String() string {
	if a == nil || a.st == nil {
		return ""
	}
	return a.st.value.String()
}

func (a *arg) Set(v string) error {
	if err := a.st.value.Set(v); err != nil {
		if a.s.bad == nil {
			a.s.bad = &InvalidError{Settings: []Setting{a.st.named(v)}, Err: err}
		}
		return err
	}
	a.st.given, a.st.raw = true, v
	return nil
}

func (a *arg) IsBoolFlag() bool { return a != nil && a.st != nil && a.st.kind == "" }

func (s *Set) define(v flag.Value, name, env, usage, kind string, quote bool) {
	if _, dup := s.settings[name]; dup {
		panic("envflag: " + name + " defined twice")
	}
	// As with flag, a back-quoted word in usage names the value in the usage text.
	if before, rest, ok := strings.Cut(usage, "`"); ok {
		if word, after, ok := strings.Cut(rest, "`"); ok {
			kind, usage = word, before+word+after
		}
	}
	st := &setting{name: name, env: env, usage: usage, kind: kind, def: v.String(), quote: quote, value: v}
	s.settings[name] = st
	s.order = append(s.order, st)
	s.fs.Var(&arg{s: s, st: st}, name, usage)
}

// value is a flag.Value over a typed variable.
type value[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
}

func (v *value[T]) String() string { return v.format(*v.p) }

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func define[T comparable](s *Set, p *T, name, env string, def T, usage, kind string, parse func(string) (T, error)) {
	*p = def
	v := &value[T]{p: p, parse: parse, format: func(x T) string { return fmt.Sprint(x) }}
	_, quote := any(def).(string)
	s.define(v, name, env, usage, kind, quote)
	var zero T
	if def == zero {
		s.settings[name].def = ""
	}
}

var (
	errDuration = errors.New("not a duration (such as 90s, 15m or 720h)")
	errNumber   = errors.New("not a whole number")
	errRange    = errors.New("out of range")
	errBool     = errors.New("not true or false")
)

func numErr(err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return errRange
	}
	return errNumber
}

// StringVar defines a string setting.
func (s *Set) StringVar(p *string, name, env, def, usage string) {
	define(s, p, name, env, def, usage, "string", func(v string) (string, error) { return v, nil })
}

// DurationVar defines a duration setting (Go syntax: 90s, 15m, 720h).
func (s *Set) DurationVar(p *time.Duration, name, env string, def time.Duration, usage string) {
	define(s, p, name, env, def, usage, "duration", func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, errDuration
		}
		return d, nil
	})
}

// IntVar defines an integer setting.
func (s *Set) IntVar(p *int, name, env string, def int, usage string) {
	define(s, p, name, env, def, usage, "int", func(v string) (int, error) {
		n, err := strconv.ParseInt(v, 0, strconv.IntSize)
		if err != nil {
			return 0, numErr(err)
		}
		return int(n), nil
	})
}

// BoolVar defines a boolean setting: --name alone sets it.
func (s *Set) BoolVar(p *bool, name, env string, def bool, usage string) {
	define(s, p, name, env, def, usage, "", func(v string) (bool, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, errBool
		}
		return b, nil
	})
}

// UintVar defines an unsigned setting of any width; a value that does not fit is out of range.
func UintVar[T ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uint](s *Set, p *T, name, env string, def T, usage string) {
	size := bits.Len64(uint64(^T(0)))
	define(s, p, name, env, def, usage, "uint", func(v string) (T, error) {
		n, err := strconv.ParseUint(v, 0, size)
		if err != nil {
			return 0, numErr(err)
		}
		return T(n), nil
	})
}

// Var defines a setting of any type that can parse itself; its current String is the default.
func (s *Set) Var(v flag.Value, name, env, usage string) {
	s.define(v, name, env, usage, "value", false)
}

// textValue is flag's textValue: a setting over encoding.TextUnmarshaler.
type textValue struct{ p encoding.TextUnmarshaler }

func (v textValue) Set(s string) error { return v.p.UnmarshalText([]byte(s)) }

func (v textValue) String() string {
	if m, ok := v.p.(encoding.TextMarshaler); ok {
		if b, err := m.MarshalText(); err == nil {
			return string(b)
		}
	}
	return ""
}

// TextVar defines a setting parsed by p's UnmarshalText (slog.Level, netip.Addr, …), starting at
// def.
func (s *Set) TextVar(p encoding.TextUnmarshaler, name, env string, def encoding.TextMarshaler, usage string) {
	b, err := def.MarshalText()
	if err == nil {
		err = p.UnmarshalText(b)
	}
	if err != nil {
		panic(fmt.Sprintf("envflag: default of %s: %v", name, err))
	}
	s.Var(textValue{p}, name, env, usage)
}

// String defines a string setting.
func (s *Set) String(name, env, def, usage string) *string {
	p := new(string)
	s.StringVar(p, name, env, def, usage)
	return p
}

// Duration defines a duration setting (Go syntax: 90s, 15m, 720h).
func (s *Set) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	s.DurationVar(p, name, env, def, usage)
	return p
}

// Int defines an integer setting.
func (s *Set) Int(name, env string, def int, usage string) *int {
	p := new(int)
	s.IntVar(p, name, env, def, usage)
	return p
}

// Bool defines a boolean setting.
func (s *Set) Bool(name, env string, def bool, usage string) *bool {
	p := new(bool)
	s.BoolVar(p, name, env, def, usage)
	return p
}

// Secret marks settings whose values an error never repeats (credentials).
func (s *Set) Secret(names ...string) {
	for _, n := range names {
		s.lookup(n).secret = true
	}
}

// Check adds a rule over the parsed values of the named settings — typically the Validate of
// the package that owns them. Parse runs the rules in the order added, once every value is set;
// a rule's error becomes an InvalidError naming those of the settings the operator set (all of
// them when none was).
func (s *Set) Check(rule func() error, names ...string) {
	for _, n := range names {
		s.lookup(n)
	}
	s.checks = append(s.checks, check{rule, names})
}

// Require is Check for a rule that is a condition: when ok returns false, the error says the
// setting must be (be: "be at least 1s").
func (s *Set) Require(ok func() bool, be string, names ...string) {
	s.Check(func() error {
		if ok() {
			return nil
		}
		return errors.New("must " + be)
	}, names...)
}

func (s *Set) lookup(name string) *setting {
	st, ok := s.settings[name]
	if !ok {
		panic("envflag: no setting " + name)
	}
	return st
}

// Parse parses args, fills every setting not given on the command line from its variable (an
// empty variable counts as unset), then from the layers (a configuration file), then runs the
// rules. A refused value is an *InvalidError; -h is flag.ErrHelp. It stops at the first mistake
// (a layer's mistakes come together, errors.Join).
func (s *Set) Parse(args []string, getenv func(string) string) error {
	switch errs := s.parse(args, getenv, false); len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	default:
		return errors.Join(errs...)
	}
}

// ParseAll is Parse that goes on past a refused value, for a check of a configuration file: it
// returns every mistake — each refused value, each of a layer's (errors.Join), each rule broken
// — in order. A rule over a setting whose value was refused is not run.
func (s *Set) ParseAll(args []string, getenv func(string) string) []error {
	return s.parse(args, getenv, true)
}

func (s *Set) parse(args []string, getenv func(string) string, all bool) []error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if err := s.fs.Parse(args); err != nil {
		if s.bad != nil {
			return []error{s.bad}
		}
		return []error{err}
	}
	if s.fs.NArg() > 0 {
		return []error{fmt.Errorf("unexpected argument %q", s.fs.Arg(0))}
	}
	var errs []error
	refused := map[*setting]bool{}
	for _, st := range s.order {
		if st.given || st.env == "" {
			continue
		}
		v := getenv(st.env)
		if v == "" {
			continue
		}
		if err := st.value.Set(v); err != nil {
			errs = append(errs, &InvalidError{Settings: []Setting{st.named(v)}, Err: err})
			if !all {
				return errs
			}
			refused[st] = true
			continue
		}
		st.given, st.raw = true, v
	}
	for _, load := range s.layers {
		vals, err := load()
		if err != nil {
			errs = append(errs, unjoin(err)...)
			if !all {
				return errs
			}
		}
		for _, fv := range vals {
			st := s.lookup(fv.Name)
			if st.given || refused[st] {
				continue // the command line and the environment win over a file
			}
			st.where = fv.Where
			if err := st.value.Set(fv.Value); err != nil {
				errs = append(errs, &InvalidError{Settings: []Setting{st.named(fv.Value)}, Err: err})
				if !all {
					return errs
				}
				refused[st] = true
				continue
			}
			st.given, st.raw = true, fv.Value
		}
	}
	for _, c := range s.checks {
		if slices.ContainsFunc(c.names, func(n string) bool { return refused[s.settings[n]] }) {
			continue
		}
		if err := c.rule(); err != nil {
			var named, given []*setting
			for _, n := range c.names {
				named = append(named, s.settings[n])
				if s.settings[n].given {
					given = append(given, s.settings[n])
				}
			}
			if len(given) == 0 {
				given = named
			}
			errs = append(errs, s.invalid(err, given...))
			if !all {
				return errs
			}
		}
	}
	return errs
}

// unjoin is the errors errors.Join joined, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// FileValue is a setting's value as a configuration file gives it.
type FileValue struct {
	Name  string // the setting's flag name
	Value string // as text, parsed by the setting's own parser
	Where string // "FILE:LINE", which errors about the value begin with
}

// Layer adds a source of values below the command line and the environment: a configuration
// file. Once Parse has read both, it calls load (which may read the settings they gave, such
// as the file's name) and sets each value load gives to a setting neither gave, with that
// setting's parser; the rules then run over the result. An error of load stops Parse; errors
// it joins (errors.Join) are reported one by one by ParseAll.
func (s *Set) Layer(load func() ([]FileValue, error)) {
	s.layers = append(s.layers, load)
}

// Given are the settings the command line and the environment gave, as arguments
// ("--name=value"), but for those named in except: to check a configuration file again later as
// it was checked at start, under the same settings.
func (s *Set) Given(except ...string) []string {
	var out []string
	for _, st := range s.order {
		if st.given && st.where == "" && !slices.Contains(except, st.name) {
			out = append(out, "--"+st.name+"="+st.raw)
		}
	}
	return out
}

// Key is a setting's key in a configuration file: its flag's name with "-" turned into "_"
// (token-ttl is token_ttl).
func Key(name string) string { return strings.ReplaceAll(name, "-", "_") }

// FileKeys maps each file key to its setting's flag name: every setting that has a variable
// (a flag without one, such as --version, is for the command line only).
func (s *Set) FileKeys() map[string]string {
	keys := map[string]string{}
	for _, st := range s.order {
		if st.env != "" {
			keys[Key(st.name)] = st.name
		}
	}
	return keys
}

// usage prints what flag.FlagSet's default usage prints, with each setting's variable.
func (s *Set) usage() {
	fmt.Fprintf(s.out, "Usage of %s:\n", s.name)
	sorted := slices.SortedFunc(slices.Values(s.order), func(a, b *setting) int { return strings.Compare(a.name, b.name) })
	for _, st := range sorted {
		var b strings.Builder
		b.WriteString("  -" + st.name)
		if st.kind != "" {
			b.WriteString(" " + st.kind)
		}
		b.WriteString("\n    \t" + strings.ReplaceAll(st.usage, "\n", "\n    \t"))
		if st.env != "" {
			b.WriteString(" (env " + st.env + ")")
		}
		switch {
		case st.def == "":
		case st.quote:
			fmt.Fprintf(&b, " (default %q)", st.def)
		default:
			fmt.Fprintf(&b, " (default %s)", st.def)
		}
		fmt.Fprintln(s.out, b.String())
	}
}
