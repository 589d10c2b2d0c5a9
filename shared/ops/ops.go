// Package ops holds the operator subcommands both binaries share: healthcheck (for container
// health checks, where the runtime image has no shell or curl) and backup (a consistent copy of
// the running store through its admin route).
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"jwtidp/shared/envflag"
)

// LocalURL turns a listen address into a URL this machine can reach it on: a wildcard host
// (0.0.0.0, ::, empty) becomes 127.0.0.1.
func LocalURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Healthcheck runs `<service> healthcheck [--url URL]`: exit 0 when URL/readyz answers 200.
// The default URL comes from the service's own listen-address variable, so in a container
// the same environment serves both.
func Healthcheck(ctx context.Context, name, addrVar, defaultAddr string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := envflag.New(name+" healthcheck", stderr)
	addr := fs.String("addr", addrVar, defaultAddr, "the service's listen address")
	url := fs.String("url", "", "", "the service's base URL (default: from --addr)")
	timeout := fs.Duration("timeout", "", 3*time.Second, "give up after this long")
	if err := fs.Parse(args, getenv); err != nil {
		return err
	}
	base := *url
	if base == "" {
		base = LocalURL(*addr)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s is not reachable at %s: %v", name, base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s at %s is not ready: /readyz answered %d", name, base, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// Backup runs `<service> backup --out FILE [--url URL] [--admin-token T]`: it downloads a
// consistent snapshot of the running service's store to FILE (written beside it, then renamed,
// so a failed download never leaves a truncated file under that name).
func Backup(ctx context.Context, name, addrVar, defaultAddr, tokenVar string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := envflag.New(name+" backup", stderr)
	addr := fs.String("addr", addrVar, defaultAddr, "the service's listen address")
	url := fs.String("url", "", "", "the service's base URL (default: from --addr)")
	token := fs.String("admin-token", tokenVar, "", "admin credential the service was started with")
	out := fs.String("out", "", "", "file to write the snapshot to")
	if err := fs.Parse(args, getenv); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required: the file to write the snapshot to")
	}
	if *token == "" {
		return fmt.Errorf("no admin token: pass --admin-token or set %s", tokenVar)
	}
	base := *url
	if base == "" {
		base = LocalURL(*addr)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/admin/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s at %s: %v", name, base, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fmt.Errorf("%s at %s refused the admin token", name, base)
	case http.StatusNotFound:
		return fmt.Errorf("%s at %s has no admin routes: start it with %s", name, base, tokenVar)
	default:
		return fmt.Errorf("%s at %s answered %s", name, base, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download snapshot: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", *out, n)
	return nil
}
