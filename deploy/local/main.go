// Command local starts the whole system on this machine with no configuration — the IdP on
// 127.0.0.1:8080 and the work-item service on 127.0.0.1:8081, data under ./data — and stops
// both cleanly on Ctrl-C. Run it from the repository root: go run ./deploy/local
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// services are started in order; each must be a package main of this module.
var services = []string{"idp", "workitems"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := os.MkdirTemp("", "jwtidp-local-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	var cmds []*exec.Cmd
	for _, s := range services {
		if _, err := os.Stat(filepath.Join(s, "main.go")); err != nil {
			continue // not built yet in this checkout
		}
		out := filepath.Join(bin, s)
		build := exec.Command("go", "build", "-o", out, "./"+s)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build %s: %w", s, err)
		}
		cmds = append(cmds, exec.Command(out, "serve"))
	}
	var wg sync.WaitGroup
	failed := make(chan error, len(cmds))
	for _, c := range cmds {
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		// Own process group: the terminal's Ctrl-C reaches us, and we stop the services in order.
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Wait(); err != nil && ctx.Err() == nil {
				failed <- fmt.Errorf("%s: %w", filepath.Base(c.Path), err)
			}
		}()
		time.Sleep(300 * time.Millisecond) // the IdP first, so the others find it at once
	}
	var err2 error
	select {
	case <-ctx.Done():
	case err2 = <-failed:
	}
	for i := len(cmds) - 1; i >= 0; i-- {
		if cmds[i].Process != nil {
			cmds[i].Process.Signal(syscall.SIGTERM)
		}
	}
	wg.Wait()
	return err2
}
