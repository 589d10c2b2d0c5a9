package boltdb_test

import (
	"testing"
	"time"

	"jwtidp/workitems/boltdb"
	"jwtidp/workitems/storetest"
	"jwtidp/workitems/workitem"
)

func TestConformance(t *testing.T) { storetest.RunTests(t, openTemp) }

// openTemp is the suite's constructor: a fresh store in a folder of its own.
func openTemp(t *testing.T) workitem.Store {
	db, err := boltdb.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
