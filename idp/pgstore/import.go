package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
)

// The Import methods are for `idp store copy`: they store an entity as another store holds
// it, without the rules that govern making one (a family or session of an older credential
// epoch is copied as it is; no session bound ends another). Each only adds: a row that is
// there already is kept as the target has it, so re-running a copy — even after replicas have
// served from the target, changed passwords, revoked families, ended sessions — can never
// undo any of that (and a target a replica has served from, and so sent mail from, is never
// copied into). Keys are copied with UpdateKeys. Authorization codes and requests are not
// copied: they live a minute and half an hour, and the browser that holds one starts again.

// ImportUser stores u, its email and whether that is verified included, unless a user with
// its id is stored. EINVALID when u breaks User.Validate; ECONFLICT when another user has its
// username, ErrEmailTaken (ECONFLICT) when another has its email.
func (s *DB) ImportUser(ctx context.Context, u identity.User) error {
	args, err := userArgs(u)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, insertUser+` ON CONFLICT (id) DO NOTHING`, args...)
	return s.fail(conflict(err))
}

// ImportFamily stores f unless a family with its id is stored, and indexes every token hash
// it issued that is not indexed yet (hashes; f.Current is indexed whether listed or not). EINVALID when f breaks
// Family.Validate or its user is not stored (import users first); ECONFLICT when another
// family issued one of the hashes.
func (s *DB) ImportFamily(ctx context.Context, f identity.Family, hashes []string) error {
	if err := f.Validate(); err != nil {
		return err
	}
	f = storedFamily(f)
	all := append([]string{f.Current}, hashes...)
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, insertFamily+` ON CONFLICT (id) DO NOTHING`, familyArgs(f)...)
		if pgdb.ForeignKeyViolation(err) {
			return apperr.Errorf(apperr.EINVALID, "Refresh family %s: its user %s is not stored", f.ID, f.UserID)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family_id) SELECT DISTINCT h, $2::text FROM unnest($1::text[]) h
			ON CONFLICT (token_hash) DO NOTHING`, all, f.ID); err != nil {
			return err
		}
		var taken int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens WHERE token_hash = ANY($1) AND family_id <> $2`,
			all, f.ID).Scan(&taken); err != nil {
			return err
		}
		if taken > 0 {
			return apperr.Errorf(apperr.ECONFLICT, "Refresh family %s: %d of its tokens were issued by another family", f.ID, taken)
		}
		return nil
	})
}

// ImportSession stores sess unless a session with its id is stored. EINVALID when sess breaks
// Session.Validate or its user is not stored; ECONFLICT when another session has its token
// hash.
func (s *DB) ImportSession(ctx context.Context, sess identity.Session) error {
	if err := sess.Validate(); err != nil {
		return err
	}
	sess = storedSession(sess)
	_, err := s.pool.Exec(ctx, insertSession+` ON CONFLICT (id) DO NOTHING`, sessionArgs(sess)...)
	if pgdb.ForeignKeyViolation(err) {
		return apperr.Errorf(apperr.EINVALID, "Session %s: its user %s is not stored", sess.ID, sess.UserID)
	}
	return s.fail(conflict(err))
}

// ImportSecret stores the secret name unless it is stored: the copy's processes then sign and
// check cookies with the source's key. EINVALID when value is empty; ECONFLICT when the target
// holds another value under that name (an IdP made its own there: processes already running
// on the target would disagree with those started after an overwrite).
func (s *DB) ImportSecret(ctx context.Context, name string, value []byte) error {
	if len(value) == 0 {
		return apperr.Errorf(apperr.EINVALID, "Secret %s: nothing to store", name)
	}
	var same bool
	err := s.pool.QueryRow(ctx, `WITH ins AS (INSERT INTO secrets (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING RETURNING true)
		SELECT EXISTS (SELECT FROM ins) OR (SELECT value = $2 FROM secrets WHERE name = $1)`, name, value).Scan(&same)
	if err != nil {
		return s.fail(err)
	}
	if !same {
		return apperr.Errorf(apperr.ECONFLICT, "Secret %s: the target holds another value", name)
	}
	return nil
}

// Empty reports whether the store holds nothing at all: no user, key, family, session,
// secret, client, deleted user's id, audit event or queued mail. A copy refuses a target that
// is not, unless told.
func (s *DB) Empty(ctx context.Context) (bool, error) {
	var empty bool
	err := s.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM users) AND NOT EXISTS (SELECT FROM signing_keys)
		AND NOT EXISTS (SELECT FROM refresh_families) AND NOT EXISTS (SELECT FROM sessions)
		AND NOT EXISTS (SELECT FROM secrets) AND NOT EXISTS (SELECT FROM oauth_clients)
		AND NOT EXISTS (SELECT FROM deleted_users) AND NOT EXISTS (SELECT FROM audit_events)
		AND NOT EXISTS (SELECT FROM mail_outbox)`).Scan(&empty)
	return empty, s.fail(err)
}

// ImportClient stores c unless a client with its id is stored (store copy). EINVALID when c
// breaks Client.Validate.
func (s *DB) ImportClient(ctx context.Context, c identity.Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, insertClient+` ON CONFLICT (id) DO NOTHING`, clientArgs(storedClient(c))...)
	return s.fail(err)
}

// ImportConsent stores c unless the user has a consent for the client stored (store copy).
// EINVALID when c breaks Consent.Validate or its user or client is not stored (import users
// and clients first).
func (s *DB) ImportConsent(ctx context.Context, c identity.Consent) error {
	if err := c.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO consents (`+consentCols+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, client_id) DO NOTHING`, c.UserID, c.ClientID, texts(c.Scopes), c.GrantedAt)
	if pgdb.ForeignKeyViolation(err) {
		return apperr.Errorf(apperr.EINVALID, "Consent of %s for %s: the user or the client is not stored", c.UserID, c.ClientID)
	}
	return s.fail(err)
}

// ImportGroup stores g unless a group with its name is stored (store copy). EINVALID when g
// breaks Group.Validate.
func (s *DB) ImportGroup(ctx context.Context, g identity.Group) error {
	if err := g.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, g.Name, g.CreatedAt)
	return s.fail(err)
}

// ImportMember makes the user a member of the group unless they are one (store copy).
// EINVALID when the group or the user is not stored (import them first).
func (s *DB) ImportMember(ctx context.Context, group, userID string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO group_members (group_name, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		text(group), text(userID))
	if pgdb.ForeignKeyViolation(err) {
		return apperr.Errorf(apperr.EINVALID, "Membership of %s in %s: the group or the user is not stored", userID, group)
	}
	return s.fail(err)
}
