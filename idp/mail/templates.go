package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
)

//go:embed templates/*.txt templates/*.html
var defaultTemplates embed.FS

// Kinds of mail, each a pair of templates KIND.txt (which defines "subject") and KIND.html.
const (
	KindNotice        = "notice"         // the owner is told a credential or their address changed
	KindResetPassword = "reset-password" // a link to choose a new password
	KindVerifyEmail   = "verify-email"   // a link confirming an address is its owner's
	KindInvitation    = "invitation"     // a link to sign up
)

// Kinds are the mail the IdP sends.
var Kinds = []string{KindNotice, KindResetPassword, KindVerifyEmail, KindInvitation}

// Templates are the bodies of the IdP's mail: the built-in ones, each replaced by a file of the
// same name in an operator's folder. The text template defines "subject" too; the HTML one is
// html/template, so what a template is given is escaped there.
type Templates struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// LoadTemplates parses the built-in templates and, when dir is not "", the folder's files
// that replace them (KIND.txt, KIND.html); a file there that is no template's name is an
// error, as is one that does not parse or a text template without "subject".
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	read := func(name string) ([]byte, error) { return defaultTemplates.ReadFile("templates/" + name) }
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		known := map[string]bool{}
		for _, k := range Kinds {
			known[k+".txt"], known[k+".html"] = true, true
		}
		for _, e := range entries {
			if !known[e.Name()] {
				return nil, fmt.Errorf("%s: not a mail template (they are %s)", filepath.Join(dir, e.Name()), strings.Join(names(), ", "))
			}
		}
		read = func(name string) ([]byte, error) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				return defaultTemplates.ReadFile("templates/" + name)
			}
			return b, err
		}
	}
	for _, k := range Kinds {
		b, err := read(k + ".txt")
		if err != nil {
			return nil, err
		}
		tt, err := texttemplate.New(k + ".txt").Option("missingkey=error").Parse(string(b))
		if err != nil {
			return nil, err
		}
		if tt.Lookup("subject") == nil {
			return nil, fmt.Errorf("%s.txt defines no \"subject\"", k)
		}
		if b, err = read(k + ".html"); err != nil {
			return nil, err
		}
		ht, err := htmltemplate.New(k + ".html").Option("missingkey=error").Parse(string(b))
		if err != nil {
			return nil, err
		}
		t.text[k], t.html[k] = tt, ht
	}
	return t, nil
}

func names() []string {
	var out []string
	for _, k := range Kinds {
		out = append(out, k+".txt", k+".html")
	}
	return out
}

// Render is the subject and bodies of a mail of kind with data.
func (t *Templates) Render(kind string, data any) (subject, text, html string, err error) {
	tt, ok := t.text[kind]
	if !ok {
		return "", "", "", fmt.Errorf("no mail template %q", kind)
	}
	var s, b, h bytes.Buffer
	if err := tt.ExecuteTemplate(&s, "subject", data); err != nil {
		return "", "", "", err
	}
	if err := tt.Execute(&b, data); err != nil {
		return "", "", "", err
	}
	if err := t.html[kind].Execute(&h, data); err != nil {
		return "", "", "", err
	}
	return strings.Join(strings.Fields(s.String()), " "), b.String(), h.String(), nil
}
