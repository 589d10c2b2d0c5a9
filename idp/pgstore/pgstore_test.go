package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"jwtidp/idp/identity"
	"jwtidp/idp/pgstore"
	"jwtidp/idp/storetest"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/pgdb/pgtest"
	"jwtidp/shared/proctest"
)

var ctx = context.Background()

// TestConformance runs the suite with a fresh schema of one database for each subtest (a
// database each costs a CREATE DATABASE, several times slower).
func TestConformance(t *testing.T) {
	base := pgtest.NewDatabase(t)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	n := 0
	storetest.RunTests(t, func(t *testing.T) storetest.Store {
		n++
		return open(t, inSchema(t, admin, base, fmt.Sprintf("conformance_%02d", n)))
	})
}

// inSchema creates the schema name in the database at base and returns base's URL with the
// schema as the search path: a store opened on it migrates and works in that schema alone.
func inSchema(t *testing.T, admin *pgx.Conn, base, name string) string {
	t.Helper()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t *testing.T, url string) *pgstore.DB {
	t.Helper()
	db, err := pgstore.Open(ctx, pgdb.Config{URL: url, MaxConns: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Replicas starting together on an empty database all start, and the schema is applied once.
func TestConcurrentOpensMigrate(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := pgstore.Open(ctx, pgdb.Config{URL: url, MaxConns: 2}, nil)
			if err == nil {
				err = db.CreateUser(ctx, identity.User{ID: "u" + string(rune('a'+i)), Username: "user-" + string(rune('a'+i))})
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	db := open(t, url)
	// The highest version of the files, not their count: versions are reserved per branch and
	// may leave gaps (issue 30 reserved 00017–00021 between its branches).
	files, _ := fs.Glob(pgstore.Schema.FS, "*.sql")
	var highest int64 // the last file's number: numbers may be reserved by work not yet merged
	for _, f := range files {
		if n, err := strconv.ParseInt(strings.SplitN(f, "_", 2)[0], 10, 64); err == nil && n > highest {
			highest = n
		}
	}
	if v, err := pgdb.Version(ctx, db.Pool(), pgstore.Schema); err != nil || v != highest {
		t.Fatalf("schema version %d (%v), want %d: every migration applied", v, err, highest)
	}
	users, err := db.ListUsers(ctx, identity.ListOptions{Limit: 10})
	if err != nil || len(users) != len(errs) {
		t.Fatalf("users after the concurrent opens: %d (%v), want %d", len(users), err, len(errs))
	}
}

// A server that does not answer is an error naming it, within the connect timeout; a store
// whose server goes away answers EUNAVAILABLE, promptly, and recovers when it is back.
func TestUnreachable(t *testing.T) {
	start := time.Now()
	_, err := pgstore.Open(ctx, pgdb.Config{URL: "postgres://postgres@127.0.0.1:1/x", ConnectTimeout: time.Second}, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("Open of a closed port: %v, want an error naming the host", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open of a closed port took %v", d)
	}

	// An open store whose database goes away: cut the TCP proxy between them.
	p, u := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	db, err := pgstore.Open(ctx, pgdb.Config{URL: u, ConnectTimeout: time.Second, StatementTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(t, db.CreateUser(ctx, identity.User{ID: "u1", Username: "alice"}))
	p.Cut()
	for name, call := range map[string]func() error{
		"Ping":       func() error { return db.Ping(ctx) },
		"GetUser":    func() error { return second(db.GetUser(ctx, "u1")) },
		"CreateUser": func() error { return db.CreateUser(ctx, identity.User{ID: "u2", Username: "bob"}) },
		"UpdateUser": func() error {
			return second(db.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) { return u, nil }))
		},
	} {
		start := time.Now()
		err := call()
		wantCode(t, name+" with the database cut off", err, apperr.EUNAVAILABLE)
		if apperr.RetryAfter(err) <= 0 {
			t.Fatalf("%s: %v has no Retry-After", name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s took %v with the database cut off", name, d)
		}
	}
	p.Restore()
	got, err := db.GetUser(ctx, "u1")
	check(t, err)
	equal(t, "the user after the database is back", got.Username, "alice")
}

// The importers store an entity as it is, any number of times.
func TestImport(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	empty, err := db.Empty(ctx)
	if err != nil || !empty {
		t.Fatalf("Empty of a new store = %v, %v", empty, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	u := identity.User{ID: "u1", Username: "Alice", PasswordHash: "$argon2id$x", CreatedAt: t0, Epoch: 4,
		Email: "Alice@Example.com", EmailVerified: true}
	c := identity.Client{ID: "grafana", Name: "Grafana", SecretHash: "sh", RedirectURIs: []string{"https://grafana.example/cb"},
		GrantTypes: []string{identity.GrantAuthorizationCode}, Scopes: []string{"openid"}, CreatedAt: t0}
	consent := identity.Consent{UserID: "u1", ClientID: "grafana", Scopes: []string{"openid", "email"}, GrantedAt: t0}
	// A family and a session of an older epoch are copied as they are.
	f := identity.Family{ID: "f1", UserID: "u1", ClientID: "c", Scope: "s", Audience: nil, SessionID: "s1", Epoch: 3,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), Current: "h2", Revoked: false}
	sess := identity.Session{ID: "s1", TokenHash: "th1", UserID: "u1", Epoch: 3, AuthTime: t0, AMR: []string{},
		CreatedAt: t0, LastSeenAt: t0, IdleTTL: time.Hour, ExpiresAt: t0.Add(time.Hour), RemoteAddr: "192.0.2.1", UserAgent: "ua"}
	for range 2 {
		check(t, db.ImportUser(ctx, u))
		check(t, db.ImportFamily(ctx, f, []string{"h0", "h1", "h2"}))
		check(t, db.ImportSession(ctx, sess))
		check(t, db.ImportSecret(ctx, "csrf", []byte{1, 2, 3}))
		check(t, db.ImportClient(ctx, c))
		check(t, db.ImportConsent(ctx, consent))
	}
	got, err := db.GetUser(ctx, "u1")
	check(t, err)
	equal(t, "imported user, its email and verified flag", got, u)
	gotConsent, err := db.GetConsent(ctx, "u1", "grafana")
	check(t, err)
	equal(t, "imported consent", gotConsent, consent)
	fams, err := db.ListFamilies(ctx, "u1")
	check(t, err)
	equal(t, "imported families", fams, []identity.Family{f}) // a nil audience stays nil
	for _, h := range []string{"h0", "h1", "h2"} {
		_, err := db.UpdateFamilyByToken(ctx, h, func(got identity.Family, _ identity.User) (identity.Family, error) {
			equal(t, "the family of "+h, got, f)
			return identity.Family{}, identity.ErrUnchanged
		})
		if err != identity.ErrUnchanged {
			t.Fatalf("token %s: %v", h, err)
		}
	}
	gotSess, err := db.GetSession(ctx, "s1")
	check(t, err)
	equal(t, "imported session", gotSess, sess) // an empty AMR stays empty, not nil
	v, err := db.Secret(ctx, "csrf", []byte{9})
	check(t, err)
	equal(t, "imported secret", v, []byte{1, 2, 3})
	empty, err = db.Empty(ctx)
	if err != nil || empty {
		t.Fatalf("Empty after the import = %v, %v", empty, err)
	}

	// A re-run never undoes a change made on the target since: a password changed there, a
	// family revoked there stay so, whatever the source says. (A deleted row would come back:
	// that is why store copy refuses a database a service has served from, MarkServed.)
	changed, err := db.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) {
		u.PasswordHash = "$argon2id$changed-on-the-target"
		return u, nil
	})
	check(t, err) // which also revoked the family and ended the session
	narrower := consent
	narrower.Scopes = []string{"openid"}
	check(t, db.SaveConsent(ctx, narrower))
	check(t, db.ImportUser(ctx, u))
	check(t, db.ImportConsent(ctx, consent))
	gotConsent, _ = db.GetConsent(ctx, "u1", "grafana")
	equal(t, "the consent after a re-run", gotConsent, narrower)
	check(t, db.ImportFamily(ctx, f, []string{"h0", "h1", "h2", "h3"}))
	check(t, db.ImportSession(ctx, sess))
	got, _ = db.GetUser(ctx, "u1")
	equal(t, "the user after a re-run", got, changed)
	fams, _ = db.ListFamilies(ctx, "u1")
	if len(fams) != 1 || !fams[0].Revoked {
		t.Fatalf("a family revoked on the target came back by a re-run: %+v", fams)
	}
	if served, err := db.Served(ctx); err != nil || served {
		t.Fatalf("Served before any service = %v, %v", served, err)
	}
	for range 2 {
		check(t, db.MarkServed(ctx))
	}
	if served, err := db.Served(ctx); err != nil || !served {
		t.Fatalf("Served after MarkServed = %v, %v", served, err)
	}
	_, err = db.UpdateFamilyByToken(ctx, "h3", func(got identity.Family, _ identity.User) (identity.Family, error) {
		return identity.Family{}, identity.ErrUnchanged
	})
	if err != identity.ErrUnchanged {
		t.Fatalf("a token hash the source added is not indexed by the re-run: %v", err)
	}
	wantCode(t, "another value for a stored secret", db.ImportSecret(ctx, "csrf", []byte{7}), apperr.ECONFLICT)
	other := f
	other.ID = "f2"
	wantCode(t, "a family with another's token", db.ImportFamily(ctx, other, []string{"h1"}), apperr.ECONFLICT)
	orphan := f
	orphan.ID, orphan.UserID, orphan.Current = "f3", "nobody", "h9"
	wantCode(t, "a family of a user not stored", db.ImportFamily(ctx, orphan, nil), apperr.EINVALID)
	wantCode(t, "a user with another's name", db.ImportUser(ctx, identity.User{ID: "u2", Username: "ALICE"}), apperr.ECONFLICT)
	if err := db.ImportUser(ctx, identity.User{ID: "u2", Username: "bob", Email: "alice@EXAMPLE.com"}); err != identity.ErrEmailTaken {
		t.Fatalf("a user with another's email in another case: %v, want ErrEmailTaken", err)
	}
	for _, orphan := range []identity.Consent{
		{UserID: "nobody", ClientID: "grafana", Scopes: []string{"openid"}, GrantedAt: t0},
		{UserID: "u1", ClientID: "ghost", Scopes: []string{"openid"}, GrantedAt: t0},
	} {
		wantCode(t, "a consent of a user or client not stored", db.ImportConsent(ctx, orphan), apperr.EINVALID)
	}
	wantCode(t, "a consent without scopes", db.ImportConsent(ctx, identity.Consent{UserID: "u1", ClientID: "grafana"}), apperr.EINVALID)
	s2 := sess
	s2.ID = "s2"
	wantCode(t, "a session with another's token", db.ImportSession(ctx, s2), apperr.ECONFLICT)
	wantCode(t, "an empty secret", db.ImportSecret(ctx, "x", nil), apperr.EINVALID)

	// Keys are copied with UpdateKeys, in every state.
	keys := []identity.SigningKey{
		{ID: "k1", State: identity.KeyRetired, PrivateDER: []byte{1}, CreatedAt: t0, SignsFrom: t0, RetiredAt: t0, DeleteAt: t0.Add(time.Hour)},
		{ID: "k2", State: identity.KeyCurrent, PrivateDER: []byte{2}, CreatedAt: t0, SignsFrom: t0},
		{ID: "k3", State: identity.KeyNext, PrivateDER: []byte{3}, CreatedAt: t0, SignsFrom: t0.Add(time.Hour)},
	}
	for range 2 {
		check(t, db.UpdateKeys(ctx, func([]identity.SigningKey) ([]identity.SigningKey, error) { return keys, nil }))
	}
	gotKeys, err := db.Keys(ctx)
	check(t, err)
	equal(t, "imported keys", gotKeys, keys)
}

// Free text PostgreSQL cannot hold as given (invalid UTF-8, NUL) is stored coerced, as the
// bbolt store's JSON coerces it, rather than failing a login; a lookup by such a value finds
// nothing rather than failing.
func TestUnstorableText(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	check(t, db.CreateUser(ctx, identity.User{ID: "u1", Username: "alice"}))
	sess := identity.Session{ID: "s1", TokenHash: "th1", UserID: "u1", ExpiresAt: time.Now().Add(time.Hour),
		UserAgent: "curl\xff/8\x00", AMR: []string{"p\xffwd"}}
	check(t, db.CreateSession(ctx, sess))
	got, err := db.GetSession(ctx, "s1")
	check(t, err)
	if got.UserAgent != "curl\uFFFD/8\uFFFD" || got.AMR[0] != "p\uFFFDwd" {
		t.Fatalf("stored %q %q", got.UserAgent, got.AMR)
	}
	for name, err := range map[string]error{
		"GetUser":         second(db.GetUser(ctx, "u\x00")),
		"GetUserByName":   second(db.GetUserByName(ctx, "al\xffice")),
		"GetSession":      second(db.GetSession(ctx, "s\x00")),
		"UpdateFamily":    second(db.UpdateFamilyByToken(ctx, "\xff", nil)),
		"EndSession":      second(db.EndSession(ctx, "\x00")),
		"DeleteUser":      db.DeleteUser(ctx, "\x00"),
		"ReleaseUsername": second(db.ReleaseUsername(ctx, "a\x00b")),
		"SessionByToken":  third(db.SessionByToken(ctx, "\x00")),
	} {
		wantCode(t, name, err, apperr.ENOTFOUND)
	}
	l, err := db.ListUsers(ctx, identity.ListOptions{Prefix: "a\x00", Limit: 10})
	check(t, err)
	equal(t, "users with a NUL prefix", len(l), 0)
	l, err = db.ListUsers(ctx, identity.ListOptions{After: "a\x00b", Limit: 10})
	check(t, err)
	equal(t, "users after a\\x00b", len(l), 1)
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

// queued is a step's hold on the row it has locked: the first call returns once the n-1 other
// updaters wait for a lock in the database at url (pg_stat_activity), so every one of them
// truly overlaps the first; the later calls (each updater's, once the lock came free to it)
// return at once. Without the row's lock nobody queues, and the test fails here.
func queued(t *testing.T, url string, n int) func() {
	t.Helper()
	admin, err := pgx.Connect(ctx, url)
	check(t, err)
	t.Cleanup(func() { admin.Close(ctx) })
	var once sync.Once
	return func() {
		once.Do(func() {
			if !proctest.Eventually(10*time.Second, func() bool {
				var waiting int
				err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
				return err == nil && waiting >= n-1
			}) {
				t.Errorf("the other %d updaters never queued on the row's lock", n-1)
			}
		})
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := apperr.Code(err); got != code {
		t.Fatalf("%s: error %v (code %q), want %q", what, err, got, code)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// withUnderneath opens a store on a database of its own with the user u1, and a connection of
// the test's own, to change rows under the store; it returns the database's URL too.
func withUnderneath(t *testing.T) (*pgstore.DB, *pgx.Conn, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	db := open(t, url)
	admin, err := pgx.Connect(ctx, url)
	check(t, err)
	t.Cleanup(func() { admin.Close(ctx) })
	check(t, db.CreateUser(ctx, identity.User{ID: "u1", Username: "alice"}))
	return db, admin, url
}

// Concurrent refreshes of one token whose steps overlap in time still have one winner. Each
// step runs first on the family as read without a lock, all of them before any write: one
// write wins the compare-and-swap. Then, with the family's row changed under them after they
// read it (an unrelated write), every refresh misses, takes the locking path and queues on the
// row's lock there: one winner again. (The suite's race rarely overlaps steps on a fast
// database, so it may catch neither a missing version check nor a missing lock.)
func TestSlowConcurrentRefreshOneWinner(t *testing.T) {
	db, admin, url := withUnderneath(t)
	t0 := time.Now()
	// Every refresh gets a connection at once: dialing one takes longer than a refresh.
	const n = 8
	conns := make([]*pgxpool.Conn, n)
	for i := range conns {
		c, err := db.Pool().Acquire(ctx)
		check(t, err)
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
	// race refreshes family's token r0 n times at once; each first step waits until all n have
	// read the family, then runs between (once, for all) and locked runs in every later step.
	race := func(family string, between, locked func()) (winners, later int) {
		check(t, db.CreateFamily(ctx, identity.Family{ID: family, UserID: "u1", ExpiresAt: t0.Add(time.Hour), Current: "r0-" + family}))
		var read sync.WaitGroup
		read.Add(n)
		var once sync.Once
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range n {
			wg.Go(func() {
				runs := 0
				_, err := db.UpdateFamilyByToken(ctx, "r0-"+family, func(f identity.Family, u identity.User) (identity.Family, error) {
					if runs++; runs == 1 {
						read.Done()
						read.Wait()
						once.Do(between)
					} else {
						locked()
						mu.Lock()
						later++
						mu.Unlock()
					}
					return f.Refresh("r0-"+family, fmt.Sprintf("r1-%s-%d", family, i), u, t0)
				})
				if runs == 0 {
					read.Done() // failed before its step: the others must not wait for it
				}
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					winners++
				} else if apperr.Code(err) != apperr.EUNAUTHORIZED {
					t.Errorf("refresh %d of %s: %v", i, family, err)
				}
			})
		}
		wg.Wait()
		return winners, later
	}
	if winners, _ := race("f1", func() {}, func() {}); winners != 1 {
		t.Fatalf("refreshes that read the same family: %d winners, want 1", winners)
	}
	hold := queued(t, url, n)
	winners, later := race("f2", func() {
		_, err := admin.Exec(ctx, `UPDATE refresh_families SET scope = scope WHERE id = 'f2'`)
		check(t, err)
	}, hold)
	if winners != 1 || later != n {
		t.Fatalf("refreshes of a family changed after they read it: %d winners, %d steps on the locking path; want 1 and %d", winners, later, n)
	}
}

// A refresh is two statements when nothing else happens to the family, its step run once; a
// family revoked between the read and the write (as a sign-out elsewhere would) is not spent:
// the write finds the family changed, and the step, run again on the family as it is, refuses.
func TestRefreshSeesChangeAfterRead(t *testing.T) {
	db, admin, _ := withUnderneath(t)
	t0 := time.Now()
	check(t, db.CreateFamily(ctx, identity.Family{ID: "f1", UserID: "u1", ExpiresAt: t0.Add(time.Hour), Current: "r0"}))
	runs := 0
	_, err := db.UpdateFamilyByToken(ctx, "r0", func(f identity.Family, u identity.User) (identity.Family, error) {
		runs++
		return f.Refresh("r0", "r1", u, t0)
	})
	check(t, err)
	if runs != 1 {
		t.Fatalf("a refresh alone ran its step %d times, want once", runs)
	}
	runs = 0
	got, err := db.UpdateFamilyByToken(ctx, "r1", func(f identity.Family, u identity.User) (identity.Family, error) {
		if runs++; runs == 1 {
			_, err := admin.Exec(ctx, `UPDATE refresh_families SET revoked = true WHERE id = 'f1'`)
			check(t, err)
		}
		return f.Refresh("r1", "r2", u, t0)
	})
	if apperr.Code(err) != apperr.EUNAUTHORIZED || runs != 2 || !got.Revoked || got.Current != "r1" {
		t.Fatalf("a refresh of a family revoked after it was read: %+v, %v, step run %d times", got, err, runs)
	}
	list, err := db.ListFamilies(ctx, "u1")
	check(t, err)
	if len(list) != 1 || !list[0].Revoked || list[0].Current != "r1" {
		t.Fatalf("the family after: %+v", list)
	}
	if _, err := db.UpdateFamilyByToken(ctx, "r2", func(f identity.Family, _ identity.User) (identity.Family, error) { return f, nil }); apperr.Code(err) != apperr.ENOTFOUND {
		t.Fatalf("the token the refused refresh would have issued: %v, want ENOTFOUND", err)
	}

	// The same for the user's password changed between the read and the write: the family,
	// made with the old credentials, ends.
	check(t, db.CreateFamily(ctx, identity.Family{ID: "f2", UserID: "u1", ExpiresAt: t0.Add(time.Hour), Current: "q0"}))
	runs = 0
	got, err = db.UpdateFamilyByToken(ctx, "q0", func(f identity.Family, u identity.User) (identity.Family, error) {
		if runs++; runs == 1 {
			_, err := db.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) {
				u.PasswordHash = "changed"
				return u, nil
			})
			check(t, err)
		}
		return f.Refresh("q0", "q1", u, t0)
	})
	if apperr.Code(err) != apperr.EUNAUTHORIZED || runs != 2 || !got.Revoked || got.Current != "q0" {
		t.Fatalf("a refresh of a family whose user's credentials changed after it was read: %+v, %v, step run %d times", got, err, runs)
	}
}

func TestThrottleConformance(t *testing.T) {
	base := pgtest.NewDatabase(t)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	n := 0
	storetest.RunThrottleTests(t, func(t *testing.T) identity.ThrottleStore {
		n++
		return open(t, inSchema(t, admin, base, fmt.Sprintf("throttle_%02d", n)))
	})
}

// Concurrent redemptions of one code whose updaters overlap in time have one winner, and every
// other is given the code as the winner stored it: the code's row is locked from the read to
// the commit. (As for refreshes, the suite's race rarely overlaps on a fast database.)
func TestSlowConcurrentRedeemOneWinner(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url)
	hold := queued(t, url, 8)
	t0 := time.Now()
	check(t, db.CreateCode(ctx, identity.AuthCode{Hash: "c1", ClientID: "grafana", RedirectURI: "https://grafana.example/cb",
		UserID: "u1", CreatedAt: t0, ExpiresAt: t0.Add(identity.CodeTTL)}))
	conns := make([]*pgxpool.Conn, 8)
	for i := range conns {
		c, err := db.Pool().Acquire(ctx)
		check(t, err)
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range len(conns) {
		wg.Go(func() {
			rh := fmt.Sprintf("rh-%d", i)
			got, err := db.UpdateCode(ctx, "c1", func(c identity.AuthCode) (identity.AuthCode, error) {
				hold() // the row's lock, while the others queue on it
				if c.Used {
					return identity.AuthCode{}, errReplay
				}
				c.Used, c.RefreshHash = true, rh
				return c, nil
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, rh)
			case err == errReplay && got.Used && got.RefreshHash != "":
			default:
				t.Errorf("redemption %d: %+v, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d winners (%v), want 1", len(winners), winners)
	}
}

var errReplay = fmt.Errorf("replay")

// The audit trail, the user flags and the deleted users' ids are imported as the source has
// them: the events with their ids, after which appended ones come after them; any number of
// times.
func TestImportAuditAndDeleted(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	u := identity.User{ID: "u1", Username: "alice", CreatedAt: t0, Disabled: true, Admin: true, LastLoginAt: t0.Add(time.Hour)}
	events := []identity.AuditEvent{
		{ID: 7, Time: t0.Add(2 * time.Second), Type: identity.AuditUserDeleted, UserID: "gone", Actor: "admin-token", Outcome: "success"},
		{ID: 3, Time: t0, Type: identity.AuditSignup, UserID: "u1", Actor: "anonymous", ClientIP: "192.0.2.1", Outcome: "success", Detail: "d"},
	}
	for range 2 {
		check(t, db.ImportUser(ctx, u))
		check(t, db.ImportDeletedUser(ctx, "gone"))
		check(t, db.ImportAudit(ctx, events...))
	}
	got, err := db.GetUser(ctx, "u1")
	check(t, err)
	equal(t, "the imported user's flags", got, u)
	wantCode(t, "CreateUser of an imported deleted id", db.CreateUser(ctx, identity.User{ID: "gone", Username: "bob"}), apperr.ECONFLICT)
	// The name and email the deleted user left reserved stay so, until released.
	reserved := identity.ReservedName{Username: "Gone-Name", UserID: "gone", Email: "Gone@example.com"}
	for range 2 {
		check(t, db.ImportReservedName(ctx, reserved))
	}
	wantCode(t, "CreateUser with an imported reserved name", db.CreateUser(ctx, identity.User{ID: "u2", Username: "gone-name"}), apperr.ECONFLICT)
	wantCode(t, "CreateUser with an imported reserved email", db.CreateUser(ctx, identity.User{ID: "u2", Username: "carl", Email: "gone@EXAMPLE.com"}), apperr.ECONFLICT)
	released, err := db.ReleaseUsername(ctx, "GONE-NAME")
	check(t, err)
	equal(t, "the released import", released, reserved)
	check(t, db.CreateUser(ctx, identity.User{ID: "u2", Username: "gone-name", Email: "gone@example.com"}))
	list, err := db.ListAudit(ctx, identity.AuditQuery{Limit: 10})
	check(t, err)
	equal(t, "the imported events", list, events)
	check(t, db.AppendAudit(ctx, identity.AuditEvent{Time: t0.Add(time.Minute), Type: identity.AuditLogin}))
	list, err = db.ListAudit(ctx, identity.AuditQuery{Limit: 1})
	check(t, err)
	if len(list) != 1 || list[0].ID != 8 {
		t.Fatalf("the event appended after the import: %+v, want id 8", list)
	}
	wantCode(t, "an event without an id", db.ImportAudit(ctx, identity.AuditEvent{Time: t0, Type: identity.AuditLogin}), apperr.EINVALID)
	wantCode(t, "an invalid event", db.ImportAudit(ctx, identity.AuditEvent{ID: 20, Type: identity.AuditLogin}), apperr.EINVALID)

	other := open(t, pgtest.NewDatabase(t))
	check(t, other.ImportAudit(ctx, events[1]))
	if empty, err := other.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty of a store holding only an audit event = %v, %v", empty, err)
	}
}

// UpdateThrottle writes the events of its context with the counters (the suite's throttle
// tests hold an in-memory store too, which keeps no audit trail).
func TestThrottleWritesEvents(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lockout := identity.AuditEvent{Time: t0, Type: identity.AuditLockout, UserID: "u1", Actor: "anonymous", Outcome: "failure"}
	err := db.UpdateThrottle(identity.WithAuditEvents(ctx, lockout), []string{"a:alice"}, func(string, identity.ThrottleCounter) identity.ThrottleCounter {
		return identity.ThrottleCounter{First: t0, Touched: t0, Failures: 1}
	})
	check(t, err)
	bad := identity.WithAuditEvents(ctx, identity.AuditEvent{Type: identity.AuditLockout})
	err = db.UpdateThrottle(bad, []string{"a:alice"}, func(string, identity.ThrottleCounter) identity.ThrottleCounter {
		return identity.ThrottleCounter{First: t0, Touched: t0, Failures: 2}
	})
	wantCode(t, "a throttle update with an invalid event", err, apperr.EINVALID)
	c, err := db.ThrottleCounters(ctx, "a:alice")
	check(t, err)
	equal(t, "the counter after the refused update", c["a:alice"].Failures, 1)
	list, err := db.ListAudit(ctx, identity.AuditQuery{Limit: 10})
	check(t, err)
	lockout.ID = list[0].ID
	equal(t, "the events of the throttle", list, []identity.AuditEvent{lockout})
}

// A revocation with events (a reuse, to a hash the family issued before) leaves the common
// path for the locking one, where step runs again; the revocation kept there keeps its events,
// once — those of the last run.
func TestRefreshLockingPathKeepsEvents(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	check(t, db.CreateUser(ctx, identity.User{ID: "u1", Username: "alice"}))
	check(t, db.CreateFamily(ctx, identity.Family{ID: "f1", UserID: "u1", ExpiresAt: t0.Add(time.Hour), Current: "r0"}))
	_, err := db.UpdateFamilyByToken(ctx, "r0", func(f identity.Family, _ identity.User) (identity.Family, error) {
		f.Current = "r1"
		return f, nil
	})
	check(t, err)
	runs := 0
	c := identity.WithAudit(ctx, func() []identity.AuditEvent {
		return []identity.AuditEvent{{Time: t0, Type: identity.AuditRefreshReuse, UserID: "u1", Detail: fmt.Sprintf("run %d", runs)}}
	})
	got, err := db.UpdateFamilyByToken(c, "r1", func(f identity.Family, _ identity.User) (identity.Family, error) {
		runs++
		f.Current, f.Revoked = "r0", true // a hash the family issued before
		return f, identity.ErrReuse
	})
	if err != identity.ErrReuse || !got.Revoked || got.Current != "r0" {
		t.Fatalf("the kept revocation: %+v, %v", got, err)
	}
	if runs < 2 {
		t.Fatalf("the step ran %d times: the locking path was not taken", runs)
	}
	list, err := db.ListAudit(ctx, identity.AuditQuery{Limit: 10})
	check(t, err)
	if len(list) != 1 || list[0].Detail != fmt.Sprintf("run %d", runs) {
		t.Fatalf("events of the kept revocation: %+v, want one, of the last run", list)
	}

	// On the locking path too, a step that keeps nothing records nothing.
	check(t, db.CreateFamily(ctx, identity.Family{ID: "f2", UserID: "u1", ExpiresAt: t0.Add(time.Hour), Current: "q0"}))
	_, err = db.UpdateFamilyByToken(ctx, "q0", func(f identity.Family, _ identity.User) (identity.Family, error) {
		f.Current = "q1"
		return f, nil
	})
	check(t, err)
	runs = 0
	_, err = db.UpdateFamilyByToken(c, "q1", func(f identity.Family, _ identity.User) (identity.Family, error) {
		runs++
		if runs == 1 {
			f.Current = "q0" // to the locking path, where this step changes its mind
			return f, nil
		}
		return identity.Family{}, identity.ErrUnchanged
	})
	if err != identity.ErrUnchanged || runs != 2 {
		t.Fatalf("a step that keeps nothing on the locking path: %v after %d runs", err, runs)
	}
	after, err := db.ListAudit(ctx, identity.AuditQuery{Limit: 10})
	check(t, err)
	equal(t, "events after a step that kept nothing", after, list)
}

// spends counts the refresh writes a pool sends: grouped (a batch of several refreshes) and
// alone (a batch of one).
type spends struct {
	mu             sync.Mutex
	grouped, alone int
	reads          [2]int // the refreshes' reads: grouped, alone
	locking        int    // the locking path's reads
}

func (b *spends) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.HasSuffix(strings.TrimSpace(d.SQL), "FOR UPDATE OF f") {
		b.locking++
	}
	if !strings.HasPrefix(strings.TrimSpace(d.SQL), "SELECT t.token_hash,") {
		return ctx
	}
	if hashes, _ := d.Args[0].([]string); len(hashes) > 1 {
		b.reads[0]++
	} else {
		b.reads[1]++
	}
	return ctx
}
func (b *spends) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (b *spends) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (b *spends) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !strings.HasPrefix(strings.Join(strings.Fields(d.SQL), " "), "UPDATE refresh_families f SET current_token = v.token") {
		return
	}
	if ids, _ := d.Args[0].([]string); len(ids) > 1 {
		b.grouped++
	} else {
		b.alone++
	}
}
func (b *spends) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (b *spends) readCount() [2]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads
}

func (b *spends) lockingCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.locking
}

func (b *spends) count() (grouped, alone int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.grouped, b.alone
}

// The writes of refreshes that come while another refresh's write is in flight go to
// PostgreSQL together, in one batch: every family moves on and indexes its new token; of two
// refreshes of one token in the same batch one wins and the other finds the token spent. A
// batch that fails as a whole (one refresh's new token issued already) loses no one's write:
// each is written alone, and the conflict is that refresh's own.
func TestRefreshesWriteTogether(t *testing.T) {
	db, count, t0 := spendStore(t, 12)
	const n = 10
	type refresh struct{ presented, next string }
	// write runs the refreshes, the first one's group held until the others queue behind it,
	// and returns their errors and how many writes went grouped and alone after the hold
	// ended (the held one among them: pgx traces a batch's statements as it reads their
	// results).
	write := func(refreshes []refresh) ([]error, [2]int) {
		held, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		db.HoldSpends(func() { once.Do(func() { close(held); <-release }) })
		defer db.HoldSpends(nil)
		errs := make([]error, len(refreshes))
		var wg sync.WaitGroup
		for i, r := range refreshes {
			wg.Go(func() {
				_, errs[i] = db.UpdateFamilyByToken(ctx, r.presented, func(f identity.Family, u identity.User) (identity.Family, error) {
					return f.Refresh(r.presented, r.next, u, t0)
				})
			})
			if i == 0 {
				<-held
			}
		}
		if !proctest.Eventually(10*time.Second, func() bool { return db.QueuedSpends() == len(refreshes)-1 }) {
			t.Fatalf("%d writes queued behind the one in flight, want %d", db.QueuedSpends(), len(refreshes)-1)
		}
		grouped, alone := count.count()
		close(release)
		wg.Wait()
		g, a := count.count()
		return errs, [2]int{g - grouped, a - alone}
	}
	moved := func(r refresh, family string) {
		t.Helper()
		if f, _ := peekFamily(t, db, r.next); f.ID != family || f.Current != r.next {
			t.Fatalf("the family of %s: %+v, want %s moved on to it", r.next, f, family)
		}
	}

	var refreshes []refresh
	for i := range n {
		refreshes = append(refreshes, refresh{fmt.Sprintf("r0-%02d", i), fmt.Sprintf("r1-%02d", i)})
	}
	refreshes = append(refreshes, refresh{"r0-10", "r1-10-a"}, refresh{"r0-10", "r1-10-b"})
	errs, sent := write(refreshes)
	if sent != [2]int{1, 1} {
		t.Fatalf("the held write and the %d behind it: %d grouped and %d alone, want it alone and one group", len(refreshes)-1, sent[0], sent[1])
	}
	for i, r := range refreshes[:n] {
		check(t, errs[i])
		moved(r, fmt.Sprintf("f%02d", i))
	}
	if a, b := errs[n], errs[n+1]; (a == nil) == (b == nil) || apperr.Code(errors.Join(a, b)) != apperr.EUNAUTHORIZED {
		t.Fatalf("two refreshes of one token in one batch: %v and %v, want one winner and one spent token", a, b)
	}

	// A batch one of whose new tokens another family issued: the others' writes stand.
	var again []refresh
	for i := range n {
		again = append(again, refresh{fmt.Sprintf("r1-%02d", i), fmt.Sprintf("r2-%02d", i)})
	}
	again[n/2].next = "r0-11" // f11's token
	errs, sent = write(again)
	if sent != [2]int{1, len(again)} {
		t.Fatalf("the held write and the %d behind it, a token taken among them: %d grouped and %d alone, want it alone, one group, then each of the group alone", len(again)-1, sent[0], sent[1])
	}
	for i, r := range again {
		if i == n/2 {
			wantCode(t, "a new token another family issued", errs[i], apperr.ECONFLICT)
			continue
		}
		check(t, errs[i])
		moved(r, fmt.Sprintf("f%02d", i))
	}
}

// The reads of refreshes that come while another refresh's read is in flight go to PostgreSQL
// together, in one statement, and each refresh gets what it would have read alone: its own
// family, owner and groups; a token no family issued is not found; two refreshes of one token
// read the same family, each a copy of its own, and one wins.
func TestRefreshesReadTogether(t *testing.T) {
	db, count, t0 := spendStore(t, 6)
	check(t, db.CreateUser(ctx, identity.User{ID: "u2", Username: "bob"}))
	check(t, db.CreateFamily(ctx, identity.Family{ID: "g0", UserID: "u2", ExpiresAt: t0.Add(time.Hour), Current: "b0", AMR: []string{"pwd"}}))
	check(t, db.CreateGroup(ctx, identity.Group{Name: "ops"}))
	check(t, db.CreateGroup(ctx, identity.Group{Name: "dev"}))
	check(t, db.AddMember(ctx, "ops", "u2"))
	check(t, db.AddMember(ctx, "dev", "u2"))

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	db.HoldReads(func() { once.Do(func() { close(held); <-release }) })
	type result struct {
		f      identity.Family
		groups []string
		err    error
	}
	presented := []string{"r0-00", "r0-01", "r0-02", "b0", "b0", "nobody's"}
	results := make([]result, len(presented))
	// The first step given b0's family changes its AMR in place before the second step looks.
	var mu sync.Mutex
	var amrSeen [][]string
	changed := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range presented {
		wg.Go(func() {
			f, groups, err := db.UpdateFamilyByTokenWithGroups(ctx, p, func(f identity.Family, u identity.User) (identity.Family, error) {
				if p == "b0" {
					mu.Lock()
					n := len(amrSeen)
					amrSeen = append(amrSeen, nil)
					mu.Unlock()
					if n == 1 {
						<-changed
					}
					mu.Lock()
					amrSeen[n] = slices.Clone(f.AMR)
					mu.Unlock()
					if n == 0 {
						f.AMR[0] = "changed in place"
						close(changed)
					}
				}
				return f.Refresh(p, fmt.Sprintf("next-%d", i), u, t0)
			})
			results[i] = result{f, groups, err}
		})
		if i == 0 {
			<-held
		}
	}
	if !proctest.Eventually(10*time.Second, func() bool { return db.QueuedReads() == len(presented)-1 }) {
		t.Fatalf("%d reads queued behind the one in flight, want %d", db.QueuedReads(), len(presented)-1)
	}
	if got := count.readCount(); got != [2]int{0, 0} {
		t.Fatalf("reads sent while the first was held: %v", got)
	}
	close(release)
	wg.Wait()
	if got := count.readCount(); got != [2]int{1, 1} {
		t.Fatalf("reads: %d grouped and %d alone, want the held one alone and one group", got[0], got[1])
	}
	if n := count.lockingCount(); n != 1 { // each read its own family's version: only b0's loser missed
		t.Fatalf("%d refreshes took the locking path, want 1", n)
	}
	for i := range 3 {
		r := results[i]
		check(t, r.err)
		if want := fmt.Sprintf("f%02d", i); r.f.ID != want || r.f.Current != fmt.Sprintf("next-%d", i) || len(r.groups) != 0 {
			t.Fatalf("refresh %d: %+v, groups %v; want %s moved on, no groups", i, r.f, r.groups, want)
		}
	}
	a, b := results[3], results[4]
	if (a.err == nil) == (b.err == nil) || apperr.Code(errors.Join(a.err, b.err)) != apperr.EUNAUTHORIZED {
		t.Fatalf("two refreshes of one token read together: %v and %v, want one winner and one spent token", a.err, b.err)
	}
	winner := a
	if b.err == nil {
		winner = b
	}
	equal(t, "the winner's groups", winner.groups, []string{"dev", "ops"})
	for _, amr := range amrSeen {
		equal(t, "the AMR each step of the shared token was given", amr, []string{"pwd"})
	}
	if len(amrSeen) < 2 {
		t.Fatalf("the steps of the shared token ran %d times", len(amrSeen))
	}
	wantCode(t, "a token no family issued", results[5].err, apperr.ENOTFOUND)
}

// A family whose row another transaction holds locked (a sign-out, a credential change, a
// refresh on the locking path) holds up no one else's refresh: its group moves the others on
// without it, and its own refresh waits for the lock alone.
func TestLockedFamilyHoldsUpNoOne(t *testing.T) {
	db, count, t0 := spendStore(t, 10)
	admin, err := pgx.Connect(ctx, db.Pool().Config().ConnConfig.ConnString())
	check(t, err)
	defer admin.Close(ctx)
	tx, err := admin.Begin(ctx)
	check(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT FROM refresh_families WHERE id = 'f05' FOR UPDATE`)
	check(t, err)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	db.HoldSpends(func() { once.Do(func() { close(held); <-release }) })
	errs := make([]error, 10)
	var done atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, errs[i] = db.UpdateFamilyByToken(ctx, fmt.Sprintf("r0-%02d", i), func(f identity.Family, u identity.User) (identity.Family, error) {
				return f.Refresh(fmt.Sprintf("r0-%02d", i), fmt.Sprintf("r1-%02d", i), u, t0)
			})
			done.Add(1)
		})
		if i == 0 {
			<-held // f05 goes in the next group, with the others
		}
	}
	if !proctest.Eventually(10*time.Second, func() bool { return db.QueuedSpends() == 9 }) {
		t.Fatalf("%d writes queued, want 9", db.QueuedSpends())
	}
	close(release)
	if !proctest.Eventually(10*time.Second, func() bool { return done.Load() == 9 }) {
		t.Fatalf("%d of the 9 refreshes of unlocked families done while f05 is locked", done.Load())
	}
	check(t, tx.Rollback(ctx))
	wg.Wait()
	// Not by waiting out the statement timeout, which fails the group and writes each alone.
	if grouped, alone := count.count(); grouped != 1 || alone != 1 {
		t.Fatalf("%d groups and %d writes alone, want the held one alone and one group of the others", grouped, alone)
	}
	for i, err := range errs {
		check(t, err)
		if f, _ := peekFamily(t, db, fmt.Sprintf("r1-%02d", i)); f.ID != fmt.Sprintf("f%02d", i) {
			t.Fatalf("the family of r1-%02d: %+v", i, f)
		}
	}
}

// spendStore opens a store on a database of its own, counting its refresh writes, with the
// user u1 and the families f00… of n, each with the token r0-00….
func spendStore(t *testing.T, n int) (*pgstore.DB, *spends, time.Time) {
	t.Helper()
	count := &spends{}
	db, err := pgstore.Open(ctx, pgdb.Config{URL: pgtest.NewDatabase(t), MaxConns: 8, Tracer: count}, nil)
	check(t, err)
	t.Cleanup(func() { db.Close() })
	t0 := time.Now()
	check(t, db.CreateUser(ctx, identity.User{ID: "u1", Username: "alice"}))
	for i := range n {
		check(t, db.CreateFamily(ctx, identity.Family{ID: fmt.Sprintf("f%02d", i), UserID: "u1", ExpiresAt: t0.Add(time.Hour), Current: fmt.Sprintf("r0-%02d", i)}))
	}
	return db, count, t0
}

// peekFamily is the family that issued tokenHash, unchanged.
func peekFamily(t *testing.T, db *pgstore.DB, tokenHash string) (identity.Family, identity.User) {
	t.Helper()
	var f identity.Family
	var u identity.User
	_, err := db.UpdateFamilyByToken(ctx, tokenHash, func(sf identity.Family, su identity.User) (identity.Family, error) {
		f, u = sf, su
		return identity.Family{}, identity.ErrUnchanged
	})
	if err != identity.ErrUnchanged {
		t.Fatalf("peek %s: %v", tokenHash, err)
	}
	return f, u
}
