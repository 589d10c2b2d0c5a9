// Package pgtest gives a test a fresh PostgreSQL database of its own, on the server named by
// JWTIDP_TEST_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres by default), and drops
// it when the test ends. Without a reachable server the test skips — or fails under
// JWTIDP_REQUIRE_INTEGRATION, as in CI. It is imported by tests only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/shared/proctest"
)

// ServerURL is the maintenance database URL of the test server.
func ServerURL() string {
	if u := os.Getenv("JWTIDP_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres"
}

// NewDatabase creates an empty database and returns its URL; t.Cleanup drops it (closing any
// connection still open to it).
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := ServerURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		proctest.Integration(t, "no PostgreSQL server at %s: %v", redacted(admin), err)
		return ""
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	rand.Read(b)
	name := "jwtidp_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func redacted(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
