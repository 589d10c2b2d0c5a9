package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
	"jwtidp/idp/keys"
	"jwtidp/idp/password"
	"jwtidp/idp/pgstore"
	"jwtidp/idp/token"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/pgdb/pgtest"
)

// roundTrips counts what a pool sends PostgreSQL: a statement on its own or a batch (a pipeline
// of statements) is one round trip; the batch's statements are counted as statements.
type roundTrips struct {
	mu                sync.Mutex
	trips, statements int
	on                bool
	sql               []string
}

func (r *roundTrips) add(trips, statements int, sql string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.trips, r.statements = r.trips+trips, r.statements+statements
		r.sql = append(r.sql, strings.Join(strings.Fields(sql), " "))
	}
}

func (r *roundTrips) start() {
	r.mu.Lock()
	r.on, r.trips, r.statements, r.sql = true, 0, 0, nil
	r.mu.Unlock()
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add(1, 1, d.SQL)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.add(1, 0, "-- batch")
	return ctx
}
func (r *roundTrips) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.add(0, 1, d.SQL)
}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// A refresh grant on PostgreSQL is two round trips and three statements once the pool's
// connections have prepared them: the read of the family, its owner and the owner's groups,
// without a lock; then, in one batch (one transaction), the family's move to the new token if
// its row is still the version read, and the new token's index. The groups read with the
// family are the ones the access token carries.
func TestRefreshRoundTripsOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var count roundTrips
	db, err := pgstore.Open(ctx, pgdb.Config{URL: pgtest.NewDatabase(t), MaxConns: 2, Tracer: &count}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.DiscardHandler)
	km, err := keys.New(ctx, db, keys.Options{Bits: 2048, Now: c.now, Random: rand.Reader, Logger: log,
		Policy: keys.Policy{TokenTTL: 15 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 2, time.Second, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svc := New(Config{
		Users: db, Families: db, Groups: db, Hasher: h, FirstParty: Client{ID: "idp", Scope: "s", Audience: []string{"a"}},
		Issuer:     &token.Issuer{Issuer: "http://idp", TTL: 15 * time.Minute, Keys: km, Now: c.now, Random: rand.Reader},
		RefreshTTL: 24 * time.Hour, Now: c.now, Random: rand.Reader, Logger: log,
	})
	if err := svc.Signup(ctx, "alice", "correct-horse-9", ""); err != nil {
		t.Fatal(err)
	}
	u, err := db.GetUserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"ops", "eng"} {
		if err := db.CreateGroup(ctx, identity.Group{Name: g, CreatedAt: c.now()}); err != nil {
			t.Fatal(err)
		}
		if err := db.AddMember(ctx, g, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	tok, _, err := svc.Login(ctx, creds("alice", "correct-horse-9"))
	if err != nil {
		t.Fatal(err)
	}
	// Each of the two connections prepares the statements on its first refresh.
	for range 4 {
		if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
	}
	count.start()
	if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if count.trips != 2 || count.statements != 3 {
		t.Fatalf("a refresh grant took %d round trips and %d statements, want 2 and 3:\n%s", count.trips, count.statements, strings.Join(count.sql, "\n"))
	}
	if g := accessGroups(t, tok.AccessToken); !slices.Equal(g, []string{"eng", "ops"}) {
		t.Fatalf("the refreshed access token's groups: %v, want [eng ops]", g)
	}
	// A membership ended shows at the next refresh.
	if err := db.RemoveMember(ctx, "ops", u.ID); err != nil {
		t.Fatal(err)
	}
	if tok, err = svc.Refresh(ctx, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if g := accessGroups(t, tok.AccessToken); !slices.Equal(g, []string{"eng"}) {
		t.Fatalf("after leaving ops, the access token's groups: %v, want [eng]", g)
	}
}

// accessGroups is the groups claim of an access token, read without checking it.
func accessGroups(t *testing.T, jwt string) []string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Groups
}
