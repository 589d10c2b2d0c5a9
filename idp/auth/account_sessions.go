package auth

import (
	"context"
	"sort"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Kinds of AccountSession.
const (
	SessionKindBrowser = "browser" // a browser session (the IdP's cookie)
	SessionKindRefresh = "refresh" // a refresh-token family
)

// AccountSession is one of a user's ways in, as the user sees it: a live browser session or a
// live refresh family. Its ID is the session's or the family's id — random handles, safe to
// show — never a token or a hash of one.
type AccountSession struct {
	ID        string
	Kind      string // SessionKindBrowser or SessionKindRefresh
	CreatedAt time.Time
	// LastUsedAt is a browser session's LastSeenAt (renewed at most once a minute); zero for a
	// refresh family, which does not record when it was last used.
	LastUsedAt time.Time
	// ClientID is the family's client; identity.FirstPartyClientID for a browser session,
	// which is the IdP's own sign-in.
	ClientID string
	// RemoteAddr and UserAgent are those of the browser session when it was made; a family
	// bound to a live session shows its session's, any other family has none ("").
	RemoteAddr string
	UserAgent  string
	Current    bool // the caller's own session or family, when the caller said which
}

// ErrNoAccountSession is the answer for an id that is not one of the user's sessions or
// families: unknown, or another user's — the two look the same.
var ErrNoAccountSession = apperr.Errorf(apperr.ENOTFOUND, "No such session")

// AccountSessions lists the user's live browser sessions (not pending, Session.Live for the user
// as stored now) and live refresh families (not Family.Dead, of the user's current credential
// epoch), oldest first. currentSessionID and currentFamilyID name the caller's own session or
// family, to mark it Current; "" marks none (an access token names neither). ENOTFOUND when
// the user is gone.
func (s *Account) AccountSessions(ctx context.Context, userID, currentSessionID, currentFamilyID string) ([]AccountSession, error) {
	u, err := s.Users.GetUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	sessions, err := s.Sessions.ListSessions(ctx, userID)
	if err != nil {
		return nil, err
	}
	families, err := s.Families.ListFamilies(ctx, userID)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	out := []AccountSession{}
	live := map[string]identity.Session{}
	for _, sess := range sessions {
		if !sess.Live(u, now) {
			continue
		}
		live[sess.ID] = sess
		out = append(out, AccountSession{
			ID: sess.ID, Kind: SessionKindBrowser, CreatedAt: sess.CreatedAt, LastUsedAt: sess.LastSeenAt,
			ClientID: identity.FirstPartyClientID, RemoteAddr: sess.RemoteAddr, UserAgent: sess.UserAgent,
			Current: currentSessionID != "" && sess.ID == currentSessionID,
		})
	}
	for _, f := range families {
		if f.Dead(now) || f.UserID != u.ID || f.Epoch != u.Epoch {
			continue
		}
		as := AccountSession{ID: f.ID, Kind: SessionKindRefresh, CreatedAt: f.CreatedAt, ClientID: f.ClientID,
			Current: currentFamilyID != "" && f.ID == currentFamilyID}
		if sess, ok := live[f.SessionID]; ok && f.SessionID != "" {
			as.RemoteAddr, as.UserAgent = sess.RemoteAddr, sess.UserAgent
		}
		out = append(out, as)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// EndAccountSession ends one of the user's browser sessions (with the refresh families bound to
// it) or revokes one of their refresh families, by id. ErrNoAccountSession (ENOTFOUND) when id
// is neither of this user — another user's id is answered exactly as an unknown one. Ending
// one already dead is not an error. A browser session's end reaches /verify on every process
// within the session cache's TTL (auth.Sessions.CacheTTL).
func (s *Account) EndAccountSession(ctx context.Context, userID, id string) error {
	if id == "" || userID == "" {
		return ErrNoAccountSession
	}
	sessions, err := s.Sessions.ListSessions(ctx, userID)
	if err != nil {
		return err
	}
	for _, sess := range sessions {
		if sess.ID != id || sess.UserID != userID {
			continue
		}
		ev := s.event(ctx, identity.AuditRevocation, userID, Success, "browser session ended by its user")
		_, err := s.Sessions.EndSession(identity.WithAuditEvents(ctx, ev), id)
		if apperr.Code(err) == apperr.ENOTFOUND {
			return ErrNoAccountSession // ended concurrently: it is gone either way
		}
		if err != nil {
			return err
		}
		LogAudit(ctx, s.Logger, ev)
		return nil
	}
	families, err := s.Families.ListFamilies(ctx, userID)
	if err != nil {
		return err
	}
	for _, f := range families {
		if f.ID != id || f.UserID != userID {
			continue
		}
		// A family already revoked changes nothing and records nothing (revokeWith).
		return s.revokeWith(ctx, f.Current, "revoked by its user", func(f identity.Family) error {
			if f.ID != id || f.UserID != userID {
				return ErrNoAccountSession
			}
			return nil
		})
	}
	return ErrNoAccountSession
}
