package identity

import (
	"context"
	"time"

	"jwtidp/shared/apperr"
)

// Session is a browser's sign-in, held by the IdP: the browser's cookie carries only a random
// secret whose hash is TokenHash. Ending a session (logout, a password change, later a disable
// or a delete) takes effect for every request that resolves it, unlike a token in a cookie.
type Session struct {
	ID         string    // opaque handle, safe to show (the OIDC sid, the account page's id)
	TokenHash  string    // SHA-256 of the cookie's secret; the secret itself is never stored
	UserID     string    //
	Epoch      int64     // the user's credential epoch when the session was made
	AuthTime   time.Time // when the user proved who they are
	AMR        []string  // how: "pwd", later "otp", "hwk"…
	IDP        string    `json:",omitempty"` // the connector the sign-in went through ("" for a local account)
	CreatedAt  time.Time //
	LastSeenAt time.Time // renewed at most once a minute while the session is used
	IdleTTL    time.Duration
	ExpiresAt  time.Time // absolute: using the session does not extend it
	RemoteAddr string    // client address and user agent when it was made, for the account page
	UserAgent  string
	// Pending marks a pre-session: the password was right and a second factor is still owed. It
	// signs nobody in (Live is false); the login's second step turns it into a session.
	Pending bool
	// Clients are the clients that got tokens from this session (an authorization code made
	// from it was redeemed), each once: those with a back-channel logout URI are told when it
	// ends (LogoutMail).
	Clients []string `json:",omitempty"`
}

// Validate checks a session's invariants before it is stored. EINVALID.
func (s Session) Validate() error {
	if s.ID == "" || s.TokenHash == "" || s.UserID == "" || s.ExpiresAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "Session: id, token hash, user and expiry are required")
	}
	return nil
}

// Live reports whether the session may be used at now by u, the user as stored now. A session
// made before the user's credentials last changed is dead, even if its creation raced with the
// change.
func (s Session) Live(u User, now time.Time) bool {
	return !s.Pending && u.ID == s.UserID && u.Epoch == s.Epoch && now.Before(s.ExpiresAt) &&
		(s.IdleTTL <= 0 || now.Before(s.LastSeenAt.Add(s.IdleTTL)))
}

// PendingLive reports whether a pre-session may still be completed at now by u, the user as
// stored now: it is one, of that user and credential epoch, and not expired.
func (s Session) PendingLive(u User, now time.Time) bool {
	return s.Pending && u.ID == s.UserID && u.Epoch == s.Epoch && now.Before(s.ExpiresAt)
}

// Dead is the garbage collector's test, for when the user is not at hand.
func (s Session) Dead(now time.Time) bool {
	return !now.Before(s.ExpiresAt) || (s.IdleTTL > 0 && !now.Before(s.LastSeenAt.Add(s.IdleTTL)))
}

// MaxSessionsPerUser bounds a user's browser sessions: a new one beyond it ends the oldest (and
// its families), so signing in again and again cannot grow the store without bound.
const MaxSessionsPerUser = 50

// MaxPendingPerUser bounds a user's pre-sessions (a right password, a second factor owed) on
// their own: a new one beyond it ends the oldest pre-session. They never count toward
// MaxSessionsPerUser, so half-finished sign-ins by someone who knows the password cannot push the
// owner's sessions out.
const MaxPendingPerUser = 5

// ErrStaleCredentials refuses to make a session or a refresh family for credentials that were
// checked before the user's password changed (a login racing a password change).
var ErrStaleCredentials = apperr.Errorf(apperr.ECONFLICT, "Credentials changed during sign-in")

// SessionStore keeps browser sessions, indexed by the hash of their cookie's secret.
type SessionStore interface {
	// CreateSession stores s, but only if its user still exists with the credential epoch
	// s.Epoch — checked in the same transaction — else ErrStaleCredentials (ECONFLICT). When the
	// user already has MaxSessionsPerUser sessions (MaxPendingPerUser pre-sessions, for a pending
	// s), the oldest of that kind (by CreatedAt) end, with their families, in the same
	// transaction; the other kind is not touched.
	// EINVALID when s breaks Session.Validate; ECONFLICT when its id or token hash is taken.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session with this id. ENOTFOUND when there is none.
	GetSession(ctx context.Context, id string) (Session, error)
	// SessionByToken returns the session whose cookie secret hashes to tokenHash and its user as
	// stored now, read in one transaction. ENOTFOUND when there is no such session or user.
	SessionByToken(ctx context.Context, tokenHash string) (Session, User, error)
	// ListSessions returns every stored session of the user, oldest first (by CreatedAt, then
	// ID); empty, never nil, when there is none.
	ListSessions(ctx context.Context, userID string) ([]Session, error)
	// UpdateSession runs fn on the session as stored now and stores its result, in one
	// transaction, and returns what it stored; a new TokenHash replaces the old one in the index.
	// fn may run more than once; when it returns an error nothing changes and that error is
	// returned. ENOTFOUND when there is no such session (fn is not called); EINVALID when fn's
	// result changes the ID, UserID or Epoch or breaks Session.Validate; ECONFLICT when its
	// TokenHash is another session's.
	UpdateSession(ctx context.Context, id string, fn func(Session) (Session, error)) (Session, error)
	// EndSession deletes the session and revokes every refresh family bound to it, in one
	// transaction, and returns it. ENOTFOUND when there is none.
	EndSession(ctx context.Context, id string) (Session, error)
	// DeleteDeadSessions removes the sessions dead at now (Session.Dead) and returns how many.
	DeleteDeadSessions(ctx context.Context, now time.Time) (int, error)
}

// SecretStore keeps the IdP's own secrets (the key that signs CSRF and device cookies), so
// every process on one store uses the same ones.
type SecretStore interface {
	// Secret returns the secret named name, storing fresh (made by the caller beforehand) if
	// there is none yet; processes racing on the first start all get the one that was stored.
	// The caller owns the returned bytes. EINVALID when there is none yet and fresh is empty.
	Secret(ctx context.Context, name string, fresh []byte) ([]byte, error)
}

// ThrottleCounter is the failed-login count of one throttling key (an account, an address, an
// account from one client): the current window's start and failures, the lockouts since the
// last success, the end of the current lockout, the last spaced attempt, and when it was last
// touched.
type ThrottleCounter struct {
	First, Until, Last, Touched time.Time
	Failures, Lockouts          int
}

// ThrottleStore keeps throttle counters where every process serving the store sees them, so
// that N replicas do not give an attacker N times the guesses.
type ThrottleStore interface {
	// ThrottleCounters returns the counters stored under keys; a key without one is absent.
	ThrottleCounters(ctx context.Context, keys ...string) (map[string]ThrottleCounter, error)
	// UpdateThrottle runs fn on each key's counter as stored now (the zero counter when there
	// is none) and stores what it returns — the zero counter deletes it — for all keys in one
	// transaction. fn may run more than once.
	UpdateThrottle(ctx context.Context, keys []string, fn func(key string, c ThrottleCounter) ThrottleCounter) error
	// DeleteStaleThrottles removes the counters not touched since before and returns how many.
	DeleteStaleThrottles(ctx context.Context, before time.Time) (int, error)
}

// CodeFailureStore keeps, per account, the count of one-time codes (TOTP or recovery) refused
// after a right password, and the end of the account's code-step lockout: one counter per user
// id, shared by every client address and every process serving the store, so that guesses
// spread over many addresses or replicas still add up. Unlike ThrottleStore it lives in every
// backend (bbolt too): only an account whose password was right gets one, so it stays small.
type CodeFailureStore interface {
	// UpdateCodeFailures runs fn on the user's counter as stored now (the zero counter when
	// there is none) and stores what it returns — the zero counter deletes it — in one
	// transaction, and returns what it stored. fn may run more than once; the decision it makes
	// is the one of its last run. The user need not exist.
	UpdateCodeFailures(ctx context.Context, userID string, fn func(ThrottleCounter) ThrottleCounter) (ThrottleCounter, error)
	// DeleteStaleCodeFailures removes the counters not touched since before and returns how
	// many.
	DeleteStaleCodeFailures(ctx context.Context, before time.Time) (int, error)
}
