package boltdb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
)

// errNoChange is what a write's fn returns when it wrote nothing and must record nothing (an
// updater's refusal that must not fail a batch, a step that keeps nothing): the transaction
// commits without the context's audit events and the write returns nil, so the method reports
// the refusal itself.
var errNoChange = errors.New("nothing written")

// write is every write method's transaction (Update): fn makes the change, then the audit
// events and the mail ctx carries (identity.AuditEventsOf and identity.MailOf, called once fn
// has run) are written in the same transaction, so the change, its record and the mail it
// causes commit together or not at all. When fn fails nothing is written, the events and mail
// neither; when AuditEventsOf or MailOf fails, or a message's id is taken, the write fails.
func (s *DB) write(ctx context.Context, fn func(*bolt.Tx) error) error {
	return s.Update(withAudit(ctx, fn))
}

// batch is write for the hot writes bbolt coalesces (Batch): fn may run more than once, and
// the events are asked for after each run, so those written are those of the run that commits.
func (s *DB) batch(ctx context.Context, fn func(*bolt.Tx) error) error {
	return s.Batch(withAudit(ctx, fn))
}

func withAudit(ctx context.Context, fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if err := fn(tx); err != nil {
			if errors.Is(err, errNoChange) {
				return nil
			}
			return err
		}
		events, err := identity.AuditEventsOf(ctx)
		if err != nil {
			return err
		}
		if err := appendAudit(tx, events); err != nil {
			return err
		}
		mails, err := identity.MailOf(ctx)
		if err != nil {
			return err
		}
		return enqueue(tx, mails)
	}
}

// auditKey is an event's key: its id, big-endian, so bbolt's order is the ids'.
func auditKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// appendAudit stores events in order, each with the next id of the bucket's sequence.
func appendAudit(tx *bolt.Tx, events []identity.AuditEvent) error {
	b := tx.Bucket(bucketAudit)
	for _, e := range events {
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.ID, e.Time = int64(id), e.Time.UTC()
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(auditKey(id), data); err != nil {
			return err
		}
	}
	return nil
}

func decodeAudit(k, v []byte) (identity.AuditEvent, error) {
	var e identity.AuditEvent
	if err := json.Unmarshal(v, &e); err != nil {
		return e, fmt.Errorf("read audit event %d: %w", binary.BigEndian.Uint64(k), err)
	}
	e.ID, e.Time = int64(binary.BigEndian.Uint64(k)), e.Time.UTC()
	return e, nil
}

// AppendAudit implements identity.AuditStore.
func (s *DB) AppendAudit(ctx context.Context, events ...identity.AuditEvent) error {
	mails, err := identity.AppendOf(ctx, events)
	if err != nil {
		return err
	}
	if len(events) == 0 && len(mails) == 0 {
		return nil
	}
	// Batched: refused sign-ins come many at a time, and each would be an fsync of its own.
	return s.Batch(func(tx *bolt.Tx) error {
		if err := appendAudit(tx, events); err != nil {
			return err
		}
		return enqueue(tx, mails)
	})
}

// ListAudit implements identity.AuditStore: a walk back from the newest event (or from
// q.Before), which stops at the first event older than q.Since — events are appended in the
// order of the IdP's clock, so the rest are older still.
func (s *DB) ListAudit(ctx context.Context, q identity.AuditQuery) ([]identity.AuditEvent, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := []identity.AuditEvent{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if q.Before > 0 {
			if k, _ = c.Seek(auditKey(uint64(q.Before))); k != nil {
				k, v = c.Prev()
			} else {
				k, v = c.Last()
			}
		} else {
			k, v = c.Last()
		}
		for ; k != nil && len(out) < q.Limit; k, v = c.Prev() {
			e, err := decodeAudit(k, v)
			if err != nil {
				return err
			}
			if !q.Since.IsZero() && e.Time.Before(q.Since) {
				return nil
			}
			if (q.UserID == "" || e.UserID == q.UserID) && (q.Type == "" || e.Type == q.Type) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteAuditBefore implements identity.AuditStore: a walk from the oldest event, which stops
// at the first one at or after t (events are appended in the order of the IdP's clock).
func (s *DB) DeleteAuditBefore(ctx context.Context, t time.Time) (int, error) {
	n := 0
	err := s.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		var old [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			e, err := decodeAudit(k, v)
			if err != nil {
				return err
			}
			if !e.Time.Before(t) {
				break
			}
			old = append(old, append([]byte(nil), k...))
		}
		// Deleted after the walk: a bucket must not change under its cursor.
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// DeletedUserIDs returns the ids of every deleted user, sorted: what `idp store copy` needs so
// that the target refuses them too.
func (s *DB) DeletedUserIDs(ctx context.Context) ([]string, error) {
	out := []string{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeleted).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
