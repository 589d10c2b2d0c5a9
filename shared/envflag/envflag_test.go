package envflag

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type settings struct {
	addr   string
	ttl    time.Duration
	n      int
	mem    uint32
	on     bool
	level  slog.Level
	secret string
}

func newSet(s *settings) *Set {
	fs := New("test", io.Discard)
	fs.StringVar(&s.addr, "addr", "T_ADDR", "127.0.0.1:1", "")
	fs.DurationVar(&s.ttl, "ttl", "T_TTL", time.Minute, "")
	fs.IntVar(&s.n, "n", "T_N", 5, "")
	UintVar(fs, &s.mem, "mem", "T_MEM", 64, "")
	fs.BoolVar(&s.on, "on", "", false, "")
	fs.TextVar(&s.level, "log-level", "T_LOG_LEVEL", slog.LevelInfo, "")
	fs.StringVar(&s.secret, "secret", "T_SECRET", "", "")
	fs.Secret("secret")
	fs.Require(func() bool { return s.n <= 10 || s.mem >= 128 }, "be at most 10 unless mem is 128 or more", "n", "mem")
	fs.Require(func() bool { return s.secret != "hunter2" }, "not be that", "secret")
	return fs
}

func env(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestTypedValuesFlagWinsOverVariable(t *testing.T) {
	var s settings
	err := newSet(&s).Parse([]string{"--ttl", "90s", "--on", "--log-level", "debug"},
		env("T_TTL", "1h", "T_N", "7", "T_MEM", "4096", "T_ADDR", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := settings{addr: "127.0.0.1:1", ttl: 90 * time.Second, n: 7, mem: 4096, on: true, level: slog.LevelDebug}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestInvalidNamesFlagAndVariable(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--ttl", "soon"}, nil, `invalid --ttl (T_TTL) "soon": not a duration`},
		{nil, []string{"T_TTL", "forever"}, `invalid --ttl (T_TTL) "forever": not a duration`},
		{nil, []string{"T_MEM", "5000000000"}, `invalid --mem (T_MEM) "5000000000": out of range`},
		{nil, []string{"T_LOG_LEVEL", "loud"}, `invalid --log-level (T_LOG_LEVEL) "loud": slog: level string`},
		// A rule names the settings the operator set among those it is about.
		{[]string{"--n", "11"}, nil, `invalid --n (T_N) "11": must be at most 10 unless mem is 128 or more`},
		{[]string{"--n", "11"}, []string{"T_MEM", "100"}, `invalid --n (T_N) "11", --mem (T_MEM) "100": must be`},
		// A secret is named, never repeated.
		{[]string{"--secret", "hunter2"}, nil, `invalid --secret (T_SECRET): must not be that`},
	} {
		var s settings
		err := newSet(&s).Parse(tc.args, env(tc.env...))
		var inv *InvalidError
		if !errors.As(err, &inv) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v %v: got %v, want an InvalidError starting %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestUsageShowsVariablesAndDefaults(t *testing.T) {
	var b strings.Builder
	var s settings
	fs := New("test", &b)
	fs.DurationVar(&s.ttl, "ttl", "T_TTL", time.Minute, "lifetime")
	fs.StringVar(&s.addr, "addr", "T_ADDR", "x", "listen `address`")
	fs.BoolVar(&s.on, "on", "", false, "switch")
	if err := fs.Parse([]string{"-h"}, env()); err == nil {
		t.Fatal("-h parsed")
	}
	want := "Usage of test:\n" +
		"  -addr address\n    \tlisten address (env T_ADDR) (default \"x\")\n" +
		"  -on\n    \tswitch\n" +
		"  -ttl duration\n    \tlifetime (env T_TTL) (default 1m0s)\n"
	if b.String() != want {
		t.Fatalf("usage:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A file's values sit below the environment and the command line, go through the settings' own
// parsers and rules, and a refused one is named by its key and line; ParseAll reports every
// mistake, Parse the first.
func TestLayerBelowEnvironmentAndFlags(t *testing.T) {
	file := func(vals ...FileValue) func(fs *Set) {
		return func(fs *Set) { fs.Layer(func() ([]FileValue, error) { return vals, nil }) }
	}
	var s settings
	fs := newSet(&s)
	file(FileValue{"ttl", "2h", "f.yaml:1"}, FileValue{"n", "3", "f.yaml:2"}, FileValue{"addr", "10.0.0.1:9", "f.yaml:3"})(fs)
	if err := fs.Parse([]string{"--ttl", "90s"}, env("T_N", "7")); err != nil {
		t.Fatal(err)
	}
	if s.ttl != 90*time.Second || s.n != 7 || s.addr != "10.0.0.1:9" {
		t.Fatalf("got %+v: the flag, the variable, then the file", s)
	}
	if keys := fs.FileKeys(); keys["log_level"] != "log-level" || keys["ttl"] != "ttl" || keys["on"] != "" {
		t.Fatalf("file keys %v: a setting with a variable has one, --on has none", keys)
	}

	s = settings{}
	fs = newSet(&s)
	file(FileValue{"ttl", "soon", "f.yaml:4"}, FileValue{"secret", "hunter2", "f.yaml:5"}, FileValue{"n", "11", "f.yaml:6"}, FileValue{"mem", "x", "f.yaml:7"})(fs)
	fs.Layer(func() ([]FileValue, error) {
		return nil, errors.Join(errors.New("f.yaml:8: one"), errors.New("f.yaml:9: two"))
	})
	errs := fs.ParseAll(nil, nil)
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	want := []string{
		`f.yaml:4: invalid ttl "soon": not a duration (such as 90s, 15m or 720h)`,
		`f.yaml:7: invalid mem "x": not a whole number`,
		"f.yaml:8: one", "f.yaml:9: two",
		// n's rule is about mem too, whose value was refused: it is not run.
		`f.yaml:5: invalid secret: must not be that`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ParseAll:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s = settings{}
	fs = newSet(&s)
	file(FileValue{"ttl", "soon", "f.yaml:4"}, FileValue{"mem", "x", "f.yaml:7"})(fs)
	if err := fs.Parse(nil, nil); err == nil || err.Error() != want[0] {
		t.Fatalf("Parse: %v, want the first mistake", err)
	}
}

// Given is what the command line and the environment set, as arguments, not the file's.
func TestGiven(t *testing.T) {
	var s settings
	fs := newSet(&s)
	fs.Layer(func() ([]FileValue, error) { return []FileValue{{"n", "3", "f.yaml:1"}}, nil })
	if err := fs.Parse([]string{"--ttl", "90s", "--secret=x y"}, env("T_MEM", "128")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fs.Given("secret"), " "); got != "--ttl=90s --mem=128" {
		t.Fatalf("Given: %s", got)
	}
	again := newSet(&settings{})
	if err := again.Parse(fs.Given(), nil); err != nil {
		t.Fatalf("the settings given again: %v", err)
	}
}
