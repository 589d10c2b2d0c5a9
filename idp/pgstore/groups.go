package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"jwtidp/idp/identity"
	"jwtidp/shared/pgdb"
)

func scanGroup(row pgx.Row) (identity.Group, error) {
	var g identity.Group
	err := row.Scan(&g.Name, &g.CreatedAt)
	g.CreatedAt = g.CreatedAt.UTC()
	return found(g, err, identity.ErrNoGroup)
}

// CreateGroup implements identity.GroupStore.
func (s *DB) CreateGroup(ctx context.Context, g identity.Group) error {
	if err := g.Validate(); err != nil {
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO groups (name, created_at) VALUES ($1, $2)`, g.Name, g.CreatedAt)
	if _, ok := pgdb.UniqueViolation(err); ok {
		return identity.ErrGroupTaken
	}
	return s.fail(err)
}

// GetGroup implements identity.GroupStore.
func (s *DB) GetGroup(ctx context.Context, name string) (identity.Group, error) {
	return getRow(ctx, s, name, identity.ErrNoGroup, scanGroup, `SELECT name, created_at FROM groups WHERE name = $1`)
}

// ListGroups implements identity.GroupStore: names are COLLATE "C", so the order is the bytes'
// (the bbolt store's).
func (s *DB) ListGroups(ctx context.Context, opt identity.ListOptions) ([]identity.Group, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	like, after, ok := pageArgs(opt)
	if !ok {
		return []identity.Group{}, nil
	}
	return list(ctx, s, scanGroup, `SELECT name, created_at FROM groups WHERE name LIKE $1 AND name > $2
		ORDER BY name LIMIT $3`, like, after, opt.Limit)
}

// DeleteGroup implements identity.GroupStore: the memberships go with the row, by ON DELETE
// CASCADE, in the one statement.
func (s *DB) DeleteGroup(ctx context.Context, name string) error {
	if _, ok := key(name); !ok {
		return identity.ErrNoGroup
	}
	tag, err := s.exec(ctx, `DELETE FROM groups WHERE name = $1`, name)
	if err != nil {
		return s.fail(err)
	}
	if tag.RowsAffected() == 0 {
		return identity.ErrNoGroup
	}
	return nil
}

// AddMember implements identity.GroupStore: one statement, whose foreign-key checks find the
// group and the user and lock their rows (FOR KEY SHARE) until it commits, so a concurrent
// DeleteGroup or DeleteUser either went first — and the membership is refused — or waits and
// deletes it.
func (s *DB) AddMember(ctx context.Context, group, userID string) error {
	if _, ok := key(group); !ok {
		return identity.ErrNoGroup
	}
	if _, ok := key(userID); !ok {
		return errNoUser
	}
	_, err := s.exec(ctx, `INSERT INTO group_members (group_name, user_id) VALUES ($1, $2)`, group, userID)
	if _, ok := pgdb.UniqueViolation(err); ok {
		return identity.ErrAlreadyMember
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // a foreign key's refusal: which one is gone?
		if pe.ConstraintName == "group_members_group_name_fkey" {
			return identity.ErrNoGroup
		}
		return errNoUser
	}
	return s.fail(err)
}

// RemoveMember implements identity.GroupStore.
func (s *DB) RemoveMember(ctx context.Context, group, userID string) error {
	if _, ok := key(group); !ok {
		return identity.ErrNoGroup
	}
	userID, ok := key(userID)
	if !ok {
		userID = "" // no member holds what PostgreSQL cannot
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var gone, exists bool
		// Both in one statement, so the answer is about one moment.
		err := tx.QueryRow(ctx, `WITH d AS (DELETE FROM group_members WHERE group_name = $1 AND user_id = $2 AND $3 RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM d), EXISTS (SELECT 1 FROM groups WHERE name = $1)`, group, userID, ok).Scan(&gone, &exists)
		switch {
		case err != nil:
			return err
		case gone:
			return nil
		case !exists:
			return identity.ErrNoGroup
		}
		return identity.ErrNotMember
	})
}

// UserGroups implements identity.GroupStore.
func (s *DB) UserGroups(ctx context.Context, userID string) ([]string, error) {
	return listFor(ctx, s, userID, func(row pgx.Row) (string, error) {
		var name string
		return name, row.Scan(&name)
	}, userGroupsSQL)
}

const userGroupsSQL = `SELECT group_name FROM group_members WHERE user_id = $1 ORDER BY group_name`

// userGroups is UserGroups in the transaction tx.
func userGroups(ctx context.Context, tx pgx.Tx, userID string) ([]string, error) {
	rows, _ := tx.Query(ctx, userGroupsSQL, userID)
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
