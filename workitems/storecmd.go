package main

import (
	"context"
	"fmt"

	"jwtidp/workitems/boltdb"
	"jwtidp/workitems/pgstore"
	"jwtidp/workitems/workitem"
)

// copyStore is `workitems store copy`: every item of every owner, ids unchanged, from a bbolt
// data folder into PostgreSQL, and the id sequence past every id the folder ever handed out.
// Copying again adds what is missing; an item that differs from the source's is reported, not
// overwritten.
func copyStore(ctx context.Context, src *boltdb.DB, dst *pgstore.DB) (string, error) {
	n := 0
	seq, err := src.Export(ctx, func(it workitem.Item) error {
		if err := dst.Import(ctx, it); err != nil {
			return fmt.Errorf("item %d: %w", it.ID, err)
		}
		n++
		return nil
	})
	if err != nil {
		return "", err
	}
	if seq > 0 {
		if err := dst.ReserveIDs(ctx, seq); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("copied %d work items; new ids start after %d", n, seq), nil
}
