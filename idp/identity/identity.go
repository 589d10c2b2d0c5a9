// Package identity is the IdP's domain: users, signing keys and refresh-token families, the
// rules that govern them, and the interfaces of the stores that keep them. It imports no
// storage, HTTP or JWT library.
package identity

import (
	"context"
	"fmt"
	"strings"
	"time"

	"jwtidp/shared/apperr"
)

// User is an account. ID is opaque, random and stable: it is the tokens' sub.
type User struct {
	ID           string
	Username     string // as the user typed it at signup
	PasswordHash string // PHC string
	CreatedAt    time.Time
}

// NormalizeUsername is the form usernames are compared in: case-insensitive.
func NormalizeUsername(username string) string { return strings.ToLower(username) }

// ValidateUsername enforces API.md: 3–64 characters of [A-Za-z0-9._-].
func ValidateUsername(username string) error {
	if n := len(username); n < 3 || n > 64 {
		return apperr.Errorf(apperr.EINVALID, "Username must be 3 to 64 characters long")
	}
	for _, c := range username {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return apperr.Errorf(apperr.EINVALID, "Username may contain only letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// UserStore keeps users.
type UserStore interface {
	// CreateUser stores u. ECONFLICT when the username is taken in any letter case.
	CreateUser(ctx context.Context, u User) error
	// UserByName finds a user by username in any letter case. ENOTFOUND when there is none.
	UserByName(ctx context.Context, username string) (User, error)
	// UserByID finds a user by id. ENOTFOUND when there is none.
	UserByID(ctx context.Context, id string) (User, error)
	// SetPasswordHash replaces a user's hash, but only if it is still old, so a concurrent
	// password change is never overwritten by a rehash. ENOTFOUND when the user is gone.
	SetPasswordHash(ctx context.Context, id, old, new string) error
}

// KeyState is where a signing key is in its life: next → current → retired → deleted.
type KeyState string

const (
	KeyNext    KeyState = "next"    // published, not signing yet
	KeyCurrent KeyState = "current" // signing
	KeyRetired KeyState = "retired" // published until its last token has expired
)

// SigningKey is an RSA key pair with its schedule.
type SigningKey struct {
	ID         string // the kid
	State      KeyState
	PrivateDER []byte    // PKCS #8
	CreatedAt  time.Time // published from then on
	SignsFrom  time.Time // when it became (or is due to become) current
	RetiredAt  time.Time // zero unless retired
	DeleteAt   time.Time // zero unless retired: removed from the JWKS then
}

// KeyStore keeps signing keys.
type KeyStore interface {
	// Keys returns every stored key.
	Keys(ctx context.Context) ([]SigningKey, error)
	// UpdateKeys runs update on the stored keys and stores its result, all in one transaction,
	// so concurrent updates leave one consistent set. update must be pure: it may run again.
	UpdateKeys(ctx context.Context, update func([]SigningKey) ([]SigningKey, error)) error
}

// Family is a chain of refresh tokens that starts at one login. Only the newest token of a
// family is live; presenting an older one is reuse, which kills the family.
type Family struct {
	ID        string
	UserID    string
	ClientID  string
	Scope     string
	CreatedAt time.Time
	ExpiresAt time.Time // absolute: refreshing does not extend it
	Current   string    // hash of the one live token
	Revoked   bool
}

// FamilyStore keeps refresh-token families, indexed by the hashes of every token they issued.
type FamilyStore interface {
	// CreateFamily stores a new family whose live token has the hash f.Current.
	CreateFamily(ctx context.Context, f Family) error
}

// Validate checks a family's invariants before it is stored.
func (f Family) Validate() error {
	if f.ID == "" || f.UserID == "" || f.Current == "" {
		return fmt.Errorf("family: id, user and current token are required")
	}
	return nil
}
