package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoMail = apperr.Errorf(apperr.ENOTFOUND, "Mail not found")

const mailCols = `id, to_addr, subject, text_body, html_body, kind, user_id, created_at, next_attempt_at, attempts,
	lease_until, last_error`

func scanMail(row pgx.Row) (identity.Mail, error) {
	var m identity.Mail
	var next, lease pgtype.Timestamptz
	err := row.Scan(&m.ID, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Kind, &m.UserID, &m.CreatedAt, &next, &m.Attempts,
		&lease, &m.LastError)
	m.CreatedAt, m.NextAttemptAt, m.LeaseUntil = m.CreatedAt.UTC(), fromNull(next), fromNull(lease)
	return found(m, err, errNoMail)
}

// insertMail is the statement that queues mails, and its arguments; "" when there are none.
// Validate has refused what PostgreSQL's text could not hold, so the fields go as given.
func insertMail(mails []identity.Mail) (string, []any) {
	if len(mails) == 0 {
		return "", nil
	}
	var rows []string
	var args []any
	for _, m := range mails {
		n := len(args)
		rows = append(rows, fmt.Sprintf("($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)",
			n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10, n+11, n+12))
		args = append(args, m.ID, m.To, m.Subject, m.Text, m.HTML, m.Kind, m.UserID, ts(m.CreatedAt),
			nullTime(ts(m.NextAttemptAt)), m.Attempts, nullTime(ts(m.LeaseUntil)), m.LastError)
	}
	return `INSERT INTO mail_outbox (` + mailCols + `) VALUES ` + strings.Join(rows, ", "), args
}

// record writes, in tx, the audit events and the mail a write carries, after its change.
// A message whose id is queued already is ECONFLICT.
func record(ctx context.Context, tx pgx.Tx, events []identity.AuditEvent, mails []identity.Mail) error {
	if sql, args := insertAudit(events); sql != "" {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
	}
	if sql, args := insertMail(mails); sql != "" {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return conflict(err)
		}
	}
	return nil
}

// EnqueueMail implements identity.MailStore.
func (s *DB) EnqueueMail(ctx context.Context, mails ...identity.Mail) error {
	for _, m := range mails {
		if err := m.Validate(); err != nil {
			return err
		}
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		sql, args := insertMail(mails)
		if sql == "" {
			return nil
		}
		_, err := tx.Exec(ctx, sql, args...)
		return conflict(err)
	})
}

// ClaimMail implements identity.MailStore: the oldest due row is read FOR UPDATE SKIP LOCKED,
// so a replica claiming at the same moment passes over it to the next (or finds none) instead
// of waiting for it, and once this transaction commits its lease keeps it from every claim.
// The walk follows the (created_at, id) index and passes the rows waiting or leased, as the
// bbolt store's does.
func (s *DB) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (identity.Mail, error) {
	if lease <= 0 {
		return identity.Mail{}, apperr.Errorf(apperr.EINVALID, "Mail: a claim's lease must be positive")
	}
	var out identity.Mail
	var none bool
	err := s.write(ctx, func(tx pgx.Tx) error {
		none = false
		m, err := scanMail(tx.QueryRow(ctx, `SELECT `+mailCols+` FROM mail_outbox
			WHERE (next_attempt_at IS NULL OR next_attempt_at <= $1) AND (lease_until IS NULL OR lease_until <= $1)
			ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, ts(now)))
		if apperr.Code(err) == apperr.ENOTFOUND {
			none = true
			return errNoChange
		}
		if err != nil {
			return err
		}
		m.LeaseUntil, m.Attempts = ts(now.Add(lease)), m.Attempts+1
		if _, err := tx.Exec(ctx, `UPDATE mail_outbox SET lease_until = $2, attempts = $3 WHERE id = $1`,
			m.ID, m.LeaseUntil, m.Attempts); err != nil {
			return err
		}
		out = m
		return nil
	})
	if err != nil {
		return identity.Mail{}, err
	}
	if none {
		return identity.Mail{}, apperr.Errorf(apperr.ENOTFOUND, "No mail is due")
	}
	return out, nil
}

// deleteMail removes the message id: errNoMail when there is none.
func (s *DB) deleteMail(ctx context.Context, id string) error {
	return s.writeFor(ctx, id, errNoMail, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM mail_outbox WHERE id = $1`, id)
		if err == nil && tag.RowsAffected() == 0 {
			return errNoMail
		}
		return err
	})
}

// MailSent implements identity.MailStore.
func (s *DB) MailSent(ctx context.Context, id string) error { return s.deleteMail(ctx, id) }

// DropMail implements identity.MailStore.
func (s *DB) DropMail(ctx context.Context, id string) error { return s.deleteMail(ctx, id) }

// MailFailed implements identity.MailStore.
func (s *DB) MailFailed(ctx context.Context, id string, next time.Time, reason string) error {
	return s.writeFor(ctx, id, errNoMail, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE mail_outbox SET lease_until = NULL, next_attempt_at = $2, last_error = $3 WHERE id = $1`,
			id, nullTime(ts(next)), identity.MailError(reason))
		if err == nil && tag.RowsAffected() == 0 {
			return errNoMail
		}
		return err
	})
}

// MailQueue implements identity.MailStore.
func (s *DB) MailQueue(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM mail_outbox`).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, s.fail(err)
	}
	return n, fromNull(oldest), nil
}

// ImportMail queues m as another store holds it (store copy), its delivery state included,
// unless a message with its id is queued. EINVALID when m breaks Mail.Validate.
func (s *DB) ImportMail(ctx context.Context, m identity.Mail) error {
	if err := m.Validate(); err != nil {
		return err
	}
	sql, args := insertMail([]identity.Mail{m})
	_, err := s.pool.Exec(ctx, sql+` ON CONFLICT (id) DO NOTHING`, args...)
	return s.fail(err)
}
