// Package accesstest holds access rules for tests and benchmarks of their users.
package accesstest

import (
	"fmt"

	"jwtidp/idp/access"
)

// Fifty is a configuration of 50 rules, each on its own host (app0.example.com …
// app49.example.com) with a path, a network, methods and subjects; a request to app49 with a
// path under /admin/ from 10.0.0.0/8 by a member of "admins" reaches the last rule, two_factor.
// The default denies.
func Fifty() access.Config {
	c := access.Config{DefaultPolicy: access.Deny}
	for i := range 50 {
		c.Rules = append(c.Rules, access.Rule{
			Domain:    []string{fmt.Sprintf("app%d.example.com", i), fmt.Sprintf("*.app%d.example.org", i)},
			Resources: []string{"^/admin([/?].*)?$", "^/api/v[0-9]+/"},
			Subject:   []string{"user:root", "group:admins"},
			Networks:  []string{"10.0.0.0/8", "fd00::/8"},
			Methods:   []string{"GET", "HEAD", "POST"},
			Policy:    access.TwoFactor,
		})
	}
	return c
}
