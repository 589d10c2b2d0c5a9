package mail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
)

func TestTemplates(t *testing.T) {
	builtIn, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	data := NoticeData{Username: "<b>mona</b>", Issuer: "https://login.example.com", What: "Your password was changed", At: "2026-12-06 00:00 UTC"}
	subject, text, html, err := builtIn.Render(KindNotice, data)
	if err != nil || subject != "Your password was changed" || !strings.Contains(text, "Hello <b>mona</b>,") ||
		!strings.Contains(html, "Hello &lt;b&gt;mona&lt;/b&gt;,") {
		t.Fatalf("the built-in notice: %v\n%q\n%s\n%s", err, subject, text, html)
	}

	// An operator's folder replaces a template by its name; the others stay built in.
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("notice.txt", `{{define "subject"}}[Example] {{.What}}{{end}}Dear {{.Username}}: {{.What}}.`)
	mine, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	subject, text, html, err = mine.Render(KindNotice, data)
	if err != nil || subject != "[Example] Your password was changed" || text != "Dear <b>mona</b>: Your password was changed." || !strings.Contains(html, "Hello &lt;b&gt;mona") {
		t.Fatalf("the operator's notice: %v\n%q\n%s\n%s", err, subject, text, html)
	}

	for name, files := range map[string]map[string]string{
		"a file that is no template":     {"welcome.txt": "hi"},
		"a text template, no subject":    {"notice.txt": "hi"},
		"a template that does not parse": {"notice.html": "{{.Username"},
	} {
		d := t.TempDir()
		for f, c := range files {
			if err := os.WriteFile(filepath.Join(d, f), []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := LoadTemplates(d); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := LoadTemplates(filepath.Join(dir, "nothing")); err == nil {
		t.Error("a missing folder: loaded")
	}
	// A field the data does not have is an error, not "<no value>" in someone's mail.
	write("notice.txt", `{{define "subject"}}{{.Nothing}}{{end}}x`)
	if broken, err := LoadTemplates(dir); err != nil {
		t.Fatal(err)
	} else if _, _, _, err := broken.Render(KindNotice, data); err == nil {
		t.Error("a template naming a missing field rendered")
	}
}

// A notice goes to a verified address only, as one message with a fresh id.
func TestComposerNotice(t *testing.T) {
	tm, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)
	c := &Composer{Templates: tm, Issuer: "https://login.example.com", Now: func() time.Time { return now }}
	u := identity.User{ID: "u1", Username: "mona", Email: "mona@example.com"}
	if _, ok, err := c.Notice(u, "Your password was changed"); ok || err != nil {
		t.Fatalf("an unverified address: %v %v", ok, err)
	}
	u.EmailVerified = true
	a, ok, err := c.Notice(u, "Your password was changed")
	b, _, _ := c.Notice(u, "Your password was changed")
	if !ok || err != nil || a.To != "mona@example.com" || a.Kind != KindNotice || a.UserID != "u1" || !a.CreatedAt.Equal(now) ||
		a.ID == "" || a.ID == b.ID || a.Validate() != nil {
		t.Fatalf("the notice: %+v %v %v", a, ok, err)
	}
}
