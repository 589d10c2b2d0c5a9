package workitem

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The hand-written encoding must match encoding/json byte for byte.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, title := range []string{"plain", `quote " and \ backslash`, "tab\tnew\nline\r", "<b>&amp;</b>",
		"\x00\x01\x1f", "ünïcødé ☃ 😀", "line\u2028sep\u2029", "bad \xff utf8", ""} {
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

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"a", "\x00", "<>&", "\u2028", "\xff", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}
