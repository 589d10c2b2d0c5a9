package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/web"
)

// AuditTrail is what GET /admin/audit needs of the use cases.
type AuditTrail interface {
	AuditEvents(ctx context.Context, q identity.AuditQuery) ([]identity.AuditEvent, error)
	AdminUserByName(ctx context.Context, username string) ([]identity.User, error)
}

// AuditEventInfo is an audit event as GET /admin/audit shows it.
type AuditEventInfo struct {
	ID       int64     `json:"id"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	User     string    `json:"user"` // a sub, "" for none
	Actor    string    `json:"actor"`
	ClientIP string    `json:"client_ip"`
	Outcome  string    `json:"outcome"`
	Detail   string    `json:"detail"`
}

// AuditPage is GET /admin/audit's result: events newest first, and the before of the next page.
type AuditPage struct {
	Events []AuditEventInfo `json:"events"`
	Next   int64            `json:"next,omitempty"`
}

// handleAudit is GET /admin/audit: ?user= (a sub or a username; a deleted user's sub still
// finds their events), type=, since= (RFC 3339, or a duration back from now such as 24h),
// before= (an event id: the next page), limit= (1 to 1000, default 100).
func handleAudit(logger *slog.Logger, svc AuditTrail, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := auditQuery(r, svc, now)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		events, err := svc.AuditEvents(r.Context(), q)
		if err != nil {
			web.Error(w, r, logger, err)
			return
		}
		page := AuditPage{Events: make([]AuditEventInfo, 0, len(events))}
		for _, e := range events {
			page.Events = append(page.Events, AuditEventInfo{ID: e.ID, Time: e.Time.UTC(), Type: e.Type, User: e.UserID,
				Actor: e.Actor, ClientIP: e.ClientIP, Outcome: e.Outcome, Detail: e.Detail})
		}
		if len(events) == q.Limit {
			page.Next = events[len(events)-1].ID
		}
		w.Header().Set("Cache-Control", "no-store")
		web.Success(w, http.StatusOK, page)
	})
}

func auditQuery(r *http.Request, svc AuditTrail, now func() time.Time) (identity.AuditQuery, error) {
	v := r.URL.Query()
	q := identity.AuditQuery{Type: v.Get("type"), Limit: 100}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, apperr.Errorf(apperr.EINVALID, "limit must be a whole number from 1 to %d", identity.MaxListLimit)
		}
		q.Limit = n
	}
	if s := v.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return q, apperr.Errorf(apperr.EINVALID, "before must be an event id (a whole number from 1)")
		}
		q.Before = n
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			d, derr := time.ParseDuration(s)
			if derr != nil || d < 0 {
				return q, apperr.Errorf(apperr.EINVALID, "since must be a time (RFC 3339, 2026-01-02T15:04:05Z) or a duration back from now (24h)")
			}
			t = now().Add(-d)
		}
		q.Since = t.UTC()
	}
	if user := v.Get("user"); user != "" {
		// A sub with events is that sub, even a deleted user's whose username someone has
		// taken since (a username may look like a sub); else a username or a live user's sub.
		q.UserID = user
		has, err := svc.AuditEvents(r.Context(), identity.AuditQuery{UserID: user, Limit: 1})
		if err != nil {
			return q, err
		}
		if len(has) > 0 {
			return q, nil
		}
		users, err := svc.AdminUserByName(r.Context(), user)
		if err != nil {
			return q, err
		}
		if len(users) == 1 {
			q.UserID = users[0].ID
		}
	}
	return q, nil
}
