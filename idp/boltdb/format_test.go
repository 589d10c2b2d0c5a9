package boltdb_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var update = flag.Bool("update", false, "rewrite testdata/format.golden from what the store writes now")

// formatGolden holds every bucket entry populate leaves, as the store writes them. The file
// format is a contract with every data folder in use: a change the golden file would need is a
// change those files need a migration (or a reader of both formats) for, so -update is for an
// intended new format only, and the file it replaces is kept and still opened
// (formatBeforeChains, TestGoldenFileOpens).
const formatGolden = "testdata/format.golden"

// TestStoredFormat writes every kind of entity through every write path and compares the
// bytes in the file, bucket by bucket, with the golden file.
func TestStoredFormat(t *testing.T) {
	db := openTemp(t).(*boltdb.DB)
	populate(t, db)
	got := dump(t, db)
	if *update {
		if err := os.WriteFile(formatGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(formatGolden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("stored format changed at line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("stored format changed: %d lines, want %d", len(gl), len(wl))
	}
}

// formatBeforeChains is the golden file as it was before a family's token hashes were chained
// through the token index (families.go): data folders written then hold each family's hashes in
// a set of its own, and must read, refresh and delete as they did.
const formatBeforeChains = "testdata/format-before-chains.golden"

// TestGoldenFileOpens loads each golden file's entries into a data folder, as an older IdP left
// it, and reads every entity back through the store: each reads as it does from the store
// that wrote it.
func TestGoldenFileOpens(t *testing.T) {
	written := openTemp(t).(*boltdb.DB)
	populate(t, written)
	want := readAll(t, written)
	for _, file := range []string{formatGolden, formatBeforeChains} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			got := readAll(t, openGolden(t, file))
			for k, w := range want {
				if !reflect.DeepEqual(got[k], w) {
					t.Errorf("%s from the golden file:\n got %+v\nwant %+v", k, got[k], w)
				}
			}
		})
	}
}

// openGolden opens a data folder that holds the entries of a golden file.
func openGolden(t *testing.T, file string) *boltdb.DB {
	t.Helper()
	dir := t.TempDir()
	raw, err := bolt.Open(filepath.Join(dir, boltdb.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := load(raw, file); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := boltdb.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A family of a store written before the chain, refreshed by this one, keeps every token it
// issued — the old ones in its set, the new one chained to them — and deleting it removes all
// of them.
func TestFamilyFromBeforeChainsRefreshesAndDeletes(t *testing.T) {
	ctx := context.Background()
	db := openGolden(t, formatBeforeChains)
	_, tokens := db.Counts()
	for _, next := range []string{"r5b", "r5c"} {
		must(t, second(db.UpdateFamilyByToken(ctx, map[string]string{"r5b": "r5", "r5c": "r5b"}[next],
			func(f identity.Family, u identity.User) (identity.Family, error) {
				return f.Refresh(f.Current, next, u, at)
			})))
	}
	hashes, err := db.FamilyTokenHashes(ctx, "f5")
	must(t, err)
	if want := []string{"r5", "r5b", "r5c"}; !reflect.DeepEqual(hashes, want) {
		t.Fatalf("f5's hashes after two refreshes: %q, want %q", hashes, want)
	}
	// r5 is spent: presenting it is reuse, which the old entry still tells.
	if _, err := db.UpdateFamilyByToken(ctx, "r5", func(f identity.Family, u identity.User) (identity.Family, error) {
		return f.Refresh("r5", "r5x", u, at)
	}); !errors.Is(err, identity.ErrReuse) {
		t.Fatalf("the spent r5: %v, want reuse", err)
	}
	sets := familySets(t, db)
	must(t, db.DeleteUser(ctx, "u4"))
	if n := familySets(t, db); n != sets-1 {
		t.Fatalf("%d families' sets of hashes after deleting u4's family, want %d", n, sets-1)
	}
	if _, left := db.Counts(); left != tokens-1 {
		t.Fatalf("%d token hashes after deleting u4's family, want %d (the %d before, less r5)", left, tokens-1, tokens)
	}
	for _, h := range []string{"r5", "r5b", "r5c"} {
		_, err := db.UpdateFamilyByToken(ctx, h, func(f identity.Family, _ identity.User) (identity.Family, error) { return f, nil })
		if apperr.Code(err) != apperr.ENOTFOUND {
			t.Fatalf("%s after its family was deleted: %v, want ENOTFOUND", h, err)
		}
	}
}

// A family whose live token is set back to one it issued before (a step may do that) still
// finds, lists and deletes every token it issued: those issued after the older one leave the
// chain, so they go into its set first.
func TestFamilySetBackDeletesWhole(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t).(*boltdb.DB)
	must(t, db.CreateUser(ctx, identity.User{ID: "u", Username: "erin", CreatedAt: at}))
	must(t, db.CreateFamily(ctx, identity.Family{ID: "f", UserID: "u", CreatedAt: at, ExpiresAt: at.Add(time.Hour), Current: "a"}))
	set := func(presented, next string) {
		t.Helper()
		must(t, second(db.UpdateFamilyByToken(ctx, presented, func(f identity.Family, _ identity.User) (identity.Family, error) {
			f.Current = next
			return f, nil
		})))
	}
	for _, step := range [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}, {"d", "e"},
		{"e", "b"}, // back to one in the middle: c, d and e leave the chain
		{"b", "f"},
		{"f", "a"}, // and back to the first: b and f leave it too
		{"a", "g"},
	} {
		set(step[0], step[1])
	}
	hashes, err := db.FamilyTokenHashes(ctx, "f")
	must(t, err)
	if want := []string{"a", "b", "c", "d", "e", "f", "g"}; !reflect.DeepEqual(hashes, want) {
		t.Fatalf("f's hashes: %q, want %q", hashes, want)
	}
	if _, tokens := db.Counts(); tokens != 7 {
		t.Fatalf("%d token hashes, want 7", tokens)
	}
	must(t, db.DeleteUser(ctx, "u"))
	if families, tokens := db.Counts(); families != 0 || tokens != 0 {
		t.Fatalf("after deleting the user: %d families, %d token hashes; want none", families, tokens)
	}
	if n := familySets(t, db); n != 0 {
		t.Fatalf("%d families' sets of hashes left after deleting the user, want none", n)
	}
}

// familySets counts the families that have a set of hashes of their own (bucketFamTokens).
func familySets(t *testing.T, db *boltdb.DB) int {
	t.Helper()
	n := 0
	must(t, db.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("famtokens")).ForEach(func(_, v []byte) error {
			if v == nil {
				n++
			}
			return nil
		})
	}))
	return n
}

// at is the suite's clock, in a zone other than UTC: the store keeps what it is given, and
// reads it back in UTC.
var at = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.FixedZone("CEST", 2*3600))

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func second[T any](_ T, err error) error { return err }

// populate calls every write method of the store, with fixed values.
func populate(t *testing.T, db *boltdb.DB) {
	ctx := context.Background()
	audited := identity.WithAuditEvents(ctx, identity.AuditEvent{Time: at, Type: identity.AuditSignup, UserID: "u1", Actor: "anonymous", ClientIP: "192.0.2.1", Outcome: "success"})
	must(t, db.CreateUser(audited, identity.User{ID: "u1", Username: "Alice", PasswordHash: "$argon2id$x", CreatedAt: at, Email: "Alice@Example.com"}))
	must(t, db.CreateUser(ctx, identity.User{ID: "u2", Username: "bob", PasswordHash: "$argon2id$y", CreatedAt: at}))
	must(t, db.CreateUser(ctx, identity.User{ID: "u3", Username: "carol", CreatedAt: at, Email: "carol@example.com", Admin: true}))
	must(t, second(db.UpdateUser(ctx, "u1", func(u identity.User) (identity.User, error) {
		u.EmailVerified, u.LastLoginAt = true, at.Add(time.Minute)
		u.Factors = identity.SecondFactors{TOTP: &identity.TOTP{Secret: []byte("sealed"), Confirmed: true, LastStep: 7, EnrolledAt: at},
			RecoveryCodes: []string{}, Passkeys: []identity.Passkey{{ID: []byte{1, 2}, PublicKey: []byte{3}, Name: "key", CreatedAt: at}}}
		return u, nil
	})))
	must(t, second(db.UpdateUser(ctx, "u2", func(u identity.User) (identity.User, error) {
		u.Username, u.Email = "Bobby", "bob@example.com"
		return u, nil
	})))

	must(t, db.CreateClient(ctx, identity.Client{ID: "app", Name: "App", SecretHash: "h", RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{identity.GrantAuthorizationCode, identity.GrantRefreshToken}, Scopes: []string{}, CreatedAt: at}))
	must(t, db.CreateClient(ctx, identity.Client{ID: "spa", Public: true, RedirectURIs: []string{"http://127.0.0.1/cb"},
		GrantTypes: []string{identity.GrantAuthorizationCode}, CreatedAt: at}))
	must(t, second(db.UpdateClient(ctx, "app", func(c identity.Client) (identity.Client, error) {
		c.PostLogoutRedirectURIs, c.ForwardAuth = []string{"https://app.example/bye"}, true
		return c, nil
	})))
	must(t, db.SaveConsent(ctx, identity.Consent{UserID: "u1", ClientID: "app", Scopes: []string{"openid", "profile"}, GrantedAt: at}))
	must(t, db.UseAssertion(ctx, identity.UsedAssertion{ClientID: "app", JTI: "jti-1", ExpiresAt: at.Add(time.Minute)}, at))
	must(t, db.SaveConsent(ctx, identity.Consent{UserID: "u2", ClientID: "spa", Scopes: []string{"openid"}, GrantedAt: at}))

	must(t, db.CreateCode(ctx, identity.AuthCode{Hash: "code1", ClientID: "app", RedirectURI: "https://app.example/cb", Nonce: "n",
		Scopes: []string{"openid"}, UserID: "u1", SessionID: "s1", AuthTime: at, AMR: []string{"pwd", "otp"}, CreatedAt: at, ExpiresAt: at.Add(time.Minute)}))
	must(t, db.CreateCode(ctx, identity.AuthCode{Hash: "code2", ClientID: "spa", RedirectURI: "http://127.0.0.1/cb", CodeChallenge: "c",
		UserID: "u2", AuthTime: at, CreatedAt: at, ExpiresAt: at.Add(time.Minute)}))
	must(t, second(db.UpdateCode(ctx, "code1", func(c identity.AuthCode) (identity.AuthCode, error) {
		c.Used, c.RefreshHash = true, "r1"
		return c, nil
	})))

	age := 0
	must(t, db.CreateAuthRequest(ctx, identity.AuthRequest{ID: "req1", ClientID: "app", RedirectURI: "https://app.example/cb",
		Scopes: []string{"openid", "profile"}, State: "st", Nonce: "n", CodeChallenge: "c", Prompt: "login consent", LoginHint: "bob",
		MaxAge: &age, ACRValues: []string{"mfa"}, SignInAfter: at, CreatedAt: at, ExpiresAt: at.Add(identity.AuthRequestTTL)}))
	must(t, db.CreateAuthRequest(ctx, identity.AuthRequest{ID: "req2", ClientID: "spa", RedirectURI: "http://127.0.0.1/cb",
		Scopes: []string{"openid"}, CreatedAt: at, ExpiresAt: at.Add(identity.AuthRequestTTL)}))
	must(t, second(db.UpdateAuthRequest(ctx, "req2", func(r identity.AuthRequest) (identity.AuthRequest, error) {
		r.SignInAfter, r.Answered = at.Add(time.Minute), true
		return r, nil
	})))

	must(t, db.CreateSession(ctx, identity.Session{ID: "s1", TokenHash: "st1", UserID: "u1", AuthTime: at, AMR: []string{"pwd"}, CreatedAt: at,
		LastSeenAt: at, IdleTTL: time.Hour, ExpiresAt: at.Add(24 * time.Hour), RemoteAddr: "192.0.2.1", UserAgent: "UA"}))
	must(t, db.CreateSession(ctx, identity.Session{ID: "s2", TokenHash: "st2", UserID: "u1", CreatedAt: at.Add(time.Second), ExpiresAt: at.Add(time.Hour), Pending: true}))
	must(t, db.CreateSession(ctx, identity.Session{ID: "s3", TokenHash: "st3", UserID: "u2", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}))
	must(t, second(db.UpdateSession(ctx, "s1", func(s identity.Session) (identity.Session, error) {
		s.TokenHash, s.LastSeenAt = "st1b", at.Add(time.Minute)
		return s, nil
	})))

	must(t, db.CreateFamily(ctx, identity.Family{ID: "f1", UserID: "u1", ClientID: "app", Scope: "openid", Audience: []string{"api"}, SessionID: "s1",
		CreatedAt: at, ExpiresAt: at.Add(time.Hour), Current: "r1", AMR: []string{"pwd"}}))
	must(t, db.CreateFamily(ctx, identity.Family{ID: "f2", UserID: "u1", ClientID: "spa", CreatedAt: at.Add(time.Second), ExpiresAt: at.Add(time.Hour), Current: "r2"}))
	must(t, db.CreateFamily(ctx, identity.Family{ID: "f3", UserID: "u2", ClientID: "app", CreatedAt: at, ExpiresAt: at.Add(time.Hour), Current: "r3"}))
	must(t, second(db.UpdateFamilyByToken(ctx, "r1", func(f identity.Family, u identity.User) (identity.Family, error) {
		return f.Refresh("r1", "r1b", u, at)
	})))
	if _, err := db.UpdateFamilyByToken(ctx, "r1", func(f identity.Family, u identity.User) (identity.Family, error) {
		return f.Refresh("r1", "r1c", u, at) // reuse: the family is revoked and kept so
	}); !errors.Is(err, identity.ErrReuse) {
		t.Fatalf("reuse: %v", err)
	}
	// The pending session and the families not bound to s1 end; s1 moves to the next epoch.
	must(t, second(db.ChangeCredentials(ctx, "u1", func(u identity.User) (identity.User, error) {
		u.PasswordHash = "$argon2id$z"
		return u, nil
	}, "s1")))

	must(t, db.UpdateKeys(ctx, func([]identity.SigningKey) ([]identity.SigningKey, error) {
		return []identity.SigningKey{
			{ID: "k1", State: identity.KeyRetired, PrivateDER: []byte{1, 2, 3}, CreatedAt: at, SignsFrom: at, RetiredAt: at.Add(time.Hour), DeleteAt: at.Add(2 * time.Hour)},
			{ID: "k2", State: identity.KeyCurrent, PrivateDER: []byte{4, 5}, CreatedAt: at, SignsFrom: at.Add(time.Hour)},
			{ID: "k3", State: identity.KeyNext, PrivateDER: []byte{6}, CreatedAt: at},
		}, nil
	}))
	must(t, db.UpdateKeys(ctx, func(keys []identity.SigningKey) ([]identity.SigningKey, error) { return keys[1:], nil }))

	for _, id := range []string{"u1", "nobody"} {
		must(t, second(db.UpdateCodeFailures(ctx, id, func(identity.ThrottleCounter) identity.ThrottleCounter {
			return identity.ThrottleCounter{First: at, Until: at.Add(time.Minute), Touched: at, Failures: 3, Lockouts: 1}
		})))
	}
	_, err := db.Secret(ctx, "browser", []byte("secret bytes\x00\xff"))
	must(t, err)
	must(t, db.AppendAudit(ctx, identity.AuditEvent{Time: at, Type: identity.AuditKeyRotated, Actor: "system", Outcome: "success", Detail: "k2"}))

	// A deleted client's families are revoked (and written) by the delete.
	must(t, db.CreateClient(ctx, identity.Client{ID: "gone", SecretHash: "h", GrantTypes: []string{identity.GrantClientCredentials}, CreatedAt: at}))
	must(t, db.CreateFamily(ctx, identity.Family{ID: "f4", UserID: "u2", ClientID: "gone", CreatedAt: at, ExpiresAt: at.Add(time.Hour), Current: "r4"}))
	must(t, db.DeleteClient(ctx, "gone"))

	// Groups: u3's membership goes with u3, gone's memberships with gone.
	for _, g := range []string{"ops", "k8s:admins", "gone"} {
		must(t, db.CreateGroup(ctx, identity.Group{Name: g, CreatedAt: at}))
	}
	for _, m := range [][2]string{{"ops", "u1"}, {"ops", "u2"}, {"k8s:admins", "u1"}, {"ops", "u3"}, {"gone", "u2"}, {"k8s:admins", "u2"}} {
		must(t, db.AddMember(ctx, m[0], m[1]))
	}
	must(t, db.RemoveMember(ctx, "k8s:admins", "u2"))
	must(t, db.DeleteGroup(ctx, "gone"))

	// Federations (issue 29): u1 linked twice, one link updated; u3's goes with u3. A session,
	// a family and a code through a connector carry its id; those of local sign-ins above
	// leave IDP out of their JSON, so entries written before it existed read unchanged.
	must(t, db.CreateFederation(ctx, identity.Federation{Connector: "company", Subject: "248289761001", UserID: "u1",
		Groups: []string{"company:dev"}, CreatedAt: at}))
	must(t, db.CreateFederation(ctx, identity.Federation{Connector: "corp", Subject: "uid=alice", UserID: "u1", CreatedAt: at}))
	must(t, db.CreateFederatedUser(ctx, identity.User{ID: "u4", Username: "dave", CreatedAt: at},
		identity.Federation{Connector: "company", Subject: "dave-sub", UserID: "u4", Groups: []string{}, CreatedAt: at}))
	must(t, db.CreateFederation(ctx, identity.Federation{Connector: "corp", Subject: "uid=carol", UserID: "u3", CreatedAt: at}))
	// Issue 30: an initial access token, spent once of two, and a client registered with it.
	must(t, db.CreateRegistrationToken(ctx, identity.RegistrationToken{ID: "rt1", Hash: "rth1", CreatedAt: at, ExpiresAt: at.Add(time.Hour), UsesLeft: 2}))
	must(t, second(db.SpendRegistrationToken(ctx, "rth1", at)))
	must(t, db.CreateClient(ctx, identity.Client{ID: "agent", Public: true, TokenEndpointAuth: identity.AuthNone,
		RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{identity.GrantAuthorizationCode},
		RegisteredBy: "registration:rt1", RegistrationAccessHash: "rah", CreatedAt: at}))
	must(t, second(db.UpdateFederation(ctx, "company", "248289761001", func(f identity.Federation) (identity.Federation, error) {
		f.Groups, f.CheckedAt = []string{"company:dev", "company:ops"}, at.Add(time.Minute)
		return f, nil
	})))
	must(t, db.CreateSession(ctx, identity.Session{ID: "s4", TokenHash: "st4", UserID: "u4", AuthTime: at, AMR: []string{"fed"}, IDP: "company",
		CreatedAt: at, LastSeenAt: at, ExpiresAt: at.Add(time.Hour)}))
	must(t, db.CreateFamily(ctx, identity.Family{ID: "f5", UserID: "u4", ClientID: "app", SessionID: "s4", CreatedAt: at, ExpiresAt: at.Add(time.Hour),
		Current: "r5", AMR: []string{"fed"}, IDP: "company"}))
	must(t, db.CreateCode(ctx, identity.AuthCode{Hash: "code3", ClientID: "app", RedirectURI: "https://app.example/cb", UserID: "u4", SessionID: "s4",
		AuthTime: at, AMR: []string{"fed"}, IDP: "company", CreatedAt: at, ExpiresAt: at.Add(time.Minute)}))

	// u3 goes: its username and email stay reserved, its id refused for ever.
	must(t, db.DeleteUser(ctx, "u3"))

	// The outbox: mail queued with a change, with an audit event and alone; one claimed and
	// failed, one sent.
	mail := func(id string, created time.Time) identity.Mail {
		return identity.Mail{ID: id, To: "Alice <alice@example.com>", Subject: "About " + id, Text: "text " + id, HTML: "<p>" + id + "</p>",
			Kind: "notice", UserID: "u1", CreatedAt: created}
	}
	must(t, db.CreateGroup(identity.WithMail(ctx, mail("m1", at)), identity.Group{Name: "mailed", CreatedAt: at}))
	must(t, db.AppendAudit(identity.WithMail(ctx, mail("m2", at.Add(time.Second))),
		identity.AuditEvent{Time: at, Type: identity.AuditLogin, Actor: "anonymous", Outcome: "failure"}))
	m3 := mail("m3", at.Add(2*time.Second))
	m3.HTML, m3.UserID, m3.Kind = "", "", "reset-password"
	must(t, db.EnqueueMail(ctx, m3, mail("m4", at.Add(3*time.Second))))
	must(t, second(db.ClaimMail(ctx, at.Add(time.Hour), time.Minute)))
	must(t, db.MailFailed(ctx, "m1", at.Add(2*time.Hour), "421 try again later"))
	must(t, second(db.ClaimMail(ctx, at.Add(time.Hour), time.Minute)))
	must(t, db.MailSent(ctx, "m2"))
	must(t, second(db.ClaimMail(ctx, at.Add(time.Hour), time.Minute)))
}

// dump lists every entry of every bucket, nested ones too, in bbolt's order: a line per entry,
// its bucket path, key and value quoted; a nested bucket is the word bucket.
func dump(t *testing.T, db *boltdb.DB) string {
	var b strings.Builder
	var walk func(path string, bk *bolt.Bucket) error
	walk = func(path string, bk *bolt.Bucket) error {
		return bk.ForEach(func(k, v []byte) error {
			if v == nil {
				fmt.Fprintf(&b, "%s%q bucket\n", path, k)
				return walk(fmt.Sprintf("%s%q ", path, k), bk.Bucket(k))
			}
			fmt.Fprintf(&b, "%s%q %q\n", path, k, v)
			return nil
		})
	}
	err := db.DB.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			fmt.Fprintf(&b, "%q bucket\n", name)
			return walk(fmt.Sprintf("%q ", name), bk)
		})
	})
	must(t, err)
	return b.String()
}

// load writes the entries of a dump into db.
func load(db *bolt.DB, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return db.Update(func(tx *bolt.Tx) error {
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var words [][]byte
			nested := strings.HasSuffix(sc.Text(), " bucket")
			rest := strings.TrimSuffix(sc.Text(), " bucket")
			for rest != "" {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					return fmt.Errorf("%q: %w", sc.Text(), err)
				}
				w, _ := strconv.Unquote(q)
				words = append(words, []byte(w))
				rest = strings.TrimPrefix(rest[len(q):], " ")
			}
			if nested {
				words = append(words, nil)
			}
			path, k, v := words[:len(words)-2], words[len(words)-2], words[len(words)-1]
			if len(path) == 0 { // a top-level bucket
				if _, err := tx.CreateBucketIfNotExists(k); err != nil {
					return err
				}
				continue
			}
			bk := tx.Bucket(path[0])
			for _, w := range path[1:] {
				bk = bk.Bucket(w)
			}
			var err error
			if v == nil {
				_, err = bk.CreateBucketIfNotExists(k)
			} else {
				err = bk.Put(k, v)
			}
			if err != nil {
				return err
			}
		}
		return sc.Err()
	})
}

// readAll reads every entity populate wrote through the store's read methods, by what was read.
func readAll(t *testing.T, db *boltdb.DB) map[string]any {
	ctx := context.Background()
	out := map[string]any{}
	read := func(what string, v any, err error) {
		t.Helper()
		must(t, err)
		out[what] = v
	}
	users, err := db.ListUsers(ctx, identity.ListOptions{Limit: 10})
	read("users", users, err)
	u, err := db.GetUserByName(ctx, "BOBBY")
	read("user by name", u, err)
	reserved, err := db.ReservedNames(ctx)
	read("reserved names", reserved, err)
	deleted, err := db.DeletedUserIDs(ctx)
	read("deleted users", deleted, err)
	clients, err := db.ListClients(ctx)
	read("clients", clients, err)
	keys, err := db.Keys(ctx)
	read("keys", keys, err)
	events, err := db.ListAudit(ctx, identity.AuditQuery{Limit: 100})
	read("audit", events, err)
	secrets, err := db.Secrets(ctx)
	read("secrets", secrets, err)
	groups, err := db.ListGroups(ctx, identity.ListOptions{Limit: 10})
	read("groups", groups, err)
	outbox, err := db.Outbox(ctx)
	read("outbox", outbox, err)
	for _, id := range []string{"u1", "u2", "u3"} {
		names, err := db.UserGroups(ctx, id)
		read("groups of "+id, names, err)
	}
	for _, id := range []string{"u1", "u3", "u4"} {
		feds, err := db.UserFederations(ctx, id)
		read("federations of "+id, feds, err)
	}
	fed, err := db.GetFederation(ctx, "company", "248289761001")
	read("federation", fed, err)
	for _, id := range []string{"u1", "u2", "u4"} {
		consents, err := db.ListConsents(ctx, id)
		read("consents of "+id, consents, err)
		fams, err := db.ListFamilies(ctx, id)
		read("families of "+id, fams, err)
		sessions, err := db.ListSessions(ctx, id)
		read("sessions of "+id, sessions, err)
	}
	for _, f := range []string{"f1", "f2", "f3", "f4", "f5"} {
		hashes, err := db.FamilyTokenHashes(ctx, f)
		read("token hashes of "+f, hashes, err)
	}
	sess, su, err := db.SessionByToken(ctx, "st1b")
	read("session by token", []any{sess, su}, err)
	for _, id := range []string{"req1", "req2"} {
		r, err := db.GetAuthRequest(ctx, id)
		read("authorization request "+id, r, err)
	}
	for _, h := range []string{"code1", "code2", "code3"} {
		stop := errors.New("read only")
		c, err := db.UpdateCode(ctx, h, func(c identity.AuthCode) (identity.AuthCode, error) { return c, stop })
		if !errors.Is(err, stop) {
			t.Fatalf("code %s: %v", h, err)
		}
		out["code "+h] = c
	}
	for _, id := range []string{"u1", "nobody"} {
		c, err := db.UpdateCodeFailures(ctx, id, func(c identity.ThrottleCounter) identity.ThrottleCounter { return c })
		read("code failures of "+id, c, err)
	}
	return out
}
