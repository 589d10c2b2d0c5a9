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
	After uint64 // only items with a larger id
	Limit int    // 1..MaxLimit
}

// Update is a partial change; nil fields are left alone.
type Update struct {
	Title *string
	Done  *bool
}

// ValidateTitle enforces 1–500 characters, not all blank.
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
	return nil
}

// Store keeps items.
type Store interface {
	// Create stores a new item, assigning its ID; when it returns, the item is on disk.
	Create(ctx context.Context, it Item) (Item, error)
	// Get returns an item. ENOTFOUND if it does not exist or is not owner's.
	Get(ctx context.Context, owner string, id uint64) (Item, error)
	// List returns a page of f.Owner's items, oldest first.
	List(ctx context.Context, f Filter) ([]Item, error)
	// Patch applies u at time now. ENOTFOUND if it does not exist or is not owner's.
	Patch(ctx context.Context, owner string, id uint64, u Update, now time.Time) (Item, error)
	// Delete removes an item. ENOTFOUND if it does not exist or is not owner's.
	Delete(ctx context.Context, owner string, id uint64) error
}
