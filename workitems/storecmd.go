package main

import (
	"context"
	"fmt"
	"strings"

	"jwtidp/shared/apperr"
	"jwtidp/workitems/boltdb"
	"jwtidp/workitems/pgstore"
	"jwtidp/workitems/workitem"
)

// copyStore is `workitems store copy`: every item of every owner, ids unchanged, from a bbolt
// data folder into PostgreSQL, and the id sequence past every id the folder ever handed out.
// Copying again adds what is missing; an item that differs from the source's is reported, not
// overwritten.
func copyStore(ctx context.Context, src *boltdb.DB, dst *pgstore.DB) (string, error) {
	n, differ := 0, 0
	seq, err := src.Export(ctx, func(it workitem.Item) error {
		// A title from before NUL was refused (PostgreSQL text cannot hold it) is kept legible.
		it.Title = strings.ReplaceAll(it.Title, "\x00", "\uFFFD")
		switch err := dst.Import(ctx, it); apperr.Code(err) {
		case "":
			n++
		case apperr.ECONFLICT: // the target holds another item under this id: kept, reported
			differ++
		default:
			return fmt.Errorf("item %d: %w", it.ID, err)
		}
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
	if differ > 0 {
		return "", fmt.Errorf("copied %d work items; %d differ from the target's item with the same id and were left as the target has them", n, differ)
	}
	return fmt.Sprintf("copied %d work items; new ids start after %d", n, seq), nil
}
