package workitem

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the item as the JSON object clients see — the same bytes encoding/json
// would make — without reflection: listing is the service's hot path, and generic encoding was
// a quarter of its CPU.
func (it Item) AppendJSON(b []byte) []byte { return it.appendJSON(b, false) }

// AppendJSONWithOwner is AppendJSON with the owner's subject (its issuer left out) after the
// id, as "owner": the admin's list of every owner's items (GET /workitems?owner=all) says
// whose each one is.
func (it Item) AppendJSONWithOwner(b []byte) []byte { return it.appendJSON(b, true) }

// AppendList appends items as a JSON array of AppendJSON's objects, or AppendJSONWithOwner's
// with withOwner: a page of GET /workitems.
func AppendList(b []byte, items []Item, withOwner bool) []byte {
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = it.appendJSON(b, withOwner)
	}
	return append(b, ']')
}

func (it Item) appendJSON(b []byte, owner bool) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, it.ID, 10)
	if owner {
		b = append(b, `,"owner":`...)
		sub := it.Owner
		if i := strings.IndexByte(sub, 0); i >= 0 {
			sub = sub[i+1:]
		}
		b = AppendJSONString(b, sub)
	}
	b = append(b, `,"title":`...)
	b = AppendJSONString(b, it.Title)
	b = append(b, `,"done":`...)
	b = strconv.AppendBool(b, it.Done)
	b = append(b, `,"created_at":"`...)
	b = it.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","updated_at":"`...)
	b = it.UpdatedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// MarshalJSON makes encoding/json use the same encoding.
func (it Item) MarshalJSON() ([]byte, error) { return it.AppendJSON(nil), nil }

const hex = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaped as encoding/json escapes it (HTML
// characters and U+2028/U+2029 included; invalid UTF-8 becomes U+FFFD).
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b': // encoding/json writes \b and \f since Go 1.22, \u0008 and \u000c before
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
