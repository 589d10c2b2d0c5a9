package auth

import (
	"context"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// The edge's bearer rule. A signed, unexpired access token is not enough to pass /verify: a
// relying party's token is for that party alone, a client's own token names no person, and a
// disabled or deleted user's token outlives them. So /verify asks which client the token was
// issued to and whether its user is still active — through the same short cache as the
// sessions, so the hot path stays in memory and a disable reaches every process within
// CacheTTL (at once on the process that did it: ForgetUser).

// UserReader is what the edge needs of the user store.
type UserReader interface {
	GetUser(ctx context.Context, id string) (identity.User, error)
}

// ClientReader is what the edge needs of the client store.
type ClientReader interface {
	GetClient(ctx context.Context, id string) (identity.Client, error)
}

// ErrNotForEdge refuses at /verify a token that verified but may not pass there: issued to a
// client not allowed at the edge, naming no user, or whose user is disabled or gone.
var ErrNotForEdge = apperr.Errorf(apperr.EUNAUTHORIZED, "The access token may not pass forward-auth")

// edgeUser is what the edge remembers of a user: zero when there is none or they are disabled.
type edgeUser struct {
	ID, Username string
	Email        string // when verified
	Groups       []string
}

// verifiedEmail is u's email when it is verified: what the edge may vouch for (Remote-Email).
func verifiedEmail(u identity.User) string {
	if !u.EmailVerified {
		return ""
	}
	return u.Email
}

type cachedLookup[V any] struct {
	v     V
	until time.Time // believed without the store until then; kept after, for a store outage
	read  time.Time // when the store said so
}

// OutageGrace bounds how old an answer the edge may go by while the store cannot be read: a
// disabled user's token is refused at the latest this long after the last successful read, even
// through an outage; past it (or with no answer at all) the edge refuses.
const OutageGrace = time.Minute

// Bearer decides whether an access token (already verified) of client clientID for subject sub
// passes forward-auth: the client is the first-party one or registered with ForwardAuth, sub is
// a user and not the client itself, and the user exists and is not disabled. It returns the
// user as /verify names them (the stored username: a relying party's token carries
// preferred_username only with scope profile), with their verified email and their groups. ErrNotForEdge otherwise. When the store cannot
// be read, the last answer this process had is used if it is under OutageGrace old; else the
// store's error is returned.
func (s *Sessions) Bearer(ctx context.Context, clientID, sub string) (Resolved, error) {
	if sub == "" || sub == clientID || s.Users == nil {
		return Resolved{}, ErrNotForEdge
	}
	if clientID != identity.FirstPartyClientID {
		ok, err := s.edgeClient(ctx, clientID)
		if err != nil {
			return Resolved{}, err
		}
		if !ok {
			return Resolved{}, ErrNotForEdge
		}
	}
	u, err := s.edgeUser(ctx, sub)
	if err != nil {
		return Resolved{}, err
	}
	if u.ID == "" {
		return Resolved{}, ErrNotForEdge
	}
	return Resolved{UserID: u.ID, Username: u.Username, Email: u.Email, Groups: u.Groups}, nil
}

func (s *Sessions) edgeUser(ctx context.Context, sub string) (edgeUser, error) {
	return lookup(s, ctx, &s.users, sub, func() (edgeUser, error) {
		u, err := s.Users.GetUser(ctx, sub)
		switch {
		case apperr.Code(err) == apperr.ENOTFOUND:
			return edgeUser{}, nil
		case err != nil:
			return edgeUser{}, err
		case u.Disabled:
			return edgeUser{}, nil
		}
		groups, err := groupsOf(ctx, s.Groups, u.ID)
		if err != nil {
			return edgeUser{}, err
		}
		return edgeUser{ID: u.ID, Username: u.Username, Email: verifiedEmail(u), Groups: groups}, nil
	})
}

func (s *Sessions) edgeClient(ctx context.Context, id string) (bool, error) {
	if s.Clients == nil {
		return false, nil
	}
	return lookup(s, ctx, &s.clients, id, func() (bool, error) {
		c, err := s.Clients.GetClient(ctx, id)
		switch {
		case apperr.Code(err) == apperr.ENOTFOUND || apperr.Code(err) == apperr.EINVALID:
			return false, nil
		case err != nil:
			return false, err
		}
		return c.ForwardAuth, nil
	})
}

// lookup answers key from the cache m while its entry is fresh, else from read, remembering
// the answer for CacheTTL — unless a forget ran during the read, whose answer may be older than
// the forget. A read that fails falls back on the entry read within OutageGrace.
func lookup[V any](s *Sessions, ctx context.Context, m *map[string]cachedLookup[V], key string, read func() (V, error)) (V, error) {
	now := s.Now()
	s.mu.Lock()
	c, ok := (*m)[key]
	gen := s.gen
	s.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.v, nil
	}
	v, err := read()
	if err != nil {
		if ok && now.Before(c.read.Add(OutageGrace)) {
			s.Logger.WarnContext(ctx, "forward-auth: store unreadable, last known answer used", "err", err)
			return c.v, nil
		}
		return v, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return v, nil
	}
	if *m == nil {
		*m = map[string]cachedLookup[V]{}
	}
	if len(*m) >= maxCachedSessions {
		for k, e := range *m {
			if !now.Before(e.until) || len(*m) >= maxCachedSessions*9/10 {
				delete(*m, k)
			}
		}
	}
	// With CacheTTL 0 the entry is never fresh: it only serves a store outage.
	(*m)[key] = cachedLookup[V]{v: v, until: now.Add(s.CacheTTL), read: now}
	return v, nil
}

// ForgetClient drops this process's cached edge decision about the client, so that a change to
// it (a deletion) takes effect here at once (other processes within CacheTTL).
func (s *Sessions) ForgetClient(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	delete(s.clients, id)
}
