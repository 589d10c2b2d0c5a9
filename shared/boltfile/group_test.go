package boltfile

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/shared/proctest"
)

func openGroupStore(t *testing.T) Store {
	t.Helper()
	db, err := Open(t.TempDir(), "group.db", time.Second, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return NewStore(db)
}

// Writes that arrive while a commit is in progress share the next transaction, which starts as
// soon as that commit ends: no timer decides it.
func TestGroupCommitCoalesces(t *testing.T) {
	s := openGroupStore(t)
	entered, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Batch(func(tx *bolt.Tx) error {
			close(entered)
			<-release // the first transaction is held open while the others queue
			return tx.Bucket([]byte("b")).Put([]byte("first"), []byte("1"))
		})
	}()
	<-entered
	const n = 20
	var wg sync.WaitGroup
	txids := make([]int, n)
	for i := range n {
		wg.Go(func() {
			err := s.Batch(func(tx *bolt.Tx) error {
				txids[i] = tx.ID()
				return tx.Bucket([]byte("b")).Put([]byte(fmt.Sprint("k", i)), []byte("v"))
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	// All n are queued behind the held commit before it is released.
	if !proctest.Eventually(10*time.Second, func() bool { return s.group.q.Queued() == n }) {
		t.Fatalf("%d writes queued behind the held commit, want %d", s.group.q.Queued(), n)
	}
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if txids[i] != txids[0] {
			t.Fatalf("the queued writes ran in transactions %v: want one", txids)
		}
	}
	s.DB.View(func(tx *bolt.Tx) error {
		for i := range n {
			if tx.Bucket([]byte("b")).Get([]byte(fmt.Sprint("k", i))) == nil {
				t.Errorf("write %d lost", i)
			}
		}
		return nil
	})
}

// A write that fails (or panics) within a group is its caller's error alone: the others of its
// group are committed, and it is run again by itself (so a write that fails only beside others
// still commits).
func TestGroupCommitFailureIsItsCallersAlone(t *testing.T) {
	s := openGroupStore(t)
	errBad := errors.New("bad write")
	entered, release := make(chan struct{}), make(chan struct{})
	go s.Batch(func(tx *bolt.Tx) error {
		close(entered)
		<-release
		return nil
	})
	<-entered
	var wg sync.WaitGroup
	var badErr, panicked error
	var goodErrs [5]error
	for i := range 5 {
		wg.Go(func() {
			goodErrs[i] = s.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(fmt.Sprint("good", i)), []byte("v")) })
		})
	}
	wg.Go(func() { badErr = s.Batch(func(*bolt.Tx) error { return errBad }) })
	wg.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				panicked = fmt.Errorf("%v", p)
			}
		}()
		s.Batch(func(*bolt.Tx) error { panic("boom") })
	})
	if !proctest.Eventually(10*time.Second, func() bool { return s.group.q.Queued() == 7 }) {
		t.Fatalf("%d writes queued behind the held commit, want 7", s.group.q.Queued())
	}
	close(release)
	wg.Wait()
	if !errors.Is(badErr, errBad) {
		t.Fatalf("the failing write's caller got %v, want its own error", badErr)
	}
	if panicked == nil {
		t.Fatal("the panicking write's caller did not see its panic")
	}
	for i, err := range goodErrs {
		if err != nil {
			t.Fatalf("good write %d: %v", i, err)
		}
	}
	s.DB.View(func(tx *bolt.Tx) error {
		for i := range 5 {
			if tx.Bucket([]byte("b")).Get([]byte(fmt.Sprint("good", i))) == nil {
				t.Errorf("good write %d lost beside a failing one", i)
			}
		}
		return nil
	})
}
