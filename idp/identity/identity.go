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
	// Epoch counts the changes of the user's credentials. Sessions and refresh families carry
	// the epoch they were made in; one from an older epoch is dead.
	Epoch int64
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
	// password change is never overwritten by a rehash; the credential epoch stays (the
	// password is the same). ENOTFOUND when the user is gone, ECONFLICT when the hash changed.
	SetPasswordHash(ctx context.Context, id, old, new string) error
	// ChangePassword replaces the hash if it is still old, moves the user to the next
	// credential epoch, revokes every refresh family and ends every session of the user — all
	// in one transaction, so nothing made with the old password survives it, not even a login
	// that was racing it. ENOTFOUND when the user is gone, ECONFLICT when the hash changed.
	ChangePassword(ctx context.Context, id, old, new string) error
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
	Audience  []string // of the access tokens it issues
	SessionID string   // the browser session it belongs to, if any: ending that ends the family
	Epoch     int64  // the user's credential epoch when the family was made
	CreatedAt time.Time
	ExpiresAt time.Time // absolute: refreshing does not extend it
	Current   string    // hash of the one live token
	Revoked   bool
}

// FamilyStore keeps refresh-token families, indexed by the hashes of every token they issued.
type FamilyStore interface {
	// CreateFamily stores a new family whose live token has the hash f.Current, but only if
	// its user still exists with the credential epoch f.Epoch — checked in the same
	// transaction — else ErrStaleCredentials (ECONFLICT).
	CreateFamily(ctx context.Context, f Family) error
	// UpdateFamilyByToken finds the family that issued the token with hash tokenHash and its
	// user as stored now (the zero User when the user is gone) and, in one transaction, stores
	// what step returns — even when step also returns an error, so that a revocation decided by
	// step is kept — and indexes its new Current token. It returns step's result. ENOTFOUND when
	// no family issued that token.
	UpdateFamilyByToken(ctx context.Context, tokenHash string, step func(Family, User) (Family, error)) (Family, error)
	// RevokeUserFamilies revokes every family of the user.
	RevokeUserFamilies(ctx context.Context, userID string) error
	// DeleteDeadFamilies removes revoked families and those expired at now, with their token
	// hashes, and returns how many it removed.
	DeleteDeadFamilies(ctx context.Context, now time.Time) (int, error)
}

// Validate checks a family's invariants before it is stored.
func (f Family) Validate() error {
	if f.ID == "" || f.UserID == "" || f.Current == "" {
		return fmt.Errorf("family: id, user and current token are required")
	}
	return nil
}

// Dead reports whether no token of the family may be used any more.
func (f Family) Dead(now time.Time) bool { return f.Revoked || !now.Before(f.ExpiresAt) }

// ErrInvalidGrant is the answer for every refresh token that cannot be used: unknown, spent,
// revoked or expired. The reason goes to the log, never to the client.
var ErrInvalidGrant = apperr.Errorf(apperr.EUNAUTHORIZED, "Refresh token is invalid, expired or revoked")

// Refresh spends the presented token (by hash) and makes next the family's live token. u is the
// family's user as stored now (zero when gone). A presented token that is not the live one was
// already spent: that is reuse, the mark of a stolen token, so the family is revoked — the
// newest token included — and the revoked family is returned with the error for the store to
// keep. A family of a user who is gone or whose credentials changed since it was made is
// revoked too.
func (f Family) Refresh(presented, next string, u User, now time.Time) (Family, error) {
	switch {
	case f.Revoked:
		return f, fmt.Errorf("%w: family revoked", ErrInvalidGrant)
	case !now.Before(f.ExpiresAt):
		return f, fmt.Errorf("%w: family expired", ErrInvalidGrant)
	case u.ID != f.UserID:
		f.Revoked = true
		return f, fmt.Errorf("%w: user gone", ErrInvalidGrant)
	case u.Epoch != f.Epoch:
		f.Revoked = true
		return f, fmt.Errorf("%w: credentials changed since the family was made", ErrInvalidGrant)
	case presented != f.Current:
		f.Revoked = true
		return f, fmt.Errorf("%w: %w", ErrInvalidGrant, ErrReuse)
	}
	f.Current = next
	return f, nil
}

// ErrReuse marks a refresh that presented an already-spent token.
var ErrReuse = fmt.Errorf("refresh token reuse: family revoked")

// Revoke ends the family.
func (f Family) Revoke() (Family, error) {
	f.Revoked = true
	return f, nil
}
