package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/shared/jwtauth"
)

// SessionConfig shapes the browser session cookie.
type SessionConfig struct {
	CookieName string        // "jwtidp_session"
	Domain     string        // optional parent domain, so app.example.com and login.example.com share it
	Secure     bool          // set when the issuer is https
	TTL        time.Duration // the session's absolute lifetime
}

// The cookie holds the session's access token and its refresh token, separated by "~" (a
// character neither can contain). /verify checks the access token without touching the store
// and only uses the refresh token when the access token no longer passes.
const cookieSep = "~"

func splitSession(v string) (access, refresh string) {
	access, refresh, _ = strings.Cut(v, cookieSep)
	return access, refresh
}

func (c SessionConfig) cookie(value string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{
		Name: c.CookieName, Value: value, Path: "/", Domain: c.Domain,
		HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(maxAge.Seconds()),
	}
	if maxAge <= 0 {
		ck.MaxAge = -1
	}
	return ck
}

// sessions verifies session cookies and renews them, at most once per refresh token: the
// browser's parallel requests for one page all reach /verify with the same expired cookie, and
// spending the refresh token once per request would look like reuse and end the session. So
// the first renewal's answer is remembered for a short grace period and handed to the others.
type sessions struct {
	cfg      SessionConfig
	svc      *auth.Service
	verifier *jwtauth.Verifier
	logger   *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	renewed   map[string]renewal // presented cookie value → its replacement
	lastPrune time.Time
}

type renewal struct {
	value  string
	ends   time.Time
	claims *jwtauth.Claims
	until  time.Time
}

const renewalGrace = 30 * time.Second

func newSessions(cfg SessionConfig, svc *auth.Service, v *jwtauth.Verifier, logger *slog.Logger, now func() time.Time) *sessions {
	return &sessions{cfg: cfg, svc: svc, verifier: v, logger: logger, now: now, renewed: map[string]renewal{}}
}

// check returns the claims of a session cookie's value and, when it had to be renewed, the
// cookie to set. An error means there is no valid session.
func (s *sessions) check(ctx context.Context, value string) (*jwtauth.Claims, *http.Cookie, error) {
	access, refresh := splitSession(value)
	claims, err := s.verifier.Verify(ctx, access)
	if err == nil || refresh == "" {
		return claims, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if r, ok := s.renewed[value]; ok && now.Before(r.until) {
		return r.claims, s.cfg.cookie(r.value, r.ends.Sub(now)), nil
	}
	t, err := s.svc.Refresh(ctx, refresh)
	if err != nil {
		return nil, nil, err
	}
	claims, err = s.verifier.Verify(ctx, t.AccessToken)
	if err != nil {
		return nil, nil, err
	}
	next := t.AccessToken + cookieSep + t.RefreshToken
	if now.Sub(s.lastPrune) > renewalGrace {
		for k, r := range s.renewed {
			if !now.Before(r.until) {
				delete(s.renewed, k)
			}
		}
		s.lastPrune = now
	}
	s.renewed[value] = renewal{value: next, ends: t.SessionEnds, claims: claims, until: now.Add(renewalGrace)}
	return claims, s.cfg.cookie(next, t.SessionEnds.Sub(now)), nil
}
