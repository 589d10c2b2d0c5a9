// Package identity is the IdP's domain: users, signing keys, refresh-token families, browser
// sessions, the rules that govern them, and the interfaces of the stores that keep them. It
// imports no storage, HTTP or JWT library.
//
// The stores speak per entity — create, get, list, Update(id, func(old) (new, error)), delete —
// plus the few operations that must be one transaction across entities (a credential change
// ends the user's families and sessions; deleting a user removes them). Decisions are made in
// the updater closures, from what the transaction read, so any number of processes can share a
// store; an updater may run more than once and must not have side effects. Every error a store
// method is documented to return carries an apperr code; times come back in UTC, to the
// microsecond at least. idp/storetest holds every backend to this.
package identity

import (
	"context"
	"errors"
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
	// Email is optional ("" for none), unique case-insensitively among users who have one, and
	// stored as given. It is unverified until an admin verifies it: no mail is sent.
	Email         string
	EmailVerified bool
	// Factors are the user's second factors (TOTP and its recovery codes).
	Factors SecondFactors
	// Disabled: the user may not sign in (the same answer as a wrong password); disabling
	// ends their sessions and families (ChangeCredentials).
	Disabled bool
	// Admin: the user may be granted the idp:admin scope, an admin credential.
	Admin bool
	// LastLoginAt is when the user last signed in (zero: never).
	LastLoginAt time.Time
}

// MaxEmailBytes bounds an email address (RFC 5321's path limit).
const MaxEmailBytes = 254

// NormalizeEmail is the form emails are compared in: case-insensitive, as every relying party
// that keys users by email compares them.
func NormalizeEmail(email string) string { return strings.ToLower(email) }

// ValidateEmail checks the shape of an email address: local@domain, printable ASCII without
// spaces, at most MaxEmailBytes. "" is valid (no email). No mail is sent, so the domain is not
// looked up. EINVALID.
func ValidateEmail(email string) error {
	if email == "" {
		return nil
	}
	if len(email) > MaxEmailBytes {
		return apperr.Errorf(apperr.EINVALID, "Email must be at most %d characters long", MaxEmailBytes)
	}
	for i := 0; i < len(email); i++ {
		if c := email[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == ',' || c == ';' {
			return apperr.Errorf(apperr.EINVALID, "Email must be an address like name@example.com")
		}
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || strings.HasPrefix(domain, ".") ||
		strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") || len(local) > 64 {
		return apperr.Errorf(apperr.EINVALID, "Email must be an address like name@example.com")
	}
	return nil
}

// NormalizeUsername is the form usernames are compared in: case-insensitive.
func NormalizeUsername(username string) string { return strings.ToLower(username) }

// ValidateUsername enforces API.md: 3–64 characters of [A-Za-z0-9._-].
func ValidateUsername(username string) error {
	if n := len(username); n < 3 || n > 64 {
		return apperr.Errorf(apperr.EINVALID, "Username must be 3 to 64 characters long")
	}
	if !nameChars(username) {
		return apperr.Errorf(apperr.EINVALID, "Username may contain only letters, digits, '.', '_' and '-'")
	}
	return nil
}

// nameChars reports whether s is made of [A-Za-z0-9._-] only, as usernames and client ids are.
func nameChars(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks a user's invariants before it is stored: an id, and a username within the
// signup rules (so usernames are ASCII, and every store orders them alike). EINVALID.
func (u User) Validate() error {
	if u.ID == "" {
		return apperr.Errorf(apperr.EINVALID, "User id is required")
	}
	if u.Email == "" && u.EmailVerified {
		return apperr.Errorf(apperr.EINVALID, "A user without an email cannot have it verified")
	}
	if err := ValidateEmail(u.Email); err != nil {
		return err
	}
	return ValidateUsername(u.Username)
}

// ErrPasswordChanged refuses to replace a password hash that is no longer the one the caller
// checked: a concurrent change won, and must not be overwritten.
var ErrPasswordChanged = apperr.Errorf(apperr.ECONFLICT, "Password was changed concurrently")

// ReplacePasswordHash sets the hash to new if it is still old, else ErrPasswordChanged (ECONFLICT).
// It is the updater of a rehash and of a password change.
func (u User) ReplacePasswordHash(old, new string) (User, error) {
	if u.PasswordHash != old {
		return u, ErrPasswordChanged
	}
	u.PasswordHash = new
	return u, nil
}

// MaxListLimit is the largest page a store lists.
const MaxListLimit = 1000

// ListOptions selects a page of users in the order of their normalized usernames, compared
// byte by byte. Prefix and After are normalized too, so any letter case works; the next page
// starts After the last username of this one.
type ListOptions struct {
	Prefix string // only usernames that start with it
	After  string // only usernames that sort after it
	Limit  int    // 1..MaxListLimit
}

// Validate refuses a page size outside 1..MaxListLimit. EINVALID.
func (o ListOptions) Validate() error {
	if o.Limit < 1 || o.Limit > MaxListLimit {
		return apperr.Errorf(apperr.EINVALID, "limit must be a whole number from 1 to %d", MaxListLimit)
	}
	return nil
}

// ErrEmailTaken refuses an email another user has, in any letter case.
var ErrEmailTaken = apperr.Errorf(apperr.ECONFLICT, "Email is already in use")

// SetEmail is the updater of a user's own email change: a new address is unverified; setting
// the one already stored (in any letter case) changes nothing.
func (u User) SetEmail(email string) (User, error) {
	if NormalizeEmail(email) == NormalizeEmail(u.Email) && email == u.Email {
		return u, ErrUnchanged
	}
	if NormalizeEmail(email) != NormalizeEmail(u.Email) {
		u.EmailVerified = false
	}
	u.Email = email
	return u, ValidateEmail(email)
}

// VerifyEmail is the updater of an admin's verification. EINVALID when the user has no email.
func (u User) VerifyEmail() (User, error) {
	if u.Email == "" {
		return u, apperr.Errorf(apperr.EINVALID, "The user has no email to verify")
	}
	if u.EmailVerified {
		return u, ErrUnchanged
	}
	u.EmailVerified = true
	return u, nil
}

// ErrEmailNotCurrent refuses an admin's verification of an address that is no longer the
// user's: they changed it between the admin's look and the verification.
var ErrEmailNotCurrent = apperr.Errorf(apperr.ECONFLICT, "The user's email is no longer the address named; look again")

// VerifyEmailAddress is the updater of an admin's verification of the address they looked at:
// ErrEmailNotCurrent (ECONFLICT) unless it is the user's email now (in any letter case), so a
// user cannot swap in another address between the look and the verification.
func (u User) VerifyEmailAddress(email string) (User, error) {
	if u.Email == "" || NormalizeEmail(email) != NormalizeEmail(u.Email) {
		return u, ErrEmailNotCurrent
	}
	return u.VerifyEmail()
}

// ErrUnchanged is what an updater returns when it has nothing to change: the store writes
// nothing, and the caller treats it as success.
var ErrUnchanged = errors.New("nothing to change")

// UserStore keeps users.
type UserStore interface {
	// CreateUser stores u. EINVALID when u breaks User.Validate; ECONFLICT when its id is
	// taken (or was a deleted user's) or its username is, in any letter case, by a user or a
	// reservation; ErrEmailTaken (ECONFLICT) when another user or a reservation has its email
	// in any letter case.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user with this id. ENOTFOUND when there is none.
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByName returns the user with this username in any letter case. ENOTFOUND when
	// there is none.
	GetUserByName(ctx context.Context, username string) (User, error)
	// GetUserByEmail returns the user whose email is email in any letter case, verified or
	// not. ENOTFOUND when there is none ("" is nobody's).
	GetUserByEmail(ctx context.Context, email string) (User, error)
	// ListUsers returns a page of users ordered by normalized username: empty, never nil, past
	// the last. EINVALID when opt breaks ListOptions.Validate.
	ListUsers(ctx context.Context, opt ListOptions) ([]User, error)
	// UpdateUser runs fn on the user as stored now and stores its result, in one transaction,
	// and returns what it stored. fn may run more than once; when it returns an error nothing
	// changes and that error is returned. ENOTFOUND when there is no such user (fn is not
	// called); EINVALID when fn's result changes the id or the credential epoch (only
	// ChangeCredentials moves that) or breaks User.Validate; ECONFLICT when it renames the user
	// to a username another user or a reservation has in any letter case; ErrEmailTaken
	// (ECONFLICT) when it sets an email another user or a reservation has in any letter case.
	UpdateUser(ctx context.Context, id string, fn func(User) (User, error)) (User, error)
	// ChangeCredentials is UpdateUser for a change of credentials: in the same transaction it
	// moves the user to the next epoch, revokes every refresh family and ends every session of
	// the user, so nothing made with the old credentials survives it — not even a login racing
	// it. The errors of UpdateUser; when fn fails, no family or session is touched either.
	// keep names sessions or refresh families of the user (by id) that survive the change: the
	// one the user made it from (turning a second factor on ends the user's other sessions). They,
	// and the families bound to a kept session, move to the new epoch in the same transaction;
	// an id that is none of the user's is ignored.
	ChangeCredentials(ctx context.Context, id string, fn func(User) (User, error), keep ...string) (User, error)
	// DeleteUser removes the user, their refresh families with every token hash those issued,
	// their sessions, consents, authorization codes and group memberships, in one transaction;
	// the username and the email stay reserved (ReservedName) until ReleaseUsername, the id for
	// ever (CreateUser refuses it with ECONFLICT). ENOTFOUND when there is no such user.
	DeleteUser(ctx context.Context, id string) error
	// ReleaseUsername frees the reservation of username (any letter case) and the email kept
	// with it, in one transaction, and returns what was reserved. The id stays refused.
	// ENOTFOUND when no reservation has that username.
	ReleaseUsername(ctx context.Context, username string) (ReservedName, error)
}

// ReservedName is what a deleted user leaves behind: their username and email, which nobody
// may take until an admin releases them, because applications behind forward-auth key their
// data on the username (Remote-User) and relying parties on the email, so a newcomer under
// either would inherit the deleted user's data there.
type ReservedName struct {
	Username string // as the deleted user had it
	UserID   string // the deleted user's id (never a user's again)
	Email    string // the deleted user's email, "" for none
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

// KeyStore keeps signing keys. The set is updated as a whole through a pure updater, so a
// rotation reads the set, decides and writes in one transaction (Dex's rotation pattern).
type KeyStore interface {
	// Keys returns every stored key, ordered by ID; empty, never nil, when there is none.
	Keys(ctx context.Context) ([]SigningKey, error)
	// UpdateKeys runs update on the stored keys (ordered by ID) and replaces the stored set by
	// its result — a key left out is deleted — in one transaction, so concurrent updates leave
	// one consistent set. update must be pure: it may run again. When it returns an error
	// nothing changes and that error is returned. EINVALID when the result has a key without
	// an ID or two keys with one ID; nothing changes then either.
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
	Epoch     int64    // the user's credential epoch when the family was made
	CreatedAt time.Time
	ExpiresAt time.Time // absolute: refreshing does not extend it
	Current   string    // hash of the one live token
	Revoked   bool
	AMR       []string // how the user signed in when the family was made, for its access tokens
	IDP       string   `json:",omitempty"` // the connector that sign-in went through ("" for a local account)
	// AuthTime is when the user signed in for the sign-in that made the family: the auth_time
	// of the ID tokens its refreshes issue. Zero for a family made before families kept it.
	AuthTime time.Time `json:",omitzero"`
}

// FamilyStore keeps refresh-token families, indexed by the hashes of every token they issued.
type FamilyStore interface {
	// CreateFamily stores a new family and indexes its live token f.Current, but only if its
	// user still exists with the credential epoch f.Epoch — checked in the same transaction —
	// else ErrStaleCredentials (ECONFLICT). EINVALID when f breaks Family.Validate; ECONFLICT
	// when its id is taken or another family issued f.Current.
	CreateFamily(ctx context.Context, f Family) error
	// UpdateFamilyByToken finds the family that issued the token with hash tokenHash, and its
	// user as stored now (the zero User when the user is gone), and in one transaction stores
	// what step returns — even when step also returns an error, so that a revocation decided by
	// step is kept — and indexes its new Current token; the hashes it issued before still find
	// it. It returns the family as stored and step's error. step may run more than once. ENOTFOUND when no
	// family issued that token. When step returns the zero Family with its error, nothing
	// changes. EINVALID when step's result changes the family's ID or UserID or breaks
	// Family.Validate, ECONFLICT when its Current was issued by another family; nothing changes
	// then.
	UpdateFamilyByToken(ctx context.Context, tokenHash string, step func(Family, User) (Family, error)) (Family, error)
	// ListFamilies returns every stored family of the user — live, revoked or expired, until
	// DeleteDeadFamilies removes them — oldest first (by CreatedAt, then ID); empty, never nil,
	// when there is none.
	ListFamilies(ctx context.Context, userID string) ([]Family, error)
	// RevokeUserFamilies revokes every family of the user, in one transaction. A user without
	// families is not an error.
	RevokeUserFamilies(ctx context.Context, userID string) error
	// DeleteDeadFamilies removes the families dead at now (Family.Dead), with their token
	// hashes, and returns how many it removed.
	DeleteDeadFamilies(ctx context.Context, now time.Time) (int, error)
}

// FamilyGroupsStore is a FamilyStore that is also the GroupStore and reads the owner's groups
// (as GroupStore.UserGroups returns them) in the statement that finds the family: a refresh
// grant, which needs both, then costs the database one round trip less. The groups are those
// of the user as stored when the family was read for the step that was kept; none when step
// refuses.
type FamilyGroupsStore interface {
	UpdateFamilyByTokenWithGroups(ctx context.Context, tokenHash string, step func(Family, User) (Family, error)) (Family, []string, error)
}

// Validate checks a family's invariants before it is stored. EINVALID.
func (f Family) Validate() error {
	if f.ID == "" || f.UserID == "" || f.Current == "" {
		return apperr.Errorf(apperr.EINVALID, "Refresh family: id, user and current token are required")
	}
	if strings.ContainsRune(f.ID, 0) {
		// bbolt's token index ends the id with a NUL; PostgreSQL's text cannot hold one.
		return apperr.Errorf(apperr.EINVALID, "Refresh family: the id may not contain NUL")
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

// Disable is the updater of an admin's disable (run through ChangeCredentials, so the user's
// sessions and families end with it). ErrUnchanged when already disabled.
func (u User) Disable() (User, error) {
	if u.Disabled {
		return u, ErrUnchanged
	}
	u.Disabled = true
	return u, nil
}

// Enable is the updater of an admin's enable. ErrUnchanged when not disabled.
func (u User) Enable() (User, error) {
	if !u.Disabled {
		return u, ErrUnchanged
	}
	u.Disabled = false
	return u, nil
}

// SetAdmin is the updater of granting (true) or revoking (false) the admin flag.
// ErrUnchanged when it is already so.
func (u User) SetAdmin(admin bool) (User, error) {
	if u.Admin == admin {
		return u, ErrUnchanged
	}
	u.Admin = admin
	return u, nil
}

// RecordLogin is the updater of a sign-in: it keeps when the latest happened. It always
// writes, so that the sign-in's audit event is written with it.
func (u User) RecordLogin(at time.Time) (User, error) {
	if at.After(u.LastLoginAt) {
		u.LastLoginAt = at
	}
	return u, nil
}

// Store is every store of the domain, as one backend keeps them: what the IdP serves from, and
// what idp/storetest holds each backend to.
type Store interface {
	UserStore
	KeyStore
	FamilyStore
	SessionStore
	SecretStore
	ClientStore
	CodeStore
	ConsentStore
	AuditStore
	CodeFailureStore
	AuthRequestStore
	GroupStore
	LinkStore
	MailStore
	FederationStore
	DeviceCodeStore
	AssertionStore
	RegistrationTokenStore
}
