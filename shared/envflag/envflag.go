// Package envflag gives every setting a flag and an environment variable of the same meaning;
// the flag wins. A bad value from either names the setting.
package envflag

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Set is a flag.FlagSet whose flags also read an environment variable.
type Set struct {
	fs  *flag.FlagSet
	env map[string]string // flag name → variable
}

// New returns an empty Set; usage goes to out.
func New(name string, out io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &Set{fs: fs, env: map[string]string{}}
}

func (s *Set) register(name, env string) string {
	s.env[name] = env
	if env == "" {
		return ""
	}
	return " (env " + env + ")"
}

// String defines a string setting.
func (s *Set) String(name, env, def, usage string) *string {
	return s.fs.String(name, def, usage+s.register(name, env))
}

// Duration defines a duration setting (Go syntax: 90s, 15m, 720h).
func (s *Set) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	return s.fs.Duration(name, def, usage+s.register(name, env))
}

// Int defines an integer setting.
func (s *Set) Int(name, env string, def int, usage string) *int {
	return s.fs.Int(name, def, usage+s.register(name, env))
}

// Bool defines a boolean setting.
func (s *Set) Bool(name, env string, def bool, usage string) *bool {
	return s.fs.Bool(name, def, usage+s.register(name, env))
}

// Parse parses args, then fills every flag not given on the command line from its variable.
func (s *Set) Parse(args []string, getenv func(string) string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", s.fs.Arg(0))
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, env := range s.env {
		if given[name] || env == "" {
			continue
		}
		v, ok := lookup(getenv, env)
		if !ok {
			continue
		}
		if err := s.fs.Set(name, v); err != nil {
			return fmt.Errorf("invalid value %q for %s (--%s): %v", v, env, name, unwrapFlagErr(err))
		}
	}
	return nil
}

func lookup(getenv func(string) string, env string) (string, bool) {
	v := getenv(env)
	return v, v != ""
}

func unwrapFlagErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
