package pgstore

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
)

var errNoFamily = apperr.Errorf(apperr.ENOTFOUND, "Refresh token not found")

// familyCols are the columns of a family, of the table aliased f.
const familyCols = `f.id, f.user_id, f.client_id, f.scope, f.audience, COALESCE(f.session_id, ''), f.epoch,
	f.created_at, f.expires_at, f.current_token, f.revoked, f.amr, f.idp,
	COALESCE(f.auth_time, '0001-01-01'::timestamptz)`

func familyDest(f *identity.Family) []any {
	return []any{&f.ID, &f.UserID, &f.ClientID, &f.Scope, &f.Audience, &f.SessionID, &f.Epoch,
		&f.CreatedAt, &f.ExpiresAt, &f.Current, &f.Revoked, &f.AMR, &f.IDP, &f.AuthTime}
}

func scanFamily(row pgx.Row, more ...any) (identity.Family, error) {
	var f identity.Family
	err := row.Scan(append(familyDest(&f), more...)...)
	f.CreatedAt, f.ExpiresAt, f.AuthTime = f.CreatedAt.UTC(), f.ExpiresAt.UTC(), f.AuthTime.UTC()
	return found(f, err, errNoFamily)
}

// storedFamily is f as it is written and as every later read sees it: its free text made
// storable, its times UTC to the microsecond, its audience and amr copies of their own.
func storedFamily(f identity.Family) identity.Family {
	f.ClientID, f.Scope, f.Audience, f.AMR, f.IDP = text(f.ClientID), text(f.Scope), texts(f.Audience), texts(f.AMR), text(f.IDP)
	f.CreatedAt, f.ExpiresAt = ts(f.CreatedAt), ts(f.ExpiresAt)
	if !f.AuthTime.IsZero() {
		f.AuthTime = ts(f.AuthTime)
	}
	return f
}

// familyArgs are the values of the columns of insertFamily, in its order.
func familyArgs(f identity.Family) []any {
	return []any{f.ID, f.UserID, f.ClientID, f.Scope, f.Audience, nullStr(f.SessionID), f.Epoch,
		f.CreatedAt, f.ExpiresAt, f.Current, f.Revoked, f.AMR, f.IDP, nullTime(f.AuthTime)}
}

const insertFamily = `INSERT INTO refresh_families
	(id, user_id, client_id, scope, audience, session_id, epoch, created_at, expires_at, current_token, revoked, amr, idp, auth_time)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`

// CreateFamily implements identity.FamilyStore. The user's row is locked FOR SHARE from the
// epoch check to the commit, so a credential change (which locks it FOR UPDATE) either
// committed before — and the check refuses — or starts after, and revokes this family.
func (s *DB) CreateFamily(ctx context.Context, f identity.Family) error {
	f = storedFamily(f)
	return s.createAtEpoch(ctx, f.Validate(), f.UserID, f.Epoch, "SHARE", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertFamily, familyArgs(f)...); err != nil {
			return conflict(err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family_id) VALUES ($1, $2)`, f.Current, f.ID)
		return conflict(err)
	})
}

// errKeep marks a transaction whose writes stand although step failed.
var errKeep = errors.New("keep the step's result")

// UpdateFamilyByToken implements identity.FamilyStore. Concurrent refreshes of one token have
// one winner: the first write moves Current on, and every later one finds the family changed,
// reads it again — locked FOR UPDATE, so they queue — sees its token spent and stores the
// revocation. The user is read without a lock (a credential change locks the user, then the
// families: reading the user under a family's lock must not wait for it); a credential change
// revokes or moves the user's families in its own transaction, so it changes the family under
// any refresh that read the user before it.
//
// A refresh is the hot path, so the common one — step spends the token and changes nothing
// else, with nothing to record — is two round trips and no lock held between them: the family
// is read without one, then the family's new token and its index are written, in one
// transaction with the concurrent refreshes' writes, only if the family's row is still the
// version read and not locked (refreshOptimistic, spendGroup). Anything else — a write that
// finds the family changed or locked, a revocation, events to record, a token hash indexed
// already — takes the locking path, one statement per round trip (updateFamilyByToken), where
// step runs again.
func (s *DB) UpdateFamilyByToken(ctx context.Context, tokenHash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, error) {
	f, _, err := s.updateFamily(ctx, tokenHash, false, step)
	return f, err
}

var _ identity.FamilyGroupsStore = (*DB)(nil)

// UpdateFamilyByTokenWithGroups implements identity.FamilyGroupsStore: the common refresh's
// read of the family and its owner reads the owner's groups too, so a refresh grant is two
// round trips in all rather than three. (That read always reads them, in the statement it
// shares with the concurrent refreshes' reads; UpdateFamilyByToken drops them.)
func (s *DB) UpdateFamilyByTokenWithGroups(ctx context.Context, tokenHash string, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, []string, error) {
	return s.updateFamily(ctx, tokenHash, true, step)
}

func (s *DB) updateFamily(ctx context.Context, tokenHash string, withGroups bool, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, []string, error) {
	tokenHash, ok := key(tokenHash)
	if !ok {
		return identity.Family{}, nil, errNoFamily
	}
	out, groups, stepErr, err := s.refreshOptimistic(ctx, tokenHash, withGroups, step)
	switch {
	case errors.Is(err, errLockedPath) || pgdb.Retryable(err):
		return s.updateFamilyByToken(ctx, tokenHash, withGroups, step)
	case err != nil:
		return identity.Family{}, nil, s.fail(err)
	}
	return out, groups, stepErr
}

// errLockedPath sends a refresh the optimistic path does not handle to the locking one.
var errLockedPath = errors.New("take the locking path")

// refreshOptimistic is UpdateFamilyByToken for the common refresh, in two round trips and no
// transaction around them: the family, its owner and the owner's groups are read without a lock
// (with the concurrent refreshes' reads, in one statement: readGroup), and when step's
// result spends the token and changes nothing else, and there is no event or mail to record,
// the spend group writes it with the concurrent refreshes' writes (one batch, one transaction)
// if the family's row is still the version read and no other transaction holds it locked: a
// compare-and-swap, so what step decided from holds at the write as under the locking path's
// lock. The owner is read unlocked on both paths: a credential change revokes (or moves) the
// user's families in its transaction, so it either changes the family's version before the
// write, which then misses, or revokes the family after it. errLockedPath for everything
// else, where step runs again; nothing is written then.
func (s *DB) refreshOptimistic(ctx context.Context, tokenHash string, withGroups bool, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, []string, error, error) {
	r, err := s.reads.do(ctx, tokenHash)
	if err == nil {
		err = r.err
	}
	if err != nil {
		return identity.Family{}, nil, nil, err
	}
	f, version, groups := r.family, r.version, r.groups
	if !withGroups {
		groups = nil
	}
	u, err := r.owner.user()
	if err != nil {
		return identity.Family{}, nil, nil, err
	}
	if u.ID == "" {
		u = identity.User{} // the owner is gone
	}
	out, keep, stepErr := f.ApplyStep(u, step)
	if !keep {
		return out, nil, stepErr, nil // nothing to keep
	}
	if stepErr != nil || !onlySpent(f, out) {
		return identity.Family{}, nil, nil, errLockedPath
	}
	// The events and mail of this run of step: empty, or the locking path runs step again and
	// reads its own.
	switch events, mails, err := recorded(ctx); {
	case err != nil:
		return identity.Family{}, nil, nil, err
	case len(events) > 0 || len(mails) > 0:
		return identity.Family{}, nil, nil, errLockedPath
	}
	out = storedFamily(out)
	moved, err := s.spends.do(ctx, f.ID, version, out.Current)
	switch _, dup := pgdb.UniqueViolation(err); {
	case dup:
		return identity.Family{}, nil, nil, errLockedPath // where the conflict is named
	case err != nil:
		return identity.Family{}, nil, nil, err
	case !moved:
		return identity.Family{}, nil, nil, errLockedPath // the family changed since it was read
	}
	return out, groups, nil, nil
}

// onlySpent reports whether next is f with a new Current and nothing else changed.
func onlySpent(f, next identity.Family) bool {
	if next.Current == f.Current {
		return false
	}
	f.Current = next.Current
	return reflect.DeepEqual(f, next)
}

// updateFamilyByToken is UpdateFamilyByToken one statement per round trip.
func (s *DB) updateFamilyByToken(ctx context.Context, tokenHash string, withGroups bool, step func(identity.Family, identity.User) (identity.Family, error)) (identity.Family, []string, error) {
	var out identity.Family
	var groups []string
	var stepErr error
	err := s.writeKeep(ctx, func(tx pgx.Tx) error {
		f, err := scanFamily(tx.QueryRow(ctx, `SELECT `+familyCols+`
			FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
			WHERE t.token_hash = $1 FOR UPDATE OF f`, tokenHash))
		if err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, f.UserID))
		if err != nil && !errors.Is(err, errNoUser) {
			return err
		}
		if withGroups {
			if groups, err = userGroups(ctx, tx, f.UserID); err != nil {
				return err
			}
		}
		var keep bool
		if out, keep, stepErr = f.ApplyStep(u, step); !keep {
			return errNoChange // nothing to keep, nothing to record
		}
		out = storedFamily(out)
		if out.Current != f.Current {
			if err := indexToken(ctx, tx, out.Current, f.ID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE refresh_families SET client_id = $3, scope = $4, audience = $5, session_id = $6,
			epoch = $7, created_at = $8, expires_at = $9, current_token = $10, revoked = $11, amr = $12, idp = $13, auth_time = $14
			WHERE id = $1 AND user_id = $2`, familyArgs(out)...)
		if err == nil && stepErr != nil {
			return errKeep
		}
		return err
	}, func(err error) bool { return err == errKeep })
	if err != nil && err != errKeep {
		return identity.Family{}, nil, err
	}
	return out, groups, stepErr
}

// indexToken records that the family issued tokenHash. ECONFLICT when another family did.
func indexToken(ctx context.Context, tx pgx.Tx, tokenHash, familyID string) error {
	tag, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family_id) VALUES ($1, $2) ON CONFLICT (token_hash) DO NOTHING`,
		tokenHash, familyID)
	if err != nil || tag.RowsAffected() == 1 {
		return err
	}
	var owner string
	if err := tx.QueryRow(ctx, `SELECT family_id FROM refresh_tokens WHERE token_hash = $1`, tokenHash).Scan(&owner); err != nil {
		return err
	}
	if owner != familyID {
		return apperr.Errorf(apperr.ECONFLICT, "Refresh token already issued")
	}
	return nil // a token this family issued before
}

// ListFamilies implements identity.FamilyStore.
func (s *DB) ListFamilies(ctx context.Context, userID string) ([]identity.Family, error) {
	return listFor(ctx, s, userID, func(r pgx.Row) (identity.Family, error) { return scanFamily(r) },
		`SELECT `+familyCols+` FROM refresh_families f WHERE f.user_id = $1 ORDER BY f.created_at, f.id`)
}

// RevokeUserFamilies implements identity.FamilyStore: one statement, one transaction.
func (s *DB) RevokeUserFamilies(ctx context.Context, userID string) error {
	// In a transaction of its own, so that a deadlock with a refresh or a session's end (which
	// lock the rows in another order) is retried rather than answered 500.
	return s.writeFor(ctx, userID, nil, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE refresh_families SET revoked = true WHERE user_id = $1 AND NOT revoked`, userID)
		return err
	})
}

// gcBatch bounds the rows one garbage-collection statement removes, so a long backlog never
// runs into the statement timeout or holds many locks at once.
const gcBatch = 1000

// DeleteDeadFamilies implements identity.FamilyStore: batches of dead families go with their
// token hashes (ON DELETE CASCADE). A family locked by a refresh or revocation in flight is
// skipped, for the next run: replicas collecting at once neither wait for each other nor for
// requests.
func (s *DB) DeleteDeadFamilies(ctx context.Context, now time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM refresh_families WHERE id IN (
		SELECT id FROM refresh_families WHERE revoked OR expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now)
}

// collect runs a garbage-collecting DELETE of at most gcBatch rows until it removes fewer.
func (s *DB) collect(ctx context.Context, del string, now time.Time) (int, error) {
	n := 0
	for {
		tag, err := s.pool.Exec(ctx, del, now, gcBatch)
		if err != nil {
			return n, s.fail(err)
		}
		n += int(tag.RowsAffected())
		if tag.RowsAffected() < gcBatch {
			return n, nil
		}
	}
}
