package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/pgdb"
)

// errNoChange is what a write's fn returns when it wrote nothing and must record nothing (a
// step that keeps nothing): the write returns nil without the context's audit events, and the
// method reports the refusal itself.
var errNoChange = errors.New("nothing written")

// write is every write method's transaction (s.tx): fn makes the change, then the audit events
// and the mail ctx carries (identity.AuditEventsOf and identity.MailOf, called once fn has run)
// are written in the same transaction, so the change, its record and the mail it causes commit
// together or not at all. When fn fails nothing is written, the events and mail neither; when
// AuditEventsOf or MailOf fails, or a message's id is taken, the write fails. A retried
// transaction runs fn, then asks for the events and mail, again.
func (s *DB) write(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.writeKeep(ctx, fn, nil)
}

// writeKeep is write over pgdb.InTxKeep: an error of fn that keep is true for commits what fn
// wrote, and the events with it, then is returned (a family revoked on reuse).
func (s *DB) writeKeep(ctx context.Context, fn func(pgx.Tx) error, keep func(error) bool) error {
	err := pgdb.InTxKeep(ctx, s.pool, pgx.ReadCommitted, func(tx pgx.Tx) error {
		ferr := fn(tx)
		if ferr != nil && (keep == nil || !keep(ferr)) {
			return ferr
		}
		events, err := identity.AuditEventsOf(ctx)
		if err != nil {
			return err
		}
		mails, err := identity.MailOf(ctx)
		if err != nil {
			return err
		}
		if err := record(ctx, tx, events, mails); err != nil {
			return err
		}
		return ferr
	}, keep)
	if errors.Is(err, errNoChange) {
		return nil
	}
	return s.fail(err)
}

// exec runs one statement that makes a change without an updater, with the audit events and
// the mail ctx carries: alone (one round trip) when there are none, else in a transaction with
// them. The error is the statement's, unmapped, for the caller to name a conflict.
func (s *DB) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	// No updater runs before the statement, so the events and mail are what they will be after it.
	events, mails, err := recorded(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if len(events) == 0 && len(mails) == 0 {
		return s.pool.Exec(ctx, sql, args...)
	}
	var tag pgconn.CommandTag
	err = pgdb.InTx(ctx, s.pool, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var err error
		if tag, err = tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
		return record(ctx, tx, events, mails)
	})
	return tag, err
}

// recorded is what a write made with ctx records beside its change: its audit events and its
// mail. EINVALID when one breaks its Validate.
func recorded(ctx context.Context) ([]identity.AuditEvent, []identity.Mail, error) {
	events, err := identity.AuditEventsOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	mails, err := identity.MailOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	return events, mails, nil
}

// insertAudit is the statement that appends events in their order, each with the next id, and
// its arguments; "" when there are none.
func insertAudit(events []identity.AuditEvent) (string, []any) {
	if len(events) == 0 {
		return "", nil
	}
	times := make([]time.Time, len(events))
	cols := make([][]string, 6)
	for i := range cols {
		cols[i] = make([]string, len(events))
	}
	for i, e := range events {
		times[i] = ts(e.Time)
		for j, v := range []string{e.Type, e.UserID, e.Actor, e.ClientIP, e.Outcome, e.Detail} {
			cols[j][i] = text(v)
		}
	}
	return `INSERT INTO audit_events (time, type, user_id, actor, client_ip, outcome, detail)
		SELECT t, ty, u, a, c, o, d
		FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
			WITH ORDINALITY AS e(t, ty, u, a, c, o, d, n)
		ORDER BY n`, []any{times, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]}
}

// AppendAudit implements identity.AuditStore: one statement, or a transaction when ctx
// carries mail.
func (s *DB) AppendAudit(ctx context.Context, events ...identity.AuditEvent) error {
	mails, err := identity.AppendOf(ctx, events)
	if err != nil {
		return err
	}
	if len(mails) > 0 {
		return s.tx(ctx, func(tx pgx.Tx) error { return record(ctx, tx, events, mails) })
	}
	sql, args := insertAudit(events)
	if sql == "" {
		return nil
	}
	_, err = s.pool.Exec(ctx, sql, args...)
	return s.fail(err)
}

const auditCols = `id, time, type, user_id, actor, client_ip, outcome, detail`

func scanAudit(row pgx.Row) (identity.AuditEvent, error) {
	var e identity.AuditEvent
	err := row.Scan(&e.ID, &e.Time, &e.Type, &e.UserID, &e.Actor, &e.ClientIP, &e.Outcome, &e.Detail)
	e.Time = e.Time.UTC()
	return e, err
}

// ListAudit implements identity.AuditStore: only the conditions q sets are in the query, so
// the index on (user_id, id) or (type, id) walks back from the newest event and stops at the
// limit.
func (s *DB) ListAudit(ctx context.Context, q identity.AuditQuery) ([]identity.AuditEvent, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	cond := func(sql string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(sql, len(args)))
	}
	if q.UserID != "" {
		id, ok := key(q.UserID)
		if !ok {
			return []identity.AuditEvent{}, nil
		}
		cond("user_id = $%d", id)
	}
	if q.Type != "" {
		typ, ok := key(q.Type)
		if !ok {
			return []identity.AuditEvent{}, nil
		}
		cond("type = $%d", typ)
	}
	if !q.Since.IsZero() {
		cond("time >= $%d", q.Since)
	}
	if q.Before > 0 {
		cond("id < $%d", q.Before)
	}
	sql := `SELECT ` + auditCols + ` FROM audit_events`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit)
	sql += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	return list(ctx, s, scanAudit, sql, args...)
}

// DeleteAuditBefore implements identity.AuditStore, in batches as DeleteDeadFamilies.
func (s *DB) DeleteAuditBefore(ctx context.Context, t time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM audit_events WHERE id IN (
		SELECT id FROM audit_events WHERE time < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, t)
}

// ImportAudit stores events with the ids they have (store copy), unless an event with that id
// is stored, and moves the id sequence past them, so the events appended later come after.
// EINVALID when one breaks AuditEvent.Validate or has no id.
func (s *DB) ImportAudit(ctx context.Context, events ...identity.AuditEvent) error {
	ids := make([]int64, len(events))
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
		if e.ID <= 0 {
			return apperr.Errorf(apperr.EINVALID, "Audit event: an id is required to import it")
		}
		ids[i] = e.ID
	}
	if len(events) == 0 {
		return nil
	}
	_, args := insertAudit(events)
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_events (id, time, type, user_id, actor, client_ip, outcome, detail)
			SELECT * FROM unnest($8::bigint[], $1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
			ON CONFLICT (id) DO NOTHING`, append(args, ids)...); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('audit_events', 'id'),
			GREATEST((SELECT max(id) FROM audit_events), (SELECT last_value FROM audit_events_id_seq)))`)
		return err
	})
}

// ImportDeletedUser records that the user id was a deleted user's (store copy), so CreateUser
// refuses it here too.
func (s *DB) ImportDeletedUser(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO deleted_users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, text(id))
	return s.fail(err)
}

// ImportReservedName keeps r reserved here too (store copy), unless its username is reserved
// already: the deleted user's username and email stay taken until ReleaseUsername.
func (s *DB) ImportReservedName(ctx context.Context, r identity.ReservedName) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO reserved_names (username_normalized, username, user_id, email) VALUES ($1, $2, $3, $4)
		ON CONFLICT (username_normalized) DO NOTHING`, text(identity.NormalizeUsername(r.Username)), text(r.Username), text(r.UserID), text(r.Email))
	return s.fail(err)
}
