// Package workitem is the work-item service's domain: items, their rules, and the store
// interface. It imports no storage, HTTP or JWT library.
package workitem

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

// Item is one work item. Owner is never shown to clients.
type Item struct {
	ID        uint64    `json:"id"`
	Owner     string    `json:"-"`
	Title     string    `json:"title"`
	Done      bool      `json:"done"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Owner identifies the user an item belongs to: the token's issuer and subject together, so
// two issuers' subjects can never collide.
func Owner(issuer, subject string) string { return issuer + "\x00" + subject }

// Page sizes of List.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	MaxTitle     = 500
)

// Filter selects a page of one owner's items, oldest first.
type Filter struct {
	Owner string
	// AllOwners lists every owner's items, Owner ignored: an admin's view (the
	// workitems:admin scope).
	AllOwners bool
	After     uint64 // only items with a larger id
	Limit     int    // 1..MaxLimit
}

// Validate refuses a filter without owner (unless it is for all owners) or with a page size
// outside 1..MaxLimit. EINVALID.
func (f Filter) Validate() error {
	if f.Owner == "" && !f.AllOwners {
		return apperr.Errorf(apperr.EINVALID, "An owner is required")
	}
	if f.Limit < 1 || f.Limit > MaxLimit {
		return apperr.Errorf(apperr.EINVALID, "limit must be a whole number from 1 to %d", MaxLimit)
	}
	return nil
}

// Update is a partial change; nil fields are left alone.
type Update struct {
	Title *string
	Done  *bool
}

// Apply returns it changed by u at now: the updater of a PATCH.
func (it Item) Apply(u Update, now time.Time) Item {
	if u.Title != nil {
		it.Title = *u.Title
	}
	if u.Done != nil {
		it.Done = *u.Done
	}
	it.UpdatedAt = now
	return it
}

// ValidateTitle enforces 1–500 characters, not all blank, no NUL.
func ValidateTitle(title string) error {
	if strings.TrimSpace(title) == "" {
		return apperr.Errorf(apperr.EINVALID, "Title must not be empty")
	}
	if utf8.RuneCountInString(title) > MaxTitle {
		return apperr.Errorf(apperr.EINVALID, "Title must be at most %d characters long", MaxTitle)
	}
	if !utf8.ValidString(title) {
		return apperr.Errorf(apperr.EINVALID, "Title must be valid UTF-8")
	}
	if strings.ContainsRune(title, 0) {
		// No store can keep it alike (PostgreSQL text cannot hold NUL), and no title needs it.
		return apperr.Errorf(apperr.EINVALID, "Title must not contain a NUL character")
	}
	return nil
}

// Validate checks an item's invariants before it is stored: an owner, a valid title, and both
// timestamps. EINVALID.
func (it Item) Validate() error {
	if it.Owner == "" {
		return apperr.Errorf(apperr.EINVALID, "An owner is required")
	}
	if it.CreatedAt.IsZero() || it.UpdatedAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "Creation and update times are required")
	}
	return ValidateTitle(it.Title)
}

// Store keeps items. Every method is scoped to one owner: another owner's item is ENOTFOUND,
// exactly like one that does not exist, and is never shown to an updater. Times come back in
// UTC, to the microsecond at least; workitems/storetest holds every backend to this.
type Store interface {
	// Create stores a new item with the next id — ids only grow and are never reused, not even
	// after a delete; it.ID is ignored — and returns it as stored. When it returns, the item
	// is durable. EINVALID when it breaks Item.Validate.
	Create(ctx context.Context, it Item) (Item, error)
	// Get returns an item. ENOTFOUND if it does not exist or is not owner's.
	Get(ctx context.Context, owner string, id uint64) (Item, error)
	// List returns a page of f.Owner's items (every owner's with f.AllOwners, each with its
	// Owner) in id order (oldest first): empty, never nil, past the last. EINVALID when f breaks
	// Filter.Validate.
	List(ctx context.Context, f Filter) ([]Item, error)
	// Update runs fn on the item as stored now and stores its result, in one transaction, and
	// returns what it stored. fn may run more than once; when it returns an error nothing
	// changes and that error is returned. ENOTFOUND if the item does not exist or is not
	// owner's (fn is not called); EINVALID when fn's result changes the ID or Owner or breaks
	// Item.Validate.
	Update(ctx context.Context, owner string, id uint64, fn func(Item) (Item, error)) (Item, error)
	// Delete removes an item. ENOTFOUND if it does not exist or is not owner's.
	Delete(ctx context.Context, owner string, id uint64) error
}
