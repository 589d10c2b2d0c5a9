// Package auth holds the IdP's use cases, free of HTTP: sign up and log in. Every entry point
// (/auth, the browser login, later /token) goes through these, so the rules live once.
package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/password"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// Users is what the use cases need of the user store.
type Users interface {
	CreateUser(ctx context.Context, u identity.User) error
	UserByName(ctx context.Context, username string) (identity.User, error)
	UserByID(ctx context.Context, id string) (identity.User, error)
	SetPasswordHash(ctx context.Context, id, old, new string) error
}

// Families is what the use cases need of the refresh-token store.
type Families = identity.FamilyStore

// Tokens is a successful login's answer.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int // seconds
	Scope        string
	SessionEnds  time.Time // the refresh family's absolute expiry
}

// Service runs the use cases.
type Service struct {
	Users      Users
	Families   Families
	Hasher     *password.Hasher
	Issuer     *token.Issuer
	Scope      string        // granted to every login
	RefreshTTL time.Duration // a family's absolute lifetime
	Now        func() time.Time
	Random     io.Reader
	Logger     *slog.Logger
	OnLogin    func(outcome string) // metrics: "success", "invalid", "throttled", "error"
	Throttle   *Throttle            // per-account brute-force protection; nil: none
}

// ErrInvalidCredentials is the one answer for a wrong password and an unknown user alike.
var ErrInvalidCredentials = apperr.Errorf(apperr.EUNAUTHORIZED, "Invalid credentials")

// Signup creates an account. EINVALID names the broken rule; ECONFLICT when the username is
// taken in any letter case.
func (s *Service) Signup(ctx context.Context, username, pw string) error {
	if err := identity.ValidateUsername(username); err != nil {
		return err
	}
	// The policy refuses an over-long password before anything hashes it.
	if err := password.CheckPolicy(username, pw); err != nil {
		return err
	}
	hash, err := s.Hasher.Hash(ctx, pw)
	if err != nil {
		return err
	}
	id, err := token.RandomString(s.Random, 16)
	if err != nil {
		return err
	}
	u := identity.User{ID: id, Username: username, PasswordHash: hash, CreatedAt: s.Now().UTC()}
	if err := s.Users.CreateUser(ctx, u); err != nil {
		return err
	}
	s.Logger.InfoContext(ctx, "user created", "sub", id)
	return nil
}

// Login checks a username and password and issues tokens. A wrong password and an unknown user
// both answer ErrInvalidCredentials after the same work (a dummy hash for the unknown user).
func (s *Service) Login(ctx context.Context, username, pw, client string) (Tokens, error) {
	return s.LoginFor(ctx, username, pw, client, s.RefreshTTL)
}

// LoginFor is Login with a refresh family that lives for ttl: a browser session's lifetime.
func (s *Service) LoginFor(ctx context.Context, username, pw, client string, ttl time.Duration) (Tokens, error) {
	tokens, sub, err := s.login(ctx, username, pw, ttl)
	outcome := "success"
	switch apperr.Code(err) {
	case "":
	case apperr.EUNAUTHORIZED:
		outcome = "invalid"
	case apperr.ETHROTTLED:
		outcome = "throttled"
	default:
		outcome = "error"
	}
	if s.OnLogin != nil {
		s.OnLogin(outcome)
	}
	s.Logger.InfoContext(ctx, "login", "outcome", outcome, "sub", sub, "client", client)
	return tokens, err
}

func (s *Service) login(ctx context.Context, username, pw string, ttl time.Duration) (Tokens, string, error) {
	if len(username) > 64 {
		// No such username was ever accepted at signup: refuse without spending a hash on it.
		return Tokens{}, "", ErrInvalidCredentials
	}
	// A locked account is refused before any hashing, the correct password included.
	if err := s.Throttle.Allow(username); err != nil {
		return Tokens{}, "", err
	}
	if len(pw) > password.MaxBytes {
		s.Throttle.Failure(username)
		return Tokens{}, "", ErrInvalidCredentials
	}
	u, err := s.Users.UserByName(ctx, username)
	switch apperr.Code(err) {
	case "":
	case apperr.ENOTFOUND:
		u = identity.User{} // verified against the dummy hash below
	default:
		return Tokens{}, "", err
	}
	ok, rehash, err := s.Hasher.Verify(ctx, u.PasswordHash, pw)
	if err != nil {
		return Tokens{}, u.ID, err
	}
	if !ok {
		s.Throttle.Failure(username)
		return Tokens{}, u.ID, ErrInvalidCredentials
	}
	s.Throttle.Success(username)
	if rehash {
		s.rehash(ctx, u, pw)
	}
	t, err := s.issue(ctx, u, ttl)
	return t, u.ID, err
}

// rehash upgrades a hash made with weaker parameters; a failure only delays the upgrade.
func (s *Service) rehash(ctx context.Context, u identity.User, pw string) {
	h, err := s.Hasher.Hash(ctx, pw)
	if err == nil {
		err = s.Users.SetPasswordHash(ctx, u.ID, u.PasswordHash, h)
	}
	if err != nil {
		s.Logger.WarnContext(ctx, "password rehash skipped", "sub", u.ID, "err", err)
		return
	}
	s.Logger.InfoContext(ctx, "password rehashed with current parameters", "sub", u.ID)
}

// issue makes an access token and starts a refresh family for u.
func (s *Service) issue(ctx context.Context, u identity.User, ttl time.Duration) (Tokens, error) {
	access, err := s.access(u, s.Scope)
	if err != nil {
		return Tokens{}, err
	}
	refresh, hash, err := token.NewRefresh(s.Random)
	if err != nil {
		return Tokens{}, err
	}
	famID, err := token.RandomString(s.Random, 16)
	if err != nil {
		return Tokens{}, err
	}
	now := s.Now().UTC()
	err = s.Families.CreateFamily(ctx, identity.Family{
		ID: famID, UserID: u.ID, ClientID: s.Issuer.ClientID, Scope: s.Scope,
		CreatedAt: now, ExpiresAt: now.Add(ttl), Current: hash,
	})
	if apperr.Code(err) == apperr.EUNAVAILABLE {
		// The disk is failing: the login still succeeds, with an access token and no session to
		// refresh, rather than locking every user out.
		s.Logger.WarnContext(ctx, "login without refresh token: storage unavailable", "sub", u.ID)
		t := s.tokens(access, "", s.Scope)
		t.SessionEnds = s.Now().Add(s.Issuer.TTL)
		return t, nil
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("store refresh family: %w", err)
	}
	t := s.tokens(access, refresh, s.Scope)
	t.SessionEnds = now.Add(ttl)
	return t, nil
}

func (s *Service) access(u identity.User, scope string) (string, error) {
	access, _, err := s.Issuer.Access(token.Subject{ID: u.ID, Username: u.Username}, scope)
	return access, err
}

func (s *Service) tokens(access, refresh, scope string) Tokens {
	return Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(s.Issuer.TTL.Seconds()), Scope: scope}
}

// Refresh spends a refresh token and returns a new access token and the family's next refresh
// token. Every failure — unknown, spent (which revokes the family), revoked, expired, or a user
// who no longer exists — is identity.ErrInvalidGrant to the caller.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	next, nextHash, err := token.NewRefresh(s.Random)
	if err != nil {
		return Tokens{}, err
	}
	presented := token.HashRefresh(refreshToken)
	f, err := s.Families.UpdateFamilyByToken(ctx, presented, func(f identity.Family) (identity.Family, error) {
		return f.Refresh(presented, nextHash, s.Now())
	})
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		s.Logger.InfoContext(ctx, "refresh refused", "reason", "unknown token")
		return Tokens{}, identity.ErrInvalidGrant
	case errors.Is(err, identity.ErrReuse):
		s.Logger.WarnContext(ctx, "refresh token reuse: family revoked", "sub", f.UserID, "family", f.ID)
		return Tokens{}, identity.ErrInvalidGrant
	case apperr.Code(err) == apperr.EUNAUTHORIZED:
		s.Logger.InfoContext(ctx, "refresh refused", "sub", f.UserID, "family", f.ID, "reason", err)
		return Tokens{}, identity.ErrInvalidGrant
	case err != nil:
		return Tokens{}, err
	}
	u, err := s.Users.UserByID(ctx, f.UserID)
	if apperr.Code(err) == apperr.ENOTFOUND {
		s.revoke(ctx, nextHash)
		s.Logger.InfoContext(ctx, "refresh refused", "sub", f.UserID, "reason", "user gone")
		return Tokens{}, identity.ErrInvalidGrant
	}
	if err != nil {
		return Tokens{}, err
	}
	access, err := s.access(u, f.Scope)
	if err != nil {
		return Tokens{}, err
	}
	s.Logger.InfoContext(ctx, "refreshed", "sub", u.ID, "family", f.ID)
	t := s.tokens(access, next, f.Scope)
	t.SessionEnds = f.ExpiresAt
	return t, nil
}

// Revoke ends the family of a refresh token (RFC 7009). Unknown tokens are not an error: the
// answer must not tell whether a token existed.
func (s *Service) Revoke(ctx context.Context, refreshToken string) error {
	return s.revoke(ctx, token.HashRefresh(refreshToken))
}

func (s *Service) revoke(ctx context.Context, hash string) error {
	f, err := s.Families.UpdateFamilyByToken(ctx, hash, func(f identity.Family) (identity.Family, error) { return f.Revoke() })
	if apperr.Code(err) == apperr.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	s.Logger.InfoContext(ctx, "refresh family revoked", "sub", f.UserID, "family", f.ID)
	return nil
}

// ChangePassword checks the current password, sets the new one (which must pass the signup
// policy) and revokes every refresh family of the user, so every other session ends. A wrong
// current password is ErrInvalidCredentials.
func (s *Service) ChangePassword(ctx context.Context, userID, current, next string) error {
	u, err := s.Users.UserByID(ctx, userID)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return ErrInvalidCredentials
	}
	if err != nil {
		return err
	}
	if err := s.Throttle.Allow(u.Username); err != nil {
		return err
	}
	if len(current) > password.MaxBytes {
		s.Throttle.Failure(u.Username)
		return ErrInvalidCredentials
	}
	if err := password.CheckPolicy(u.Username, next); err != nil {
		return err
	}
	ok, _, err := s.Hasher.Verify(ctx, u.PasswordHash, current)
	if err != nil {
		return err
	}
	if !ok {
		s.Throttle.Failure(u.Username)
		s.Logger.InfoContext(ctx, "password change refused", "sub", u.ID, "reason", "wrong current password")
		return ErrInvalidCredentials
	}
	s.Throttle.Success(u.Username)
	hash, err := s.Hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	if err := s.Users.SetPasswordHash(ctx, u.ID, u.PasswordHash, hash); err != nil {
		return err
	}
	if err := s.Families.RevokeUserFamilies(ctx, u.ID); err != nil {
		return fmt.Errorf("revoke sessions after password change: %w", err)
	}
	s.Logger.InfoContext(ctx, "password changed; sessions revoked", "sub", u.ID)
	return nil
}

// CollectGarbage removes dead families every interval until ctx ends, so the store does not
// grow without bound.
func (s *Service) CollectGarbage(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Families.DeleteDeadFamilies(ctx, s.Now())
		if err != nil {
			s.Logger.ErrorContext(ctx, "refresh-family garbage collection", "err", err)
		} else if n > 0 {
			s.Logger.InfoContext(ctx, "refresh families removed", "count", n)
		}
	}
}
