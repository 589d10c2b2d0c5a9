// Command idp is the identity provider: it signs users up, logs them in, issues RS256 access
// tokens and publishes its keys as a JWKS. `idp` and `idp serve` run the server.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"jwtidp/shared/ops"
)

const defaultAddr = "127.0.0.1:8080"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "idp: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program, so tests can run it as a user would.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && rest[0] == "--version" {
		cmd, rest = "version", nil
	}
	if len(rest) > 0 && (rest[0] == "" || rest[0][0] != '-') {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return keysCmd(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return ops.Healthcheck(ctx, "idp", "IDP_ADDR", defaultAddr, rest, getenv, stdout, stderr)
	case "backup":
		return ops.Backup(ctx, "idp", "IDP_ADDR", defaultAddr, "IDP_ADMIN_TOKEN", rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "idp", version)
		return nil
	default:
		return fmt.Errorf("unknown command %q (commands: serve, keys, healthcheck, backup, version)", cmd)
	}
}
