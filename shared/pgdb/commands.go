package pgdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"jwtidp/shared/envflag"
)

// Func is a program's subcommand (service.Func, which this package cannot import).
type Func = func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// MigrateCommand is `<program> migrate`: it applies schema to the database named by
// --database-url (or PREFIX_DATABASE_URL) and exits, for operators who migrate before rolling
// out replicas (serve migrates at start too, under the same lock).
func MigrateCommand(program, prefix string, schema Schema) Func {
	return func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
		fs := envflag.New(program+" migrate", stderr)
		url := fs.String("database-url", prefix+"_DATABASE_URL", "", "the postgres:// URL of the service's database")
		fs.Secret("database-url")
		if err := fs.Parse(args, getenv); err != nil {
			return err
		}
		if !IsURL(*url) {
			return fmt.Errorf("%s migrate needs --database-url (or %s_DATABASE_URL) with a postgres:// URL", program, prefix)
		}
		pool, err := Open(ctx, Config{URL: *url}, schema, slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			return err
		}
		defer pool.Close()
		v, err := Version(ctx, pool, schema)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "schema at version %d\n", v)
		return nil
	}
}

// Target is a store a copy writes into.
type Target interface {
	Empty(ctx context.Context) (bool, error)  // holds no data yet
	Served(ctx context.Context) (bool, error) // a service has served from it (MarkServed)
	Close() error
}

// CopyCommand is `<program> store copy --from DIR --to postgres://… [--force]`: it opens the
// bbolt store in DIR with openSource (refusing a folder without one; the service must be
// stopped, as its lock is taken), the database with openTarget, refuses a target that already
// holds data unless --force (how an interrupted copy is re-run: copy only adds, so it is safe
// to repeat), refuses any target a service has already served from (a copy would bring back
// what was ended there since), and runs copy, which returns a summary for stdout.
func CopyCommand[S io.Closer, T Target](program string,
	openSource func(dir string, lockTimeout time.Duration) (S, error),
	openTarget func(ctx context.Context, cfg Config, logger *slog.Logger) (T, error),
	copy func(ctx context.Context, src S, dst T) (summary string, err error)) Func {
	usage := "usage: " + program + " store copy --from DIR --to postgres://… [--force]"
	return func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
		if len(args) == 0 || args[0] != "copy" {
			return errors.New(usage)
		}
		fs := envflag.New(program+" store copy", stderr)
		from := fs.String("from", "", "", "the service's bbolt data folder (stop the service first)")
		to := fs.String("to", "", "", "the postgres:// URL of the target database")
		force := fs.Bool("force", "", false, "copy into a database that already holds data (a re-run)")
		fs.Secret("to")
		if err := fs.Parse(args[1:], getenv); err != nil {
			return err
		}
		if *from == "" || !IsURL(*to) {
			return errors.New(usage)
		}
		src, err := openSource(*from, time.Second)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := openTarget(ctx, Config{URL: *to}, slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			return err
		}
		defer dst.Close()
		served, err := dst.Served(ctx)
		if err != nil {
			return err
		}
		if served {
			return ErrServed
		}
		empty, err := dst.Empty(ctx)
		if err != nil {
			return err
		}
		if !empty && !*force {
			return ErrNotEmpty
		}
		summary, err := copy(ctx, src, dst)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, summary)
		return nil
	}
}

// ErrNotEmpty is a store copy's refusal of a target that already holds data.
var ErrNotEmpty = errors.New("the target database already holds data; pass --force to copy into it anyway (to finish an interrupted copy: a copy only adds what is missing)")

// ErrServed is a store copy's refusal of a target a service has served from.
var ErrServed = errors.New("a service has already served from the target database: copying into it again could bring back users, sessions, tokens or items ended there since; copy into a new database instead")
