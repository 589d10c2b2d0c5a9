package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// SessionStore is what browser sessions need of the store.
type SessionStore = identity.SessionStore

// Sessions starts, resolves and ends browser sessions. The cookie holds only a random secret
// (256 bits); the store keeps its hash and the session. Resolving goes through a small cache
// so /verify stays in memory on the hot path; an entry lives at most CacheTTL, which bounds how
// long an ended session (logout, password change) keeps working on another process. Nothing a
// client sends takes a lock that other requests wait on across a store call: the cache's mutex
// guards map operations only.
type Sessions struct {
	Store    SessionStore
	TTL      time.Duration // absolute lifetime
	IdleTTL  time.Duration // ends after this long unused; 0: never
	CacheTTL time.Duration // longest time a resolved session is believed without the store
	Now      func() time.Time
	Random   io.Reader
	Logger   *slog.Logger
	// Users and Clients are read by Bearer, /verify's rule for access tokens; nil Users: no
	// bearer token passes.
	Users   UserReader
	Clients ClientReader
	// Groups are read with the user, for /verify's Remote-Groups and the access rules; nil:
	// nobody is in a group.
	Groups GroupReader

	mu      sync.Mutex
	cache   map[string]cachedSession          // token hash → what it resolved to
	users   map[string]cachedLookup[edgeUser] // sub → the user as the edge sees them
	clients map[string]cachedLookup[bool]     // client id → whether it is allowed at the edge
	gen     uint64                            // moved by every forget, so a read racing it is not cached
}

// Resolved is a live session as /verify needs it.
type Resolved struct {
	SessionID string
	UserID    string
	Username  string
	Epoch     int64 // the user's credential epoch the session was made in
	AuthTime  time.Time
	AMR       []string
	IDP       string    // the connector the sign-in went through ("" for a local account)
	Email     string    // the user's email when verified: /verify's Remote-Email
	Groups    []string  // the user's groups: /verify's Remote-Groups and the access rules' subjects
	ExpiresAt time.Time // the session's absolute end
}

type cachedSession struct {
	r     Resolved
	until time.Time
}

// maxCachedSessions bounds the cache; past it, expired entries go first, then arbitrary ones.
const maxCachedSessions = 100_000

// touchEvery is how stale LastSeenAt may get: the idle timer's resolution, and at most one
// store write per session per this interval.
const touchEvery = time.Minute

// ErrNoSession is every failure to resolve a cookie: unknown, expired, ended, or from before
// the user's credentials changed.
var ErrNoSession = apperr.Errorf(apperr.EUNAUTHORIZED, "No valid session")

// SecretLen is the length of a session cookie's value: 32 random bytes in base64url.
const SecretLen = 43

// ValidSecret reports whether v has the shape of a session secret, so garbage is refused
// without a store read.
func ValidSecret(v string) bool {
	if len(v) != SecretLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	// 43 characters carry 258 bits; the last one may use only the top 4 of its 6.
	return base64URLLastOK(v[SecretLen-1])
}

func base64URLLastOK(c byte) bool {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		if alphabet[i] == c {
			return i&3 == 0
		}
	}
	return false
}

// HashSecret is the form a session secret is stored under (the secret has 256 random bits,
// so a plain SHA-256 suffices).
func HashSecret(secret string) string { return token.HashRefresh(secret) }

// Start makes a session for a, returning the cookie's secret and the session. It fails with
// ErrInvalidCredentials when the user's credentials changed after a was checked.
func (s *Sessions) Start(ctx context.Context, a Authentication, userAgent string) (string, identity.Session, error) {
	return s.start(ctx, a, userAgent, false)
}

// PendingTTL bounds a pre-session: the second step of a login must follow within it.
const PendingTTL = 5 * time.Minute

// StartPending makes a pre-session for a pending Authentication (a right password, a second
// factor owed): it lives in the store, signs nobody in, and lasts PendingTTL. Its cookie's
// secret is returned.
func (s *Sessions) StartPending(ctx context.Context, a Authentication, userAgent string) (string, error) {
	secret, _, err := s.start(ctx, a, userAgent, true)
	return secret, err
}

// Pending returns the pre-session of a cookie's secret and its user as stored now, if it may
// still be completed; ErrNoSession otherwise.
func (s *Sessions) Pending(ctx context.Context, secret string) (identity.Session, identity.User, error) {
	if !ValidSecret(secret) {
		return identity.Session{}, identity.User{}, ErrNoSession
	}
	sess, u, err := s.Store.SessionByToken(ctx, HashSecret(secret))
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return identity.Session{}, identity.User{}, ErrNoSession
	case err != nil:
		return identity.Session{}, identity.User{}, err
	case !sess.PendingLive(u, s.Now()):
		return identity.Session{}, identity.User{}, ErrNoSession
	}
	return sess, u, nil
}

// EndPending removes a pre-session (completed or abandoned). An unknown one is not an error.
func (s *Sessions) EndPending(ctx context.Context, id string) error {
	if _, err := s.Store.EndSession(ctx, id); err != nil && apperr.Code(err) != apperr.ENOTFOUND {
		return err
	}
	return nil
}

func (s *Sessions) start(ctx context.Context, a Authentication, userAgent string, pending bool) (string, identity.Session, error) {
	secret, err := token.RandomString(s.Random, 32)
	if err != nil {
		return "", identity.Session{}, err
	}
	id, err := token.RandomString(s.Random, 16)
	if err != nil {
		return "", identity.Session{}, err
	}
	if len(userAgent) > 256 {
		userAgent = userAgent[:256]
	}
	now := s.Now().UTC()
	sess := identity.Session{
		ID: id, TokenHash: HashSecret(secret), UserID: a.User.ID, Epoch: a.User.Epoch,
		AuthTime: a.AuthTime, AMR: a.AMR, IDP: a.IDP, CreatedAt: now, LastSeenAt: now, IdleTTL: s.IdleTTL,
		ExpiresAt: now.Add(s.TTL), RemoteAddr: requestOf(ctx).clientIP, UserAgent: userAgent, Pending: pending,
	}
	if pending {
		sess.IdleTTL, sess.ExpiresAt = 0, now.Add(PendingTTL)
	} else if !a.NotAfter.IsZero() && a.NotAfter.Before(sess.ExpiresAt) {
		sess.ExpiresAt = a.NotAfter
	}
	if err := s.Store.CreateSession(ctx, sess); err != nil {
		if errors.Is(err, identity.ErrStaleCredentials) {
			s.Logger.WarnContext(ctx, "session refused: credentials changed during sign-in", "sub", a.User.ID)
			return "", identity.Session{}, ErrInvalidCredentials
		}
		return "", identity.Session{}, err
	}
	if pending {
		s.Logger.InfoContext(ctx, "pre-session started: second factor owed", "sub", a.User.ID)
	} else {
		s.Logger.InfoContext(ctx, "session started", "sub", a.User.ID, "sid", id)
	}
	return secret, sess, nil
}

// Resolve returns the live session of a cookie's secret, from the cache when it was resolved
// less than CacheTTL ago. ErrNoSession when there is none.
func (s *Sessions) Resolve(ctx context.Context, secret string) (Resolved, error) {
	if !ValidSecret(secret) {
		return Resolved{}, ErrNoSession
	}
	hash := HashSecret(secret)
	now := s.Now()
	s.mu.Lock()
	c, ok := s.cache[hash]
	s.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.r, nil
	}
	sess, u, err := s.Store.SessionByToken(ctx, hash)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return Resolved{}, ErrNoSession
	}
	if err != nil {
		return Resolved{}, err
	}
	if !sess.Live(u, now) {
		return Resolved{}, ErrNoSession
	}
	if s.IdleTTL > 0 && now.Sub(sess.LastSeenAt) >= touchEvery {
		_, err := s.Store.UpdateSession(ctx, sess.ID, touch(now.UTC()))
		if err != nil && !errors.Is(err, identity.ErrUnchanged) && apperr.Code(err) != apperr.ENOTFOUND {
			// The session still works; only its idle timer is not renewed this time.
			s.Logger.WarnContext(ctx, "session last-seen not updated", "sid", sess.ID, "err", err)
		}
	}
	groups, err := groupsOf(ctx, s.Groups, u.ID)
	if err != nil {
		return Resolved{}, err
	}
	r := Resolved{SessionID: sess.ID, UserID: u.ID, Username: u.Username, Epoch: sess.Epoch, AuthTime: sess.AuthTime, AMR: sess.AMR, IDP: sess.IDP,
		Email: verifiedEmail(u), Groups: groups, ExpiresAt: sess.ExpiresAt}
	until := now.Add(s.CacheTTL)
	if sess.ExpiresAt.Before(until) {
		until = sess.ExpiresAt
	}
	s.remember(hash, cachedSession{r: r, until: until}, now)
	return r, nil
}

// touch is the updater that renews a session's idle timer: LastSeenAt only ever moves forward,
// so a slow request cannot set it back behind a later one, and an earlier time writes nothing.
func touch(at time.Time) func(identity.Session) (identity.Session, error) {
	return func(sess identity.Session) (identity.Session, error) {
		if !at.After(sess.LastSeenAt) {
			return sess, identity.ErrUnchanged
		}
		sess.LastSeenAt = at
		return sess, nil
	}
}

func (s *Sessions) remember(hash string, c cachedSession, now time.Time) {
	if s.CacheTTL <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]cachedSession{}
	}
	if len(s.cache) >= maxCachedSessions {
		for k, v := range s.cache {
			if !now.Before(v.until) || len(s.cache) >= maxCachedSessions*9/10 {
				delete(s.cache, k)
			}
		}
	}
	s.cache[hash] = c
}

// End ends the session of a cookie's secret and every refresh family bound to it. An unknown
// secret is not an error: there is nothing to end.
func (s *Sessions) End(ctx context.Context, secret string) error {
	if !ValidSecret(secret) {
		return nil
	}
	hash := HashSecret(secret)
	s.mu.Lock()
	delete(s.cache, hash)
	s.mu.Unlock()
	sess, _, err := s.Store.SessionByToken(ctx, hash)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	ev := Event(ctx, s.Now(), identity.AuditRevocation, sess.UserID, Success, "browser session ended: signed out")
	_, err = s.Store.EndSession(identity.WithAuditEvents(ctx, ev), sess.ID)
	switch {
	case err == nil:
		LogAudit(ctx, s.Logger, ev)
	case apperr.Code(err) != apperr.ENOTFOUND:
		return err
	}
	// Again: a Resolve racing this End may have cached the session in between.
	s.mu.Lock()
	delete(s.cache, hash)
	s.mu.Unlock()
	s.Logger.InfoContext(ctx, "session ended", "sub", sess.UserID, "sid", sess.ID)
	return nil
}

// ForgetUser drops this process's cached sessions of the user and its cached state for bearer
// tokens (Bearer), so that an admin's disable, logout or delete stops them at /verify on the
// process that did it at once (other processes within CacheTTL); so that a change of their
// groups does too. It walks the cache under its mutex: admin actions are rare.
func (s *Sessions) ForgetUser(userID string) {
	s.forget(func(r Resolved) bool { return r.UserID == userID })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	delete(s.users, userID)
}

// ForgetGroup drops this process's cached sessions and bearer users of the group's members, so
// that deleting it reaches /verify here at once (other processes within CacheTTL).
func (s *Sessions) ForgetGroup(name string) {
	s.forget(func(r Resolved) bool { return slices.Contains(r.Groups, name) })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	for id, c := range s.users {
		if slices.Contains(c.v.Groups, name) {
			delete(s.users, id)
		}
	}
}

// ForgetSession drops this process's cached resolution of the session id, so that a session
// its user ended from another browser stops at /verify here at once (other processes within
// CacheTTL).
func (s *Sessions) ForgetSession(id string) {
	s.forget(func(r Resolved) bool { return r.SessionID == id })
}

// forget drops the cached sessions that match.
func (s *Sessions) forget(match func(Resolved) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.cache {
		if match(c.r) {
			delete(s.cache, k)
		}
	}
}

// CollectGarbage removes dead sessions every interval until ctx ends.
func (s *Sessions) CollectGarbage(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Store.DeleteDeadSessions(ctx, s.Now())
		if err != nil {
			s.Logger.ErrorContext(ctx, "session garbage collection", "err", err)
		} else if n > 0 {
			s.Logger.InfoContext(ctx, "sessions removed", "count", n)
		}
	}
}
