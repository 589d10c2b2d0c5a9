package identity

import (
	"context"
	"time"

	"jwtidp/shared/apperr"
)

// AuditEvent is one security event of the audit trail: what happened, to whom, by whom, from
// where, how it ended, and a short detail. Never a password, code, secret or token.
type AuditEvent struct {
	ID       int64     // assigned by the store when it is written: increasing, never reused
	Time     time.Time // when it happened, by the IdP's clock
	Type     string    // one of the Audit* types
	UserID   string    // whom it is about (a sub); "" when nobody (a key rotation, an unknown username)
	Actor    string    // who did it: "user:<sub>", "admin-token", "system", "client:<id>" or "anonymous"
	ClientIP string    // the address the request came from; "" for the IdP's own work
	Outcome  string    // "success" or "failure"
	Detail   string    // short, human-readable, no secret
}

// The audit event types: the security events API.md lists.
const (
	AuditSignup              = "signup"
	AuditInvitationCreated   = "invitation_created"    // by an admin
	AuditInvitationDeleted   = "invitation_deleted"    // by an admin
	AuditLogin               = "login"                 // outcome success or failure
	AuditLockout             = "lockout"               // a login refused by the brute-force throttle
	AuditSecondFactorFailure = "second_factor_failure" // a one-time code given and refused
	AuditRefreshReuse        = "refresh_reuse"         // a spent refresh token presented again: its family revoked
	AuditRevocation          = "revocation"            // a refresh family or browser session ended on request
	AuditPasswordChange      = "password_change"
	AuditPasswordResetAsked  = "password_reset_requested" // a reset link made: mailed, or printed for an admin
	AuditPasswordReset       = "password_reset"           // a new password chosen through a reset link
	AuditSecondFactorAdded   = "second_factor_added"
	AuditSecondFactorRemoved = "second_factor_removed"
	AuditEmailChange         = "email_change"
	AuditUserDisabled        = "user_disabled"
	AuditUserEnabled         = "user_enabled"
	AuditUserLogout          = "user_logout" // an admin ended every session and family of a user
	AuditUserDeleted         = "user_deleted"
	AuditUsernameReleased    = "username_released" // by an admin: a deleted user's username and email free again
	AuditAdminGranted        = "admin_granted"
	AuditAdminRevoked        = "admin_revoked"
	AuditSecondFactorsReset  = "second_factors_reset" // by an admin
	AuditEmailVerified       = "email_verified"       // by an admin
	AuditClientCreated       = "client_created"
	AuditClientUpdated       = "client_updated" // by the clients file, at start
	AuditClientDeleted       = "client_deleted"
	AuditKeyRotated          = "key_rotated"
	AuditKeyRevoked          = "key_revoked"
	AuditConfigReloaded      = "config_reloaded" // the configuration file re-read (SIGHUP, POST /admin/reload)
	AuditConfigRefused       = "config_refused"  // a reload refused: the running configuration stays
	AuditGroupCreated        = "group_created"
	AuditGroupDeleted        = "group_deleted"
	AuditGroupMemberAdded    = "group_member_added"   // the event's user is the member
	AuditGroupMemberRemoved  = "group_member_removed" // the event's user is the member
	AuditFederationLinked    = "federation_linked"    // an upstream identity linked to a local account
	// An initial access token for client registration (RFC 7591) minted by an admin.
	AuditRegistrationTokenCreated = "registration_token_created"
)

// MaxAuditDetail bounds an event's detail, in bytes.
const MaxAuditDetail = 512

// Validate checks an event before it is stored: a time and a type. EINVALID.
func (e AuditEvent) Validate() error {
	if e.Time.IsZero() || e.Type == "" {
		return apperr.Errorf(apperr.EINVALID, "Audit event: time and type are required")
	}
	if len(e.Detail) > MaxAuditDetail {
		return apperr.Errorf(apperr.EINVALID, "Audit event: detail over %d bytes", MaxAuditDetail)
	}
	return nil
}

// AuditQuery selects events, newest first (by ID).
type AuditQuery struct {
	UserID string    // only this user's; "" for all
	Type   string    // only this type; "" for all
	Since  time.Time // only events at or after it; zero for all
	Before int64     // only events with a smaller ID (the next page); 0 for none
	Limit  int       // 1..MaxListLimit
}

// Validate refuses a page size outside 1..MaxListLimit. EINVALID.
func (q AuditQuery) Validate() error {
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return apperr.Errorf(apperr.EINVALID, "limit must be a whole number from 1 to %d", MaxListLimit)
	}
	return nil
}

// AuditStore keeps the audit trail.
//
// Besides AppendAudit, every write method of every store of this package (users, families,
// sessions, keys, clients, codes, consents, throttle counters) writes the audit events of its
// context (WithAudit) in its own transaction, after the change and only when the transaction
// commits: a change and the event that records it are kept together or not at all. A method
// that finds nothing to change (ErrUnchanged) or fails writes no event; a decision an updater
// reports as an error but the store keeps (a refresh family revoked on reuse) keeps its events.
// The messages of the context (WithMail) are written alongside, on the same terms (MailStore).
type AuditStore interface {
	// AppendAudit writes events that record no other change (a failed login, a lockout), in one
	// transaction, assigning their IDs in order, with the messages of the context (WithMail; a
	// reset asked for an unknown address, say). EINVALID when an event breaks
	// AuditEvent.Validate or a message Mail.Validate; nothing is written then.
	AppendAudit(ctx context.Context, events ...AuditEvent) error
	// ListAudit returns the events q selects, newest first; empty, never nil, when none.
	// EINVALID when q breaks AuditQuery.Validate.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	// DeleteAuditBefore removes the events older than t and returns how many.
	DeleteAuditBefore(ctx context.Context, t time.Time) (int, error)
}

type auditKey struct{}

// WithAudit returns ctx carrying events for the next store write made with it: events is
// called inside that write's transaction, after the write's updater ran for the last time,
// and what it returns is written with the change (see AuditStore). Events from an updater's
// decision are reported through variables the updater sets on every run and events reads.
// A write with a context carrying none writes no event; WithAudit replaces what ctx carried.
func WithAudit(ctx context.Context, events func() []AuditEvent) context.Context {
	return context.WithValue(ctx, auditKey{}, events)
}

// WithAuditEvents is WithAudit for events known before the write.
func WithAuditEvents(ctx context.Context, events ...AuditEvent) context.Context {
	return WithAudit(ctx, func() []AuditEvent { return events })
}

// AuditEventsOf is what a store writes with a change made with ctx: the events WithAudit put
// there (nil for none). Stores call it inside the transaction, once fn has run; an event it
// returns that breaks Validate fails the write (EINVALID), so a change is never kept without
// the record of it.
func AuditEventsOf(ctx context.Context) ([]AuditEvent, error) {
	f, _ := ctx.Value(auditKey{}).(func() []AuditEvent)
	if f == nil {
		return nil, nil
	}
	events := f()
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return nil, err
		}
	}
	return events, nil
}
