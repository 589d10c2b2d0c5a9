// Command workitems is the work-item service: it trusts the IdP's access tokens by checking
// them against the IdP's JWKS, with no shared secret. `workitems` and `workitems serve` run it.
package main

import (
	"os"

	"jwtidp/shared/service"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(service.Main(program(), os.Args, os.Getenv, os.Stdout, os.Stderr)) }
