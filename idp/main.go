// Command idp is the identity provider: it signs users up, logs them in, issues RS256 access
// tokens and publishes its keys as a JWKS. `idp` and `idp serve` run the server.
package main

import (
	"os"

	"jwtidp/shared/service"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(service.Main(program(), os.Args, os.Getenv, os.Stdout, os.Stderr)) }
