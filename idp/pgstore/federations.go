package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
)

var _ identity.FederationStore = (*DB)(nil)

const federationCols = `connector, subject, user_id, groups, created_at, checked_at`

func scanFederation(row pgx.Row) (identity.Federation, error) {
	var f identity.Federation
	var checked pgtype.Timestamptz
	err := row.Scan(&f.Connector, &f.Subject, &f.UserID, &f.Groups, &f.CreatedAt, &checked)
	f.CreatedAt, f.CheckedAt = f.CreatedAt.UTC(), fromNull(checked)
	return found(f, err, identity.ErrNoFederation)
}

// storedFederation is f (valid: its connector and subject are text PostgreSQL holds) as it is
// written and as every later read sees it: the groups a copy of their own (nil stays nil),
// times UTC to the microsecond.
func storedFederation(f identity.Federation) identity.Federation {
	f.Groups = texts(f.Groups)
	f.CreatedAt = ts(f.CreatedAt)
	if !f.CheckedAt.IsZero() {
		f.CheckedAt = ts(f.CheckedAt)
	}
	return f
}

// insertFederation stores f (stored) in tx: ErrFederationTaken, with nothing stored, when its
// (connector, subject) is linked already; ENOTFOUND when its user is gone.
func insertFederation(ctx context.Context, tx pgx.Tx, f identity.Federation) error {
	tag, err := tx.Exec(ctx, `INSERT INTO federations (`+federationCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (connector, subject) DO NOTHING`,
		f.Connector, f.Subject, f.UserID, f.Groups, f.CreatedAt, nullTime(f.CheckedAt))
	if pgdb.ForeignKeyViolation(err) {
		return errNoUser // deleted since it was read
	}
	if c, ok := pgdb.UniqueViolation(err); ok && c == "federations_user_idx" {
		return identity.ErrConnectorLinked
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return identity.ErrFederationTaken
	}
	return nil
}

// CreateFederation implements identity.FederationStore. The user's row is read FOR KEY SHARE,
// so a concurrent DeleteUser either committed before (ENOTFOUND) or waits for this link and
// then removes it with the user.
func (s *DB) CreateFederation(ctx context.Context, f identity.Federation) error {
	if err := f.Validate(); err != nil {
		return err
	}
	f = storedFederation(f)
	return s.writeFor(ctx, f.UserID, errNoUser, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM users WHERE id = $1 FOR KEY SHARE)`, f.UserID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return errNoUser
		}
		return insertFederation(ctx, tx, f)
	})
}

// CreateFederatedUser implements identity.FederationStore: CreateUser's statements, then the
// link's, in one transaction that any refusal rolls back.
func (s *DB) CreateFederatedUser(ctx context.Context, u identity.User, f identity.Federation) error {
	args, err := userArgs(u)
	if err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	if f.UserID != u.ID {
		return apperr.Errorf(apperr.EINVALID, "Federation: the link must be the new user's")
	}
	f = storedFederation(f)
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := createUser(ctx, tx, u, args); err != nil {
			return err
		}
		return insertFederation(ctx, tx, f)
	})
}

// GetFederation implements identity.FederationStore.
func (s *DB) GetFederation(ctx context.Context, connector, subject string) (identity.Federation, error) {
	connector, ok1 := key(connector)
	subject, ok2 := key(subject)
	if !ok1 || !ok2 {
		return identity.Federation{}, identity.ErrNoFederation
	}
	f, err := scanFederation(s.pool.QueryRow(ctx, `SELECT `+federationCols+` FROM federations
		WHERE connector = $1 AND subject = $2`, connector, subject))
	return f, s.fail(err)
}

// UserFederations implements identity.FederationStore, by the index on user_id.
func (s *DB) UserFederations(ctx context.Context, userID string) ([]identity.Federation, error) {
	return listFor(ctx, s, userID, scanFederation, `SELECT `+federationCols+` FROM federations
		WHERE user_id = $1 ORDER BY connector, subject`)
}

// UpdateFederation implements identity.FederationStore: the row is locked FOR UPDATE as it is
// read, so concurrent updaters queue.
func (s *DB) UpdateFederation(ctx context.Context, connector, subject string,
	change func(identity.Federation) (identity.Federation, error)) (identity.Federation, error) {
	connector, ok1 := key(connector)
	subject, ok2 := key(subject)
	if !ok1 || !ok2 {
		return identity.Federation{}, identity.ErrNoFederation
	}
	var out identity.Federation
	var refused error
	err := s.write(ctx, func(tx pgx.Tx) error {
		old, err := scanFederation(tx.QueryRow(ctx, `SELECT `+federationCols+` FROM federations
			WHERE connector = $1 AND subject = $2 FOR UPDATE`, connector, subject))
		if err != nil {
			return err
		}
		if out, refused = old.ApplyUpdate(change); refused != nil {
			return errNoChange
		}
		out = storedFederation(out)
		// CheckUpdate kept the key, the user and the creation time.
		_, err = tx.Exec(ctx, `UPDATE federations SET groups = $3, checked_at = $4 WHERE connector = $1 AND subject = $2`,
			connector, subject, out.Groups, nullTime(out.CheckedAt))
		return err
	})
	if err != nil {
		return identity.Federation{}, err
	}
	if refused != nil {
		return identity.Federation{}, refused
	}
	return out, nil
}

// ImportFederation stores f unless its (connector, subject) is linked (store copy). EINVALID
// when f breaks Federation.Validate or its user is not stored (import users first).
func (s *DB) ImportFederation(ctx context.Context, f identity.Federation) error {
	if err := f.Validate(); err != nil {
		return err
	}
	f = storedFederation(f)
	_, err := s.pool.Exec(ctx, `INSERT INTO federations (`+federationCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (connector, subject) DO NOTHING`, f.Connector, f.Subject, f.UserID, f.Groups, f.CreatedAt, nullTime(f.CheckedAt))
	if pgdb.ForeignKeyViolation(err) {
		return apperr.Errorf(apperr.EINVALID, "Federation %s of %s: the user is not stored", f.Connector, f.UserID)
	}
	return s.fail(err)
}
