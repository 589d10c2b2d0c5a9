package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var _ identity.LinkStore = (*DB)(nil)

var errNoLink = apperr.Errorf(apperr.ENOTFOUND, "Link not found")

const linkCols = `id, hash, kind, user_id, email, groups, epoch, created_at, expires_at, used_at`

func scanLink(row pgx.Row) (identity.Link, error) {
	var l identity.Link
	var used pgtype.Timestamptz
	err := row.Scan(&l.ID, &l.Hash, &l.Kind, &l.UserID, &l.Email, &l.Groups, &l.Epoch, &l.CreatedAt, &l.ExpiresAt, &used)
	l.CreatedAt, l.ExpiresAt, l.UsedAt = l.CreatedAt.UTC(), l.ExpiresAt.UTC(), fromNull(used)
	if len(l.Groups) == 0 {
		l.Groups = nil // '{}' is no groups, as storedLink writes none
	}
	return found(l, err, errNoLink)
}

// storedLink is l as it is written and as every later read sees it: text made storable, the
// groups a list of their own (an empty list reads back as none), times UTC to the microsecond.
func storedLink(l identity.Link) identity.Link {
	l.Email = text(l.Email)
	l.Groups = texts(l.Groups)
	if len(l.Groups) == 0 {
		l.Groups = nil
	}
	l.CreatedAt, l.ExpiresAt = ts(l.CreatedAt), ts(l.ExpiresAt)
	if !l.UsedAt.IsZero() {
		l.UsedAt = ts(l.UsedAt)
	}
	return l
}

// CreateLink implements identity.LinkStore.
func (s *DB) CreateLink(ctx context.Context, l identity.Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	l = storedLink(l)
	groups := l.Groups
	if groups == nil {
		groups = []string{}
	}
	_, err := s.exec(ctx, `INSERT INTO links (`+linkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		l.ID, l.Hash, string(l.Kind), l.UserID, l.Email, groups, l.Epoch, l.CreatedAt, l.ExpiresAt, nullTime(l.UsedAt))
	return s.fail(conflict(err))
}

// UseLink implements identity.LinkStore: the row is locked FOR UPDATE as it is read, so of two
// uses of one link the second waits, and sees the first.
func (s *DB) UseLink(ctx context.Context, hash string, fn func(identity.Link) (identity.Link, error)) (identity.Link, error) {
	return updateRow(ctx, s, hash, errNoLink, `SELECT `+linkCols+` FROM links WHERE hash = $1 FOR UPDATE`, scanLink,
		func(old identity.Link) (identity.Link, bool, error) { return kept(old.ApplyUpdate(fn)) },
		func(tx pgx.Tx, l identity.Link) (identity.Link, error) {
			l = storedLink(l)
			// CheckUpdate allowed nothing else to change.
			_, err := tx.Exec(ctx, `UPDATE links SET used_at = $2 WHERE id = $1`, l.ID, nullTime(l.UsedAt))
			return l, err
		})
}

// ListLinks implements identity.LinkStore.
func (s *DB) ListLinks(ctx context.Context, kind identity.LinkKind) ([]identity.Link, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+linkCols+` FROM links WHERE kind = $1 ORDER BY created_at, id`, string(kind))
	if err != nil {
		return nil, s.fail(err)
	}
	out := []identity.Link{}
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			rows.Close()
			return nil, s.fail(err)
		}
		out = append(out, l)
	}
	return out, s.fail(rows.Err())
}

// DeleteLink implements identity.LinkStore.
func (s *DB) DeleteLink(ctx context.Context, id string) error {
	if _, ok := key(id); !ok {
		return errNoLink
	}
	tag, err := s.exec(ctx, `DELETE FROM links WHERE id = $1`, id)
	if err != nil {
		return s.fail(err)
	}
	if tag.RowsAffected() == 0 {
		return errNoLink
	}
	return nil
}

// DeleteDeadLinks implements identity.LinkStore, in batches as DeleteDeadCodes.
func (s *DB) DeleteDeadLinks(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM links WHERE id IN (
		SELECT id FROM links WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, before)
}
