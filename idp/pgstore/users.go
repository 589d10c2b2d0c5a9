package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var (
	errNoUser        = apperr.Errorf(apperr.ENOTFOUND, "User not found")
	errNoReservation = apperr.Errorf(apperr.ENOTFOUND, "No deleted user's username is reserved under that name")
)

const userCols = `id, username, password_hash, created_at, epoch, email, email_verified, second_factors, disabled, admin,
	last_login_at`

// userColsOf is userCols of the table aliased a.
func userColsOf(a string) string {
	return a + ".id, " + a + ".username, " + a + ".password_hash, " + a + ".created_at, " + a + ".epoch, " +
		a + ".email, " + a + ".email_verified, " + a + ".second_factors, " + a + ".disabled, " + a + ".admin, " +
		a + ".last_login_at"
}

// userRow is the destination of a scan of userCols: the user, and its second factors as the
// JSON the column holds.
type userRow struct {
	u         identity.User
	factors   []byte
	lastLogin pgtype.Timestamptz // NULL: never
}

func (r *userRow) dest() []any {
	u := &r.u
	return []any{&u.ID, &u.Username, &u.PasswordHash, &u.CreatedAt, &u.Epoch, &u.Email, &u.EmailVerified, &r.factors,
		&u.Disabled, &u.Admin, &r.lastLogin}
}

// user is the user scanned, its times in UTC.
func (r *userRow) user() (identity.User, error) {
	u := r.u
	u.CreatedAt, u.LastLoginAt = u.CreatedAt.UTC(), fromNull(r.lastLogin)
	f, err := decodeFactors(r.factors)
	if err != nil {
		return identity.User{}, fmt.Errorf("read user %s: second factors: %w", u.ID, err)
	}
	u.Factors = f
	return u, nil
}

// factorsRecord is identity.SecondFactors as users.second_factors holds it. The domain's JSON
// drops an empty list of recovery codes (omitempty), which would read back as nil; this field,
// which hides the embedded one, keeps nil and empty apart as every other list in the store is
// kept. Fields added to SecondFactors later are stored through the embedding.
type factorsRecord struct {
	identity.SecondFactors
	RecoveryCodes []string
}

// encodeFactors is f, as storedFactors makes it, in the JSON of users.second_factors.
func encodeFactors(f identity.SecondFactors) (string, error) {
	data, err := json.Marshal(factorsRecord{SecondFactors: f, RecoveryCodes: f.RecoveryCodes})
	return string(data), err
}

func decodeFactors(data []byte) (identity.SecondFactors, error) {
	var r factorsRecord
	if len(data) == 0 {
		return identity.SecondFactors{}, nil
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return identity.SecondFactors{}, err
	}
	f := r.SecondFactors
	f.RecoveryCodes = r.RecoveryCodes
	if f.TOTP != nil {
		f.TOTP.EnrolledAt = f.TOTP.EnrolledAt.UTC()
	}
	return f, nil
}

// storedFactors is f as it is written and as every later read sees it: its recovery codes
// storable text (jsonb holds no NUL), its enrolment time UTC to the microsecond, and copies of
// its own.
func storedFactors(f identity.SecondFactors) identity.SecondFactors {
	if f.TOTP != nil {
		t := *f.TOTP
		t.Secret = slices.Clone(t.Secret)
		t.EnrolledAt = ts(t.EnrolledAt)
		f.TOTP = &t
	}
	f.RecoveryCodes = texts(f.RecoveryCodes)
	return f
}

// insertUser stores a user: the values of userArgs, in its order.
const insertUser = `INSERT INTO users (` + userCols + `, username_normalized) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// userArgs are the values of insertUser's columns, of a u that passes User.Validate (else
// EINVALID). The email is stored as given; the unique index on lower(email) compares it as
// identity.NormalizeEmail does (emails are ASCII).
func userArgs(u identity.User) ([]any, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	factors, err := encodeFactors(storedFactors(u.Factors))
	if err != nil {
		return nil, err
	}
	return []any{u.ID, u.Username, text(u.PasswordHash), u.CreatedAt, u.Epoch, u.Email, u.EmailVerified, factors,
		u.Disabled, u.Admin, nullTime(u.LastLoginAt), identity.NormalizeUsername(u.Username)}, nil
}

func scanUser(row pgx.Row) (identity.User, error) {
	var r userRow
	if err := row.Scan(r.dest()...); err != nil {
		return identity.User{}, noRow(err, errNoUser)
	}
	return r.user()
}

// stored is u as every later read sees it.
func storedUser(u identity.User) identity.User {
	u.CreatedAt, u.LastLoginAt = ts(u.CreatedAt), ts(u.LastLoginAt)
	u.Factors = storedFactors(u.Factors)
	return u
}

// CreateUser implements identity.UserStore.
func (s *DB) CreateUser(ctx context.Context, u identity.User) error {
	args, err := userArgs(u)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error { return createUser(ctx, tx, u, args) })
}

// createUser inserts u (args: userArgs(u)) in tx and refuses an id no user may have again and
// names a deleted user left reserved: CreateUser's transaction, and CreateFederatedUser's first
// half.
func createUser(ctx context.Context, tx pgx.Tx, u identity.User, args []any) error {
	if _, err := tx.Exec(ctx, insertUser, args...); err != nil {
		return conflict(err)
	}
	// Checked after the insert: an insert of the id of a user being deleted waits for the
	// delete to commit, and this read then sees the delete's tombstone.
	var deleted bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM deleted_users WHERE id = $1)`, u.ID).Scan(&deleted); err != nil {
		return err
	}
	if deleted {
		return identity.ErrUserIDTaken
	}
	// So is a reserved name or email: a delete that freed the row is committed by now.
	return checkReserved(ctx, tx, u.Names())
}

// checkReserved refuses, in tx, a username or an email (normalized, "" for none) a deleted
// user left reserved: ErrUsernameTaken, ErrEmailTaken.
func checkReserved(ctx context.Context, tx pgx.Tx, names identity.UniqueNames) error {
	var name, mail bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM reserved_names WHERE username_normalized = $1),
		$2 <> '' AND EXISTS (SELECT FROM reserved_names WHERE email <> '' AND lower(email) = lower($2))`,
		text(names.Username), text(names.Email)).Scan(&name, &mail); err != nil {
		return err
	}
	switch {
	case name:
		return identity.ErrUsernameTaken
	case mail:
		return identity.ErrEmailTaken
	}
	return nil
}

// GetUser implements identity.UserStore.
func (s *DB) GetUser(ctx context.Context, id string) (identity.User, error) {
	return getRow(ctx, s, id, errNoUser, scanUser, `SELECT `+userCols+` FROM users WHERE id = $1`)
}

// GetUserByName implements identity.UserStore.
func (s *DB) GetUserByName(ctx context.Context, username string) (identity.User, error) {
	return getRow(ctx, s, identity.NormalizeUsername(username), errNoUser, scanUser,
		`SELECT `+userCols+` FROM users WHERE username_normalized = $1`)
}

// GetUserByEmail implements identity.UserStore through the unique index on lower(email).
func (s *DB) GetUserByEmail(ctx context.Context, email string) (identity.User, error) {
	if email == "" {
		return identity.User{}, errNoUser
	}
	return getRow(ctx, s, identity.NormalizeEmail(email), errNoUser, scanUser,
		`SELECT `+userCols+` FROM users WHERE lower(email) = $1 AND email <> ''`)
}

// ListUsers implements identity.UserStore: a walk of the unique index on the normalized
// username, which is COLLATE "C", so the order is the bytes' (the bbolt store's).
func (s *DB) ListUsers(ctx context.Context, opt identity.ListOptions) ([]identity.User, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	like, after, ok := pageArgs(opt)
	if !ok {
		return []identity.User{}, nil // no username holds what PostgreSQL cannot
	}
	return list(ctx, s, scanUser, `SELECT `+userCols+` FROM users
		WHERE username_normalized LIKE $1 AND username_normalized > $2
		ORDER BY username_normalized COLLATE "C" LIMIT $3`, like, after, opt.Limit)
}

// pageArgs are the LIKE pattern of opt's Prefix and the key its page starts after, both
// normalized as usernames are, for a walk of a COLLATE "C" key; not ok when the prefix cannot
// be a key (nothing starts with it).
func pageArgs(opt identity.ListOptions) (like, after string, ok bool) {
	prefix, ok := key(identity.NormalizeUsername(opt.Prefix))
	if !ok {
		return "", "", false
	}
	after = identity.NormalizeUsername(opt.After)
	if i := strings.IndexByte(after, 0); i >= 0 {
		// Keys hold no NUL, so those after "x\x00…" are those after "x".
		after = after[:i]
	}
	return likePrefix(prefix), after, true
}

// likePrefix is the LIKE pattern of the strings that start with p: its wildcards escaped (a
// username may hold '_'), so the index on a COLLATE "C" column bounds the scan.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// UpdateUser implements identity.UserStore.
func (s *DB) UpdateUser(ctx context.Context, id string, fn func(identity.User) (identity.User, error)) (identity.User, error) {
	var out identity.User
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = updateUser(ctx, tx, id, fn, identity.Apply)
		return err
	})
	if err != nil {
		return identity.User{}, err
	}
	return out, nil
}

// ChangeCredentials implements identity.UserStore. The user's row stays locked from the read
// to the commit, so a session or family made for the old epoch either committed before (and
// is ended here) or waits and sees the new epoch (and is refused).
func (s *DB) ChangeCredentials(ctx context.Context, id string, fn func(identity.User) (identity.User, error), keep ...string) (identity.User, error) {
	var out identity.User
	keep = slices.DeleteFunc(slices.Clone(keep), func(k string) bool { return k == "" })
	if keep == nil {
		keep = []string{}
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		if out, err = updateUser(ctx, tx, id, fn, identity.ApplyCredentials); err != nil {
			return err
		}
		// What keep names (a session, a family, or a family bound to a kept session) moves to
		// the new epoch; everything else ends.
		if _, err := tx.Exec(ctx, `UPDATE refresh_families SET
			revoked = NOT (id = ANY($2) OR COALESCE(session_id, '') = ANY($2)),
			epoch = CASE WHEN id = ANY($2) OR COALESCE(session_id, '') = ANY($2) THEN $3 ELSE epoch END
			WHERE user_id = $1 AND NOT revoked`, out.ID, keep, out.Epoch); err != nil {
			return err
		}
		if err = endSessions(ctx, tx, `DELETE FROM sessions WHERE user_id = $1 AND NOT (id = ANY($2))`, out.ID, keep); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sessions SET epoch = $3 WHERE user_id = $1 AND id = ANY($2)`, out.ID, keep, out.Epoch)
		return err
	})
	if err != nil {
		return identity.User{}, err
	}
	return out, nil
}

// updateUser locks the stored user and stores what apply (identity.Apply or
// identity.ApplyCredentials) makes of fn's result.
func updateUser(ctx context.Context, tx pgx.Tx, id string, fn func(identity.User) (identity.User, error),
	apply func(identity.User, func(identity.User) (identity.User, error)) (identity.User, error)) (identity.User, error) {
	id, ok := key(id)
	if !ok {
		return identity.User{}, errNoUser
	}
	old, err := scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return old, err
	}
	u, err := apply(old, fn)
	if err != nil {
		return u, err
	}
	u.PasswordHash = text(u.PasswordHash)
	u = storedUser(u)
	factors, err := encodeFactors(u.Factors)
	if err != nil {
		return u, err
	}
	_, err = tx.Exec(ctx, `UPDATE users SET username = $2, username_normalized = $3, password_hash = $4, created_at = $5, epoch = $6,
		email = $7, email_verified = $8, second_factors = $9, disabled = $10, admin = $11, last_login_at = $12
		WHERE id = $1`, id, u.Username, identity.NormalizeUsername(u.Username), u.PasswordHash, u.CreatedAt, u.Epoch, u.Email, u.EmailVerified,
		factors, u.Disabled, u.Admin, nullTime(u.LastLoginAt))
	if err != nil {
		return u, conflict(err)
	}
	// The unique indexes refused another user's names; a reservation's are refused here.
	if claimed, _ := identity.Claims(old, u); claimed != (identity.UniqueNames{}) {
		return u, checkReserved(ctx, tx, claimed)
	}
	return u, nil
}

// DeleteUser implements identity.UserStore: the user's families (with their token hashes),
// sessions, consents, memberships and federations go with the row, by ON DELETE CASCADE, in the one statement; the
// authorization codes (not foreign keys) are deleted, and the id kept in deleted_users so that
// CreateUser refuses it for ever, in the same transaction.
func (s *DB) DeleteUser(ctx context.Context, id string) error {
	// In a transaction of its own, retried on a deadlock with a refresh or a session's end:
	// the cascade locks the user's families and sessions in another order than they do.
	return s.writeFor(ctx, id, errNoUser, func(tx pgx.Tx) error {
		// The user's row locked first (as the DELETE would), so no session is made meanwhile:
		// the sessions read here are those the cascade ends, and their clients are told.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		if err := tellClients(ctx, tx, `SELECT id, user_id, clients FROM sessions WHERE user_id = $1`, id); err != nil {
			return err
		}
		var username, email string
		if err := tx.QueryRow(ctx, `DELETE FROM users WHERE id = $1 RETURNING username, email`, id).Scan(&username, &email); err != nil {
			return noRow(err, errNoUser)
		}
		// The id is never reused: CreateUser refuses it.
		if _, err := tx.Exec(ctx, `INSERT INTO deleted_users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, id); err != nil {
			return err
		}
		// The username and email stay reserved until ReleaseUsername.
		if _, err := tx.Exec(ctx, `INSERT INTO reserved_names (username_normalized, username, user_id, email) VALUES ($1, $2, $3, $4)
			ON CONFLICT (username_normalized) DO UPDATE SET username = excluded.username, user_id = excluded.user_id, email = excluded.email`,
			identity.NormalizeUsername(username), username, id, email); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM auth_codes WHERE user_id = $1`, id)
		return err
	})
}

// ReleaseUsername implements identity.UserStore.
func (s *DB) ReleaseUsername(ctx context.Context, username string) (identity.ReservedName, error) {
	var r identity.ReservedName
	name, ok := key(identity.NormalizeUsername(username))
	if !ok {
		return r, errNoReservation
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `DELETE FROM reserved_names WHERE username_normalized = $1 RETURNING username, user_id, email`,
			name).Scan(&r.Username, &r.UserID, &r.Email)
		return noRow(err, errNoReservation)
	})
	if err != nil {
		return identity.ReservedName{}, err
	}
	return r, nil
}

// createAtEpoch runs create, which makes a session or a family of the user userID for
// credentials of epoch, in a write, but only if the entity is valid (valid is nil) and the
// user still has those credentials (identity.CheckEpoch). The user's row is locked with the
// given strength from the check to the commit, against a concurrent credential change or
// delete.
func (s *DB) createAtEpoch(ctx context.Context, valid error, userID string, epoch int64, strength string, create func(pgx.Tx) error) error {
	if valid != nil {
		return valid
	}
	if _, ok := key(userID); !ok {
		return identity.ErrStaleCredentials
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var u identity.User
		err := tx.QueryRow(ctx, `SELECT id, epoch FROM users WHERE id = $1 FOR `+strength, userID).Scan(&u.ID, &u.Epoch)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := identity.CheckEpoch(u, userID, epoch); err != nil {
			return err
		}
		return create(tx)
	})
}
