package boltfile

import (
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"jwtidp/shared/groupq"
)

// groupCommit coalesces concurrent writes into one transaction and one commit, as bbolt's
// DB.Batch does, but without its timer: DB.Batch waits MaxBatchDelay (10 ms) from a batch's
// first call before committing, so every hot write paid that wait, even alone, and at a fixed
// concurrency the timer — not the disk — bounded throughput (refresh grants used under one of
// the two cores). Here a committer commits whatever is queued the moment the previous commit is
// on disk (groupq.Queue): a lone write commits at once, and writes that arrive during a commit
// share the next.
//
// The semantics are DB.Batch's: the functions of one commit run in one transaction, in order; one
// that fails (or panics) is taken out, the others are run again without it, and it is run again
// alone in a transaction of its own, whose error is its caller's. So a function may run more
// than once, and must not depend on the others of its commit.
type groupCommit struct {
	db *bolt.DB
	q  groupq.Queue[func(*bolt.Tx) error, error]
}

// maxGroup bounds the functions of one transaction (DB.Batch's MaxBatchSize).
const maxGroup = 1000

// errSolo tells a caller its function failed within a group: run it again alone.
var errSolo = errors.New("boltfile: run alone")

func newGroupCommit(db *bolt.DB) *groupCommit {
	g := &groupCommit{db: db}
	g.q = groupq.Queue[func(*bolt.Tx) error, error]{Run: g.run, Max: maxGroup}
	return g
}

func (g *groupCommit) do(fn func(*bolt.Tx) error) error {
	if err := g.q.Do(fn); err != errSolo {
		return err
	}
	return g.db.Update(fn)
}

// run commits fns in one transaction, taking out (to run alone: errSolo) any that fails.
func (g *groupCommit) run(fns []func(*bolt.Tx) error) []error {
	errs := make([]error, len(fns))
	left := make([]int, len(fns)) // the indexes of the functions still in the group
	for i := range left {
		left[i] = i
	}
	for len(left) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bolt.Tx) error {
			for j, i := range left {
				if err := safely(fns[i], tx); err != nil {
					failed = j
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, i := range left {
				errs[i] = err // nil, or the commit's own error: every call's
			}
			break
		}
		errs[left[failed]] = errSolo
		left = slices.Delete(left, failed, failed+1)
	}
	return errs
}

// safely calls fn, turning a panic into an error (as DB.Batch does), so one caller's panic
// neither kills the committer nor loses the others' writes; the caller's solo run panics again.
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("boltfile: panic in a grouped write: %v", p)
		}
	}()
	return fn(tx)
}
