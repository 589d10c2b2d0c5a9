// Package boltfile opens a service's bbolt file the one way both services want it: a private
// data folder (0700) and file (0600), the buckets created, and a clear error naming the folder
// when another process holds its lock instead of waiting forever.
package boltfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"jwtidp/shared/apperr"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Open opens (creating if needed) dir/name with the given top-level buckets.
func Open(dir, name string, lockTimeout time.Duration, buckets ...[]byte) (*bolt.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("data folder %s is in use by another process: could not lock %s within %s", dir, path, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise store %s: %w", path, err)
	}
	return db, nil
}

// WriteFailures turns the errors of a failing disk (full, read-only, over a size limit, I/O
// errors) into EUNAVAILABLE — a 503 with a clear message, so the service stays up and serves
// what it can — and logs them once per burst rather than once per request.
type WriteFailures struct {
	Logger *slog.Logger
	Path   string
	every  rate.Sometimes
}

// storageErrnos are the errors of the storage, not of the request or the code.
var storageErrnos = []error{syscall.ENOSPC, syscall.EROFS, syscall.EFBIG, syscall.EDQUOT, syscall.EIO, syscall.EACCES, syscall.EPERM}

// Classify returns err unchanged unless it is a storage failure.
func (w *WriteFailures) Classify(err error) error {
	if err == nil {
		return nil
	}
	storage := false
	for _, e := range storageErrnos {
		// bbolt formats some errors with %s ("file resize error: ... file too large"), so the
		// errno's text is matched too.
		storage = storage || errors.Is(err, e) || strings.Contains(err.Error(), e.Error())
	}
	if !storage {
		return err
	}
	w.every.Interval = time.Minute
	w.every.Do(func() {
		if w.Logger != nil {
			w.Logger.Error("storage writes are failing; answering 503 to writes (logged once a minute)", "path", w.Path, "err", err)
		}
	})
	return &apperr.Error{Code: apperr.EUNAVAILABLE, Message: "Storage is unavailable: writes are failing. Try again later.", RetryAfter: 30 * time.Second, Err: err}
}

// Check runs bbolt's consistency check over the whole file.
func Check(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// Store is what every service's bbolt store has in common; the stores embed it.
type Store struct {
	DB    *bolt.DB
	wf    *WriteFailures
	group *groupCommit
}

// NewStore wraps an open file.
func NewStore(db *bolt.DB) Store {
	return Store{DB: db, wf: &WriteFailures{Path: db.Path()}, group: newGroupCommit(db)}
}

// Update runs a write transaction; a failing disk becomes EUNAVAILABLE (503), logged once per
// burst.
func (s Store) Update(fn func(*bolt.Tx) error) error { return s.wf.Classify(s.DB.Update(fn)) }

// Batch is Update for hot, independent writes: concurrent calls share one transaction and one
// commit (a group commit, with no timer: see groupCommit), and it returns only once the write is
// on disk. fn may run more than once.
func (s Store) Batch(fn func(*bolt.Tx) error) error { return s.wf.Classify(s.group.do(fn)) }

// SetLogger sets where storage failures are reported.
func (s Store) SetLogger(l *slog.Logger) { s.wf.Logger = l }

// Snapshot writes a consistent copy of the whole file to w while the store keeps serving.
func (s Store) Snapshot(w io.Writer) (int64, error) {
	var n int64
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Check runs bbolt's consistency check over the whole store.
func (s Store) Check() error { return Check(s.DB) }

// Ping reports whether the store is open, for readiness.
func (s Store) Ping(context.Context) error { return s.DB.View(func(*bolt.Tx) error { return nil }) }

// Close closes the file and releases its lock.
func (s Store) Close() error { return s.DB.Close() }
