package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"jwtidp/shared/envflag"
	"jwtidp/shared/pgdb"
	"jwtidp/workitems/boltdb"
	"jwtidp/workitems/pgstore"
	"jwtidp/workitems/workitem"
)

const storeUsage = "usage: workitems store copy --from DIR --to postgres://… [--force]"

// migrateCmd runs `workitems migrate`: the PostgreSQL schema, applied alone.
func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := envflag.New("workitems migrate", stderr)
	url := fs.String("database-url", "WORKITEMS_DATABASE_URL", "", "the postgres:// URL of the service's database")
	fs.Secret("database-url")
	if err := fs.Parse(args, getenv); err != nil {
		return err
	}
	if !pgdb.IsURL(*url) {
		return errors.New("workitems migrate needs --database-url (or WORKITEMS_DATABASE_URL) with a postgres:// URL")
	}
	pool, err := pgdb.Open(ctx, pgdb.Config{URL: *url}, pgstore.Schema, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := pgdb.Version(ctx, pool, pgstore.Schema)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema at version %d\n", v)
	return nil
}

// storeCmd runs `workitems store copy`: every item of every owner, ids unchanged, from a bbolt
// data folder into PostgreSQL, and the id sequence past every id the folder ever handed out.
// Stop the service first. Re-running it (with --force) adds what is missing and changes nothing
// already there; an item that differs from the source is reported, not overwritten.
func storeCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "copy" {
		return errors.New(storeUsage)
	}
	fs := envflag.New("workitems store copy", stderr)
	from := fs.String("from", "", "", "the service's bbolt data folder (stop the service first)")
	to := fs.String("to", "", "", "the postgres:// URL of the target database")
	force := fs.Bool("force", "", false, "copy into a database that already holds work items (a re-run)")
	fs.Secret("to")
	if err := fs.Parse(args[1:], getenv); err != nil {
		return err
	}
	if *from == "" || !pgdb.IsURL(*to) {
		return errors.New(storeUsage)
	}
	src, err := boltdb.OpenExisting(*from, time.Second)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := pgstore.Open(ctx, pgdb.Config{URL: *to}, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer dst.Close()
	empty, err := dst.Empty(ctx)
	if err != nil {
		return err
	}
	if !empty && !*force {
		return errors.New("the target database already holds work items; pass --force to copy into it anyway (safe for a re-run: nothing already there is changed)")
	}
	n := 0
	seq, err := src.Export(ctx, func(it workitem.Item) error {
		if err := dst.Import(ctx, it); err != nil {
			return fmt.Errorf("item %d: %w", it.ID, err)
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if seq > 0 {
		if err := dst.ReserveIDs(ctx, seq); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "copied %d work items; new ids start after %d\n", n, seq)
	return nil
}
