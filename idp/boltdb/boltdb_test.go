package boltdb_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/storetest"
)

func TestConformance(t *testing.T) { storetest.RunTests(t, openTemp) }

// openTemp is the suite's constructor: a fresh store in a folder of its own.
func openTemp(t *testing.T) storetest.Store {
	db, err := boltdb.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSecondOpenNamesTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db, err := boltdb.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = boltdb.Open(dir, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v; want an error naming %s", err, dir)
	}
}
