package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/idp/pgstore"
	"jwtidp/shared/envflag"
	"jwtidp/shared/pgdb"
)

const storeUsage = "usage: idp store copy --from DIR --to postgres://… [--force]"

// migrateCmd runs `idp migrate`: it applies the PostgreSQL schema and exits, for operators who
// migrate before rolling out replicas (serve migrates at start too, under the same lock).
func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := envflag.New("idp migrate", stderr)
	url := fs.String("database-url", "IDP_DATABASE_URL", "", "the postgres:// URL of the IdP's database")
	fs.Secret("database-url")
	if err := fs.Parse(args, getenv); err != nil {
		return err
	}
	if !pgdb.IsURL(*url) {
		return errors.New("idp migrate needs --database-url (or IDP_DATABASE_URL) with a postgres:// URL")
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

// storeCmd runs `idp store copy`: everything in a bbolt data folder — users with their password
// hashes, signing keys in every state, refresh families with every token hash they issued,
// browser sessions and the IdP's own secrets — into a PostgreSQL database, so that nobody has
// to log in again after the move. The folder is opened like serve opens it, so the IdP must be
// stopped first. Copying is idempotent: re-running it (with --force, as the target is then not
// empty) adds what is missing and changes nothing already there.
func storeCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "copy" {
		return errors.New(storeUsage)
	}
	fs := envflag.New("idp store copy", stderr)
	from := fs.String("from", "", "", "the IdP's bbolt data folder (stop the IdP first)")
	to := fs.String("to", "", "", "the postgres:// URL of the target database")
	force := fs.Bool("force", "", false, "copy into a database that already holds IdP data (a re-run)")
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
		return errors.New("the target database already holds IdP data; pass --force to copy into it anyway (safe for a re-run: nothing already there is changed)")
	}
	n, err := copyIdentity(ctx, src, dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %d users, %d signing keys, %d refresh families, %d sessions, %d secrets\n", n.users, n.keys, n.families, n.sessions, n.secrets)
	return nil
}

type copied struct{ users, keys, families, sessions, secrets int }

func copyIdentity(ctx context.Context, src *boltdb.DB, dst *pgstore.DB) (copied, error) {
	var n copied
	secrets, err := src.Secrets(ctx)
	if err != nil {
		return n, err
	}
	for name, v := range secrets {
		if err := dst.ImportSecret(ctx, name, v); err != nil {
			return n, fmt.Errorf("secret %s: %w", name, err)
		}
		n.secrets++
	}
	keys, err := src.Keys(ctx)
	if err != nil {
		return n, err
	}
	// The source's key set replaces the target's, which is empty on a first copy and the same
	// set on a re-run; a set the target made itself meanwhile would be replaced, so refuse that.
	err = dst.UpdateKeys(ctx, func(have []identity.SigningKey) ([]identity.SigningKey, error) {
		if len(have) > 0 && !sameKIDs(have, keys) {
			return nil, errors.New("the target already has other signing keys (did an IdP start on it?); copy into an empty database")
		}
		return keys, nil
	})
	if err != nil {
		return n, err
	}
	n.keys = len(keys)
	after := ""
	for {
		page, err := src.ListUsers(ctx, identity.ListOptions{After: after, Limit: identity.MaxListLimit})
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		for _, u := range page {
			if err := dst.ImportUser(ctx, u); err != nil {
				return n, fmt.Errorf("user %s: %w", u.ID, err)
			}
			n.users++
			sessions, err := src.ListSessions(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, s := range sessions {
				if err := dst.ImportSession(ctx, s); err != nil {
					return n, fmt.Errorf("session of user %s: %w", u.ID, err)
				}
				n.sessions++
			}
			families, err := src.ListFamilies(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, f := range families {
				hashes, err := src.FamilyTokenHashes(ctx, f.ID)
				if err != nil {
					return n, err
				}
				if err := dst.ImportFamily(ctx, f, hashes); err != nil {
					return n, fmt.Errorf("refresh family of user %s: %w", u.ID, err)
				}
				n.families++
			}
		}
		after = identity.NormalizeUsername(page[len(page)-1].Username)
	}
}

func sameKIDs(a, b []identity.SigningKey) bool {
	if len(a) != len(b) {
		return false
	}
	ids := map[string]bool{}
	for _, k := range a {
		ids[k.ID] = true
	}
	for _, k := range b {
		if !ids[k.ID] {
			return false
		}
	}
	return true
}
