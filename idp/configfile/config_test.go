package configfile

import (
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"

	"jwtidp/idp/access"
)

// access.Compile names a problem by its path in the section; the file names its line: the
// path's own, or the nearest enclosing one's for a path the file does not spell out.
func TestConfigProblemLines(t *testing.T) {
	src := "access_control:\n" + // 1
		"  default_policy: deny\n" + // 2
		"  rules:\n" + // 3
		"    - domain: [a.example.com]\n" + // 4
		"      policy: bypass\n" + // 5
		"    - domain: [b.example.com]\n" + // 6
		"      resources:\n" + // 7
		"        - \"^/ok$\"\n" + // 8
		"        - \"^/(bad$\"\n" + // 9
		"      policy: two_factor\n" // 10
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	d := &decoder{file: "f.yaml", lines: map[string]int{}}
	var cfg access.Config
	top := doc.Content[0]
	d.decode(top.Content[1], reflect.ValueOf(&cfg).Elem(), SectionAccess, top.Content[0].Line)
	if len(d.mistakes) > 0 || len(cfg.Rules) != 2 || cfg.Rules[1].Resources[1] != "^/(bad$" {
		t.Fatalf("decoded %+v, mistakes %v", cfg, d.mistakes)
	}
	for path, want := range map[string]int{
		"default_policy":        2,
		"rules":                 3,
		"rules[1]":              6,
		"rules[1].resources[1]": 9,
		"rules[0].policy":       5,
		"rules[0].subject":      4, // not in the file: the rule's line
		"rules[7]":              3,
		"":                      1,
	} {
		if got := d.lineOf(SectionAccess, path); got != want {
			t.Errorf("%q: line %d, want %d", path, got, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"token_ttl", "refresh_ttl", "access_control", "scopes", "smtp"}
	for key, want := range map[string]string{
		"token-ttl":     ` (did you mean "token_ttl"?)`,
		"TOKEN_TTL":     ` (did you mean "token_ttl"?)`,
		"refresh_tll":   ` (did you mean "refresh_ttl"?)`,
		"acess_control": ` (did you mean "access_control"?)`,
		"scope":         ` (did you mean "scopes"?)`,
		"colour":        "",
		"smpt":          "", // two edits in four letters: too far to guess
	} {
		if got := suggest(key, known); got != want {
			t.Errorf("%q: %q, want %q", key, got, want)
		}
	}
}
