// Command workitems is the work-item service: it trusts the IdP's access tokens by checking
// them against the IdP's JWKS, with no shared secret. `workitems` and `workitems serve` run it.
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

const defaultAddr = "127.0.0.1:8081"

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "workitems: %v\n", err)
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
	case "healthcheck":
		return ops.Healthcheck(ctx, "workitems", "WORKITEMS_ADDR", defaultAddr, rest, getenv, stdout, stderr)
	case "backup":
		return ops.Backup(ctx, "workitems", "WORKITEMS_ADDR", defaultAddr, "WORKITEMS_ADMIN_TOKEN", rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "workitems", version)
		return nil
	default:
		return fmt.Errorf("unknown command %q (commands: serve, healthcheck, backup, version)", cmd)
	}
}
