package workitem

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// The hand-written encoding must match encoding/json byte for byte.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, title := range []string{"plain", `quote " and \ backslash`, "tab\tnew\nline\r", "<b>&amp;</b>",
		"\x00\x01\x1f", "\b\f\x7f", "ünïcødé ☃ 😀", "line\u2028sep\u2029", "bad \xff utf8", ""} {
		it := Item{ID: 42, Title: title, Done: true, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC),
			UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		type plain struct {
			ID        uint64    `json:"id"`
			Title     string    `json:"title"`
			Done      bool      `json:"done"`
			CreatedAt time.Time `json:"created_at"`
			UpdatedAt time.Time `json:"updated_at"`
		}
		want, _ := json.Marshal(plain{it.ID, it.Title, it.Done, it.CreatedAt, it.UpdatedAt})
		if got := it.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("title %q:\n got %s\nwant %s", title, got, want)
		}
	}
}

// A page is a JSON array of the items' objects, after whatever the buffer held: none is "[]",
// and with owners each object is AppendJSONWithOwner's.
func TestAppendList(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	items := []Item{{ID: 1, Owner: Owner("https://idp", "alice"), Title: "a", CreatedAt: at, UpdatedAt: at},
		{ID: 2, Owner: Owner("https://idp", "bob"), Title: "b", Done: true, CreatedAt: at, UpdatedAt: at}}
	for _, c := range []struct {
		items     []Item
		withOwner bool
		want      string
	}{
		{nil, false, "x[]"},
		{items[:1], false, "x[" + string(items[0].AppendJSON(nil)) + "]"},
		{items, false, "x[" + string(items[0].AppendJSON(nil)) + "," + string(items[1].AppendJSON(nil)) + "]"},
		{items, true, "x[" + string(items[0].AppendJSONWithOwner(nil)) + "," + string(items[1].AppendJSONWithOwner(nil)) + "]"},
	} {
		got := string(AppendList([]byte("x"), c.items, c.withOwner))
		if got != c.want {
			t.Errorf("AppendList(%d items, owners %v) = %s, want %s", len(c.items), c.withOwner, got, c.want)
		}
		var decoded []map[string]any
		if err := json.Unmarshal([]byte(got[1:]), &decoded); err != nil || len(decoded) != len(c.items) {
			t.Errorf("AppendList(%d items): %s is not an array of as many objects (%v)", len(c.items), got[1:], err)
		}
	}
}

// FuzzAppendJSONString checks, for any string, what clients rely on: AppendJSONString appends
// (the bytes before it are kept) one valid JSON string in valid UTF-8, which decodes to the
// input with each invalid UTF-8 byte replaced by U+FFFD, and in which <, >, &, U+2028 and
// U+2029 only ever appear escaped, so the answer is safe inside HTML and JavaScript. JSON has
// several spellings of one string ("\f" and "\u000c"), so these properties do not compare
// bytes; the byte comparison with encoding/json comes last, with its own message, because
// json.go promises encoding/json's bytes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"a", "\x00", "<>&", "\u2028", "\xff", `"\`, "\b\f\x7f", "\xff\xfe", "\xed\xa0\x80", "\xf0\x9f\x98"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendJSONString([]byte("x"), s)
		if out[0] != 'x' {
			t.Fatalf("%q: the bytes before the string were overwritten: %q", s, out)
		}
		got := out[1:]
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("%q: not valid JSON in UTF-8: %q", s, got)
		}
		// Converting to []rune replaces each invalid byte, not each run of them, with U+FFFD,
		// as encoding/json does (strings.ToValidUTF8 would replace a run with one U+FFFD).
		want := string([]rune(s))
		var fromStd string
		if err := json.Unmarshal(mustMarshal(t, s), &fromStd); err != nil || fromStd != want {
			t.Fatalf("%q: the test's assumption is wrong: encoding/json round-trips it to %q (%v), not %q", s, fromStd, err, want)
		}
		var dec string
		if err := json.Unmarshal(got, &dec); err != nil {
			t.Fatalf("%q: %s does not decode to a string: %v", s, got, err)
		}
		if dec != want {
			t.Fatalf("%q: %s decodes to %q, want %q", s, got, dec, want)
		}
		if i := bytes.IndexAny(got, "<>&\u2028\u2029"); i >= 0 {
			r, _ := utf8.DecodeRune(got[i:])
			t.Fatalf("%q: %s has an unescaped %q at byte %d", s, got, r, i)
		}
		if std := mustMarshal(t, s); !bytes.Equal(got, std) {
			t.Fatalf("%q: %s is the right string, but not encoding/json's bytes %s, which json.go promises", s, got, std)
		}
	})
}

func mustMarshal(t *testing.T, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
