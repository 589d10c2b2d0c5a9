package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoMail = apperr.Errorf(apperr.ENOTFOUND, "Mail not found")

var outbox = table[identity.Mail]{bucket: bucketOutbox, name: "mail", missing: errNoMail,
	taken: apperr.Errorf(apperr.ECONFLICT, "Mail id already queued"),
	utc: func(m *identity.Mail) {
		m.CreatedAt, m.NextAttemptAt, m.LeaseUntil = m.CreatedAt.UTC(), m.NextAttemptAt.UTC(), m.LeaseUntil.UTC()
	}}

// mailOrder is a message's key in bucketOutboxOrder: its CreatedAt in UTC, in a fixed-width
// form whose byte order is the times' order (years 1 to 9999), then its id.
func mailOrder(m identity.Mail) []byte {
	return []byte(m.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000Z") + " " + m.ID)
}

// enqueue stores the messages, each with its entry in the order index; ECONFLICT when an id
// is taken (the transaction then fails, and nothing is kept).
func enqueue(tx *bolt.Tx, mails []identity.Mail) error {
	order := tx.Bucket(bucketOutboxOrder)
	for _, m := range mails {
		if err := outbox.create(tx, m.ID, m); err != nil {
			return err
		}
		if err := order.Put(mailOrder(m), []byte(m.ID)); err != nil {
			return err
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
	return s.write(ctx, func(tx *bolt.Tx) error { return enqueue(tx, mails) })
}

// ClaimMail implements identity.MailStore: a walk of the order index from the oldest message
// to the first that is due. bbolt has one writer, so the claim needs no lock of its own; the
// walk passes only the messages waiting for a later attempt or leased, which in a healthy
// outbox are few — an outbox of thousands of failing messages would be walked on every claim.
func (s *DB) ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (identity.Mail, error) {
	if lease <= 0 {
		return identity.Mail{}, apperr.Errorf(apperr.EINVALID, "Mail: a claim's lease must be positive")
	}
	var none bool
	out, err := result(ctx, s.write, func(tx *bolt.Tx) (identity.Mail, error) {
		none = false
		var due identity.Mail
		c := tx.Bucket(bucketOutboxOrder).Cursor()
		for k, id := c.First(); k != nil; k, id = c.Next() {
			m, err := outbox.get(tx, string(id))
			if err != nil {
				return identity.Mail{}, err
			}
			if !m.NextAttemptAt.After(now) && !m.LeaseUntil.After(now) {
				due = m
				break
			}
		}
		if due.ID == "" {
			none = true
			return identity.Mail{}, errNoChange
		}
		due.LeaseUntil, due.Attempts = now.Add(lease), due.Attempts+1
		return outbox.store(tx, due.ID, due)
	})
	if err != nil {
		return identity.Mail{}, err
	}
	if none {
		return identity.Mail{}, apperr.Errorf(apperr.ENOTFOUND, "No mail is due")
	}
	return out, nil
}

// removeMail deletes the message id and its order entry: errNoMail when there is none.
func removeMail(tx *bolt.Tx, id string) error {
	m, err := outbox.get(tx, id)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketOutboxOrder).Delete(mailOrder(m)); err != nil {
		return err
	}
	return outbox.delete(tx, id)
}

// MailSent implements identity.MailStore.
func (s *DB) MailSent(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *bolt.Tx) error { return removeMail(tx, id) })
}

// DropMail implements identity.MailStore.
func (s *DB) DropMail(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *bolt.Tx) error { return removeMail(tx, id) })
}

// MailFailed implements identity.MailStore. CreatedAt does not change, so the order entry
// stays.
func (s *DB) MailFailed(ctx context.Context, id string, next time.Time, reason string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		_, err := outbox.update(tx, id, func(m identity.Mail) (identity.Mail, error) {
			m.LeaseUntil, m.NextAttemptAt, m.LastError = time.Time{}, next, identity.MailError(reason)
			return m, nil
		})
		return err
	})
}

// MailQueue implements identity.MailStore: the order index counted, and its first entry read.
func (s *DB) MailQueue(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest time.Time
	err := s.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutboxOrder)
		n = b.Stats().KeyN
		if _, id := b.Cursor().First(); id != nil {
			m, err := outbox.get(tx, string(id))
			if err != nil {
				return err
			}
			oldest = m.CreatedAt
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, oldest, nil
}

// Outbox returns every queued message, oldest first, leased ones included: what `idp store
// copy` needs so that mail queued before the move is still sent.
func (s *DB) Outbox(ctx context.Context) ([]identity.Mail, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) ([]identity.Mail, error) {
		out := []identity.Mail{}
		err := tx.Bucket(bucketOutboxOrder).ForEach(func(_, id []byte) error {
			m, err := outbox.get(tx, string(id))
			if err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
		return out, err
	})
}
