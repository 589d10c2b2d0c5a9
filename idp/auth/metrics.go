package auth

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"jwtidp/idp/identity"
)

// LiveSessions is the number of live browser sessions, for a gauge. A scrape reads the last
// count and never the store: when that count is older than every (on the service's clock), the
// scrape asks Run, in the background, for a new one, so the store is counted at most once per
// every, and only while someone scrapes. The count is of the whole store — every replica's
// sessions; it walks every user (identity.MaxListLimit a page) and their sessions, which every
// bounds the cost of.
type LiveSessions struct {
	users    identity.UserStore
	sessions identity.SessionStore
	now      func() time.Time
	every    time.Duration
	logger   *slog.Logger

	n    atomic.Int64
	next atomic.Int64 // UnixNano before which no count is made
	kick chan struct{}
}

// NewLiveSessions returns a gauge's source; Run must run for it to count.
func NewLiveSessions(users identity.UserStore, sessions identity.SessionStore, now func() time.Time, every time.Duration, logger *slog.Logger) *LiveSessions {
	return &LiveSessions{users: users, sessions: sessions, now: now, every: every, logger: logger, kick: make(chan struct{}, 1)}
}

// Value is the last count (0 before the first), asking for a new one when it is due.
func (l *LiveSessions) Value() float64 {
	if l.now().UnixNano() >= l.next.Load() {
		select {
		case l.kick <- struct{}{}:
		default: // one is asked for already
		}
	}
	return float64(l.n.Load())
}

// Run counts when Value asks, until ctx ends; a failed count keeps the last one and is logged.
func (l *LiveSessions) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
		now := l.now()
		if now.UnixNano() < l.next.Load() {
			continue
		}
		l.next.Store(now.Add(l.every).UnixNano())
		n, err := l.count(ctx, now)
		switch {
		case err == nil:
			l.n.Store(int64(n))
		case ctx.Err() == nil:
			l.logger.ErrorContext(ctx, "counting live sessions", "err", err)
		}
	}
}

func (l *LiveSessions) count(ctx context.Context, now time.Time) (int, error) {
	n, after := 0, ""
	for {
		users, err := l.users.ListUsers(ctx, identity.ListOptions{After: after, Limit: identity.MaxListLimit})
		if err != nil || len(users) == 0 {
			return n, err
		}
		for _, u := range users {
			ss, err := l.sessions.ListSessions(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, s := range ss {
				if s.Live(u, now) {
					n++
				}
			}
		}
		after = users[len(users)-1].Username
	}
}
