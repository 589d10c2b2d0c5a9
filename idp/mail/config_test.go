package mail

import (
	"strings"
	"testing"
)

func goodConfig() Config {
	return Config{Host: "smtp.example.com", Port: 587, TLS: "starttls", Username: "jwtidp", Password: "s3cret-pass",
		From: "Example login <login@example.com>"}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" when valid, else a part of the error
	}{
		{"the example", func(c *Config) {}, ""},
		{"implicit", func(c *Config) { c.TLS, c.Port = "implicit", 465 }, ""},
		{"no auth", func(c *Config) { c.Username, c.Password = "", "" }, ""},
		{"none to localhost", func(c *Config) { c.TLS, c.Host = "none", "localhost" }, ""},
		{"none to 127.0.0.1", func(c *Config) { c.TLS, c.Host = "none", "127.0.0.1" }, ""},
		{"none to 127.0.0.2", func(c *Config) { c.TLS, c.Host, c.Username, c.Password = "none", "127.0.0.2", "", "" }, ""},
		{"none to 127.0.0.2 with a password", func(c *Config) { c.TLS, c.Host = "none", "127.0.0.2" }, "sent without TLS only there"},
		{"none to ::1", func(c *Config) { c.TLS, c.Host = "none", "::1" }, ""},
		{"none to [::1]", func(c *Config) { c.TLS, c.Host = "none", "[::1]" }, "without brackets"},
		{"hello name", func(c *Config) { c.HelloName = "idp.example.com" }, ""},
		{"bare from", func(c *Config) { c.From = "login@example.com" }, ""},
		{"non-ASCII from name", func(c *Config) { c.From = "Connexion Élodie <login@example.com>" }, ""},

		{"no host", func(c *Config) { c.Host = "" }, "host is required"},
		{"host with a space", func(c *Config) { c.Host = "smtp example.com" }, "not a host name"},
		{"host with CRLF", func(c *Config) { c.Host = "smtp.example.com\r\nX: y" }, "not a host name"},
		{"port 0", func(c *Config) { c.Port = 0 }, "port 0"},
		{"port 65536", func(c *Config) { c.Port = 65536 }, "port 65536"},
		{"no tls", func(c *Config) { c.TLS = "" }, "not one of starttls, implicit, none"},
		{"tls STARTTLS", func(c *Config) { c.TLS = "STARTTLS" }, "not one of"},
		{"tls ssl", func(c *Config) { c.TLS = "ssl" }, "not one of"},
		{"none to a remote host", func(c *Config) { c.TLS = "none" }, "only allowed for a loopback host"},
		{"none to 10.0.0.1", func(c *Config) { c.TLS, c.Host = "none", "10.0.0.1" }, "only allowed for a loopback host"},
		{"none to localhost.example.com", func(c *Config) { c.TLS, c.Host = "none", "localhost.example.com" }, "only allowed for a loopback host"},
		{"username without password", func(c *Config) { c.Password = "" }, "set both or neither"},
		{"password without username", func(c *Config) { c.Username = "" }, "set both or neither"},
		{"password with a line break", func(c *Config) { c.Password = "a\r\nQUIT" }, "line break"},
		{"no from", func(c *Config) { c.From = "" }, "from is required"},
		{"from with CRLF", func(c *Config) { c.From = "Login <login@example.com>\r\nBcc: x@evil.example" }, "line break"},
		{"from with LF in the name", func(c *Config) { c.From = "\"Log\nin\" <login@example.com>" }, "line break"},
		{"from whose encoded name decodes to CRLF", func(c *Config) { c.From = "=?utf-8?q?a=0D=0ABcc=3A_x=40evil.example?= <login@example.com>" }, "control character"},
		{"from unparsable", func(c *Config) { c.From = "login at example.com" }, "smtp from"},
		{"from two addresses", func(c *Config) { c.From = "a@example.com, b@example.com" }, "smtp from"},
		{"from without domain", func(c *Config) { c.From = "Login <login@>" }, "smtp from"},
		{"hello name with CRLF", func(c *Config) { c.HelloName = "x\r\nMAIL FROM:<a@b>" }, "hello name"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodConfig()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate accepted %+v", c)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate: %v, want it to say %q", err, tt.want)
			}
			if err != nil && c.Password != "" && strings.Contains(err.Error(), c.Password) {
				t.Fatalf("the error shows the password: %v", err)
			}
			if _, nerr := New(c, nil); (nerr == nil) != (err == nil) {
				t.Fatalf("New: %v, Validate: %v", nerr, err)
			}
		})
	}
}
