package configfile

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder fills Go values from YAML nodes by reflection, as yaml.v3 would, but strictly and
// line by line: an unknown key (with a "did you mean"), a key twice, a list where one value
// goes or a value of the wrong type is a mistake at its line, and decoding goes on past it so
// that every mistake is reported. It remembers the line of every path it decoded
// ("access_control.rules[2].resources[0]"), so a later check that names a path names a line.
type decoder struct {
	file     string
	mistakes []Mistake
	lines    map[string]int
}

func (d *decoder) bad(line int, format string, args ...any) {
	d.mistakes = append(d.mistakes, Mistake{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows an alias (*name) to its anchor's node.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// field is a struct field as a file names it.
type field struct {
	key   string
	index []int
}

// fields are t's fields by key: the yaml tag's name, else the json tag's (the clients' objects
// are those of the JSON clients file), embedded structs flattened as encoding/json does.
func fields(t reflect.Type) []field {
	var out []field
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || (f.Anonymous && f.Type.Kind() == reflect.Struct) {
			continue
		}
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" {
			key = strings.Split(f.Tag.Get("json"), ",")[0]
		}
		if key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		out = append(out, field{key, f.Index})
	}
	return out
}

// pairs walks a mapping's keys and values, reporting a key given twice (and skipping it), and
// a mapping that is not one.
func (d *decoder) pairs(n *yaml.Node, path string, each func(k, v *yaml.Node)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.bad(n.Line, "%s must be a mapping (key: value lines), not %s", what(path), shape(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.bad(k.Line, "%s: a key must be a single word", what(path))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.bad(k.Line, "%s is given twice (first at line %d)", join(path, k.Value), first)
			continue
		}
		seen[k.Value] = k.Line
		each(k, v)
	}
}

var nodeType = reflect.TypeOf((*yaml.Node)(nil))

// decode fills v (addressable) from n; path names n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, line int) {
	n = resolve(n)
	d.lines[path] = line
	if v.Type() == nodeType { // decoded later, part by part
		v.Set(reflect.ValueOf(n))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type().PkgPath() == "time" { // a timestamp is a scalar
			d.scalar(n, v, path)
			return
		}
		fs := fields(v.Type())
		d.pairs(n, path, func(k, val *yaml.Node) {
			i := indexOf(fs, k.Value)
			if i < 0 {
				keys := make([]string, len(fs))
				for j, f := range fs {
					keys[j] = f.key
				}
				d.bad(k.Line, "unknown key %s%s", join(path, k.Value), suggest(k.Value, keys))
				return
			}
			d.decode(val, v.FieldByIndex(fs[i].index), join(path, k.Value), k.Line)
		})
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		d.pairs(n, path, func(k, val *yaml.Node) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, join(path, k.Value), k.Line)
			v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		})
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.bad(n.Line, "%s must be a list (such as [a, b], or one \"- item\" a line), not %s", what(path), shape(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), resolve(e).Line)
		}
		v.Set(s)
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path, line)
		v.Set(p)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err == nil {
			v.Set(reflect.ValueOf(&x).Elem())
		}
	default:
		d.scalar(n, v, path)
	}
}

// scalar fills v from a single value, by yaml.v3's own rules for its type.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.bad(n.Line, "%s must be a single value, not %s", what(path), shape(n))
		return
	}
	if isNull(n) {
		return
	}
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil {
		d.bad(n.Line, "%s must be %s", what(path), kindName(v.Type()))
		return
	}
	v.Set(p.Elem())
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Struct:
		return "a time (2006-01-02T15:04:05Z)"
	}
	return "a " + t.Kind().String()
}

func indexOf(fs []field, key string) int {
	for i, f := range fs {
		if f.key == key {
			return i
		}
	}
	return -1
}

// shape names what a node is, for "must be a list, not a mapping".
func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a single value" // never quoted: it may be a secret in the wrong place
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// what names path in a message: the file itself when it is the top.
func what(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// suggest is ` (did you mean "x"?)` when one of known is close to key — the same with "-" for
// "_", or within a few edits — and "" otherwise.
func suggest(key string, known []string) string {
	best, bestD := "", 0
	for _, k := range known {
		d := distance(strings.ReplaceAll(strings.ToLower(key), "-", "_"), k)
		if d <= max(1, len(k)/4) && (best == "" || d < bestD) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
