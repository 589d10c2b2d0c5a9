package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"jwtidp/idp/auth"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// AccountSessions is what a user's own session routes need of the use cases.
type AccountSessions interface {
	AccountSessions(ctx context.Context, userID, currentSessionID, currentFamilyID string) ([]auth.AccountSession, error)
	EndAccountSession(ctx context.Context, userID, id string) error
}

// AccountSessionInfo is one entry of GET /account/sessions. LastUsedAt is null for a refresh
// family, which does not record its last use; IP and UserAgent are "" when unknown.
type AccountSessionInfo struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ClientID   string     `json:"client_id"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
	Current    bool       `json:"current"`
}

// AccountSessionList is GET /account/sessions's answer.
type AccountSessionList struct {
	Sessions []AccountSessionInfo `json:"sessions"`
}

func handleAccountSessions(logger *slog.Logger, svc AccountSessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := jwtauth.FromContext(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		// The token's sid names the browser session or refresh family it came from: that entry
		// is the caller's own (none for a token without one, such as an admin credential).
		list, err := svc.AccountSessions(r.Context(), c.Subject, c.Sid, c.Sid)
		switch apperr.Code(err) {
		case "":
		case apperr.ENOTFOUND:
			invalidToken(w) // a deleted user's token
			return
		default:
			web.Error(w, r, logger, err)
			return
		}
		out := AccountSessionList{Sessions: make([]AccountSessionInfo, 0, len(list))}
		for _, s := range list {
			info := AccountSessionInfo{ID: s.ID, Kind: s.Kind, CreatedAt: s.CreatedAt.UTC(), ClientID: s.ClientID,
				IP: s.RemoteAddr, UserAgent: s.UserAgent, Current: s.Current}
			if !s.LastUsedAt.IsZero() {
				t := s.LastUsedAt.UTC()
				info.LastUsedAt = &t
			}
			out.Sessions = append(out.Sessions, info)
		}
		web.WriteJSON(w, http.StatusOK, out)
	})
}

// handleEndAccountSession is DELETE /account/sessions/{id}; this process's session cache
// forgets the session at once (sessions may be nil in tests without one).
func handleEndAccountSession(logger *slog.Logger, svc AccountSessions, sessions *auth.Sessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := jwtauth.FromContext(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		if err := svc.EndAccountSession(r.Context(), c.Subject, r.PathValue("id")); err != nil {
			web.Error(w, r, logger, err)
			return
		}
		if sessions != nil {
			sessions.ForgetSession(r.PathValue("id"))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
