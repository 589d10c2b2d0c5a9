package web

import (
	"bytes"
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"

	"jwtidp/shared/apperr"
)

// checkMembers walks body, which encoding/json has already decoded into a value of type t, and
// refuses what that decoder lets through: a member name repeated in one object (at any depth),
// and a name that matches a struct field only case-insensitively. Where the target is not a
// struct (a map, an interface, a json.Unmarshaler such as json.RawMessage) names are free, but
// still may not repeat.
func checkMembers(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	return walkValue(dec, t)
}

var errNotJSON = apperr.Errorf(apperr.EINVALID, "Request body is not valid JSON")

func walkValue(dec *json.Decoder, t reflect.Type) error {
	tok, err := dec.Token()
	if err != nil {
		return errNotJSON // cannot happen: the body has been decoded already
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	t = decodeTarget(t)
	switch delim {
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil {
			switch t.Kind() {
			case reflect.Struct:
				fields = exactFields(t)
			case reflect.Map:
				elem = t.Elem()
			}
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			name, ok := tok.(string)
			if err != nil || !ok {
				return errNotJSON
			}
			if seen[name] {
				return apperr.Errorf(apperr.EINVALID, "Duplicate field %q", name)
			}
			seen[name] = true
			ft := elem
			if fields != nil {
				if ft, ok = fields[name]; !ok {
					return apperr.Errorf(apperr.EINVALID, "Unknown field %q", name)
				}
			}
			if err := walkValue(dec, ft); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walkValue(dec, elem); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errNotJSON
	}
	return nil
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// decodeTarget is the type whose member names apply to a JSON value decoded into t: pointers
// followed, and nil (anything goes) for interfaces and types that decode themselves.
func decodeTarget(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Kind() == reflect.Interface {
			return nil
		}
		if t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// exactFields returns the JSON member names encoding/json decodes into struct type t, each with
// its field's type. It follows encoding/json's own rules (typeFields in encode.go): json tags,
// "-", unexported fields, embedded structs promoted breadth-first, and Go's dominance rules in
// which a tagged field wins and two equally good fields cancel each other out.
func exactFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	type field struct {
		name   string
		tagged bool
		index  []int
		typ    reflect.Type
	}
	var fields []field
	current, next := []field{}, []field{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTagName(name) {
					name = ""
				}
				index := append(slices.Clip(f.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if name == "" {
						name = sf.Name
					}
					fields = append(fields, field{name: name, tagged: tagged, index: index, typ: sf.Type})
					if count[f.typ] > 1 {
						// The struct is embedded twice at this depth: its fields cancel out.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, field{index: index, typ: ft})
				}
			}
		}
	}
	slices.SortFunc(fields, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return +1
		}
		return slices.Compare(a.index, b.index)
	})
	out := map[string]reflect.Type{}
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		// Sorted by depth, tagged first: the first dominates unless the second is as good.
		if j-i == 1 || len(fields[i].index) != len(fields[i+1].index) || fields[i].tagged != fields[i+1].tagged {
			out[fields[i].name] = fields[i].typ
		}
		i = j
	}
	f, _ := fieldCache.LoadOrStore(t, out)
	return f.(map[string]reflect.Type)
}

// validTagName is encoding/json's isValidTag.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
