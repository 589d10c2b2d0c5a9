package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
	"jwtidp/shared/clientip"
)

type requestKey struct{}

// request is who and where a request comes from, for the audit trail.
type request struct {
	clientIP string
	actor    string
}

func requestOf(ctx context.Context) request {
	r, _ := ctx.Value(requestKey{}).(request)
	return r
}

// ClientIP is the client's address WithClientIP put in ctx ("" when none).
func ClientIP(ctx context.Context) string { return requestOf(ctx).clientIP }

// WithClientIP returns ctx naming the address a request came from, for the audit events the
// use cases record (the HTTP layer sets it on every request).
func WithClientIP(ctx context.Context, ip string) context.Context {
	r := requestOf(ctx)
	r.clientIP = ip
	return context.WithValue(ctx, requestKey{}, r)
}

// remoteKey is the throttling key of the address in ctx (WithClientIP): the address, or its /64
// for IPv6.
func remoteKey(ctx context.Context) string { return clientip.Key(requestOf(ctx).clientIP) }

// WithActor returns ctx naming who acts, when it is not the user the event is about: an
// administrator ("admin-token", "user:<sub>"), a client ("client:<id>") or the IdP itself
// ("system").
func WithActor(ctx context.Context, actor string) context.Context {
	r := requestOf(ctx)
	r.actor = actor
	return context.WithValue(ctx, requestKey{}, r)
}

// unproven is ctx for an event whose actor has not proved who they are (a refused sign-in, a
// spent refresh token presented again): anonymous, unless ctx names an actor already.
func unproven(ctx context.Context) context.Context {
	if requestOf(ctx).actor != "" {
		return ctx
	}
	return WithActor(ctx, ActorAnonymous)
}

// Actors of the audit trail.
const (
	ActorAdminToken = "admin-token" // the static --admin-token
	ActorSystem     = "system"      // the IdP's own schedule
	ActorAnonymous  = "anonymous"   // nobody signed in (a failed login of an unknown user)
)

// UserActor is the actor an access token or session of the user sub names.
func UserActor(sub string) string { return "user:" + sub }

// ClientActor is the actor of a registered client's request at the token or revocation
// endpoint (authenticated, or a public client named by its id with its PKCE proof).
func ClientActor(id string) string { return "client:" + id }

// Event is an audit event of type typ about userID, stamped with now and the request in ctx:
// its actor is ctx's (WithActor), else the user themself, else anonymous.
func Event(ctx context.Context, now time.Time, typ, userID, outcome, detail string) identity.AuditEvent {
	r := requestOf(ctx)
	actor := r.actor
	switch {
	case actor != "":
	case userID != "":
		actor = UserActor(userID)
	default:
		actor = ActorAnonymous
	}
	if len(detail) > identity.MaxAuditDetail {
		cut := identity.MaxAuditDetail
		for cut > 0 && !utf8.RuneStart(detail[cut]) {
			cut--
		}
		detail = detail[:cut]
	}
	return identity.AuditEvent{Time: now.UTC(), Type: typ, UserID: userID, Actor: actor, ClientIP: r.clientIP, Outcome: outcome, Detail: detail}
}

// Outcomes of audit events.
const (
	Success = "success"
	Failure = "failure"
)

// LogAudit writes each event as one structured log line (after the store write; an event
// the store failed to keep is logged all the same, beside that failure's error line).
func LogAudit(ctx context.Context, logger *slog.Logger, events ...identity.AuditEvent) {
	for _, e := range events {
		logger.LogAttrs(ctx, slog.LevelInfo, "audit", slog.String("type", e.Type), slog.String("sub", e.UserID),
			slog.String("actor", e.Actor), slog.String("client", e.ClientIP), slog.String("outcome", e.Outcome),
			slog.String("detail", e.Detail))
	}
}

// lockoutLog remembers, per user and address, until when the lockout already recorded lasts,
// so a locked-out client hammering the login writes one audit event per lockout, not one per
// attempt (the refused attempts cost no hashing, so they come cheap and fast). Per process:
// replicas each record theirs. Its mutex guards map operations only.
type lockoutLog struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// maxLockouts bounds the log; past it, ended lockouts are dropped, then everything.
const maxLockouts = 10_000

// first reports whether the refusal err (ETHROTTLED, with its Retry-After) is the first of its
// lockout for key, and remembers it.
func (l *lockoutLog) first(key string, now time.Time, err error) bool {
	var ae *apperr.Error
	wait := time.Minute
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		wait = ae.RetryAfter
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.until[key]) {
		return false
	}
	if l.until == nil || len(l.until) >= maxLockouts {
		for k, u := range l.until {
			if !now.Before(u) {
				delete(l.until, k)
			}
		}
		if l.until == nil || len(l.until) >= maxLockouts {
			l.until = map[string]time.Time{}
		}
	}
	l.until[key] = now.Add(wait)
	return true
}

// event is Event on the service's clock.
func (s *core) event(ctx context.Context, typ, userID, outcome, detail string) identity.AuditEvent {
	return Event(ctx, s.Now(), typ, userID, outcome, detail)
}

// audited runs write with a context carrying events, so the store keeps them in the write's
// transaction, and logs them when it succeeded (identity.ErrUnchanged included: then nothing
// was written, and nothing is logged).
func (s *core) audited(ctx context.Context, write func(context.Context) error, events ...identity.AuditEvent) error {
	err := write(identity.WithAuditEvents(ctx, events...))
	if err == nil {
		LogAudit(ctx, s.Logger, events...)
	}
	return err
}

// record writes events that record no other change (a failed login, a lockout) and logs them.
// A store failure is logged, not returned: the answer to the request stands.
func (s *core) record(ctx context.Context, events ...identity.AuditEvent) {
	if s.Audit == nil {
		LogAudit(ctx, s.Logger, events...)
		return
	}
	if err := s.Audit.AppendAudit(context.WithoutCancel(ctx), events...); err != nil {
		s.Logger.ErrorContext(ctx, "audit event not stored", "err", err, "code", apperr.Code(err))
	}
	LogAudit(ctx, s.Logger, events...)
}

// RecordConfig records a reload of the configuration file: config_reloaded, or config_refused
// with why (detail: the mistakes, never a secret).
func (s *Admin) RecordConfig(ctx context.Context, reloaded bool, detail string) {
	typ, outcome := identity.AuditConfigReloaded, Success
	if !reloaded {
		typ, outcome = identity.AuditConfigRefused, Failure
	}
	s.record(ctx, s.event(ctx, typ, "", outcome, detail))
}

// AuditEvents is GET /admin/audit: the events q selects, newest first. EINVALID for a bad limit.
func (s *Admin) AuditEvents(ctx context.Context, q identity.AuditQuery) ([]identity.AuditEvent, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if s.Audit == nil {
		return []identity.AuditEvent{}, nil
	}
	return s.Audit.ListAudit(ctx, q)
}

// PruneAudit removes the events older than retention (0 keeps them for ever).
func (s *Admin) PruneAudit(ctx context.Context, retention time.Duration) (int, error) {
	if s.Audit == nil || retention <= 0 {
		return 0, nil
	}
	return s.Audit.DeleteAuditBefore(ctx, s.Now().Add(-retention))
}

// Mailer composes mail for the outbox (mail.Composer) and wakes this process's sender.
type Mailer interface {
	// Notice is the message telling u what happened to their account; false when they have
	// no address it may go to.
	Notice(u identity.User, what string) (identity.Mail, bool, error)
	// VerifyEmail is the message carrying the confirmation link of address to it.
	VerifyEmail(u identity.User, address, link string, ttl time.Duration) (identity.Mail, error)
	// Invitation is the message carrying an invitation to sign up to address.
	Invitation(address, link string, ttl time.Duration) (identity.Mail, error)
	// ResetPassword is the message carrying a password-reset link to u's address.
	ResetPassword(u identity.User, link string, ttl time.Duration) (identity.Mail, error)
	// Queued says mail was just committed to the outbox.
	Queued()
}

// Notices about an account, the owner's mail when a credential or the address changes.
const (
	NoticePassword     = "Your password was changed"
	NoticeEmail        = "Your email address was changed"
	NoticeSecondFactor = "Your second factors were changed"
	NoticeLinked       = "A sign-in through another provider was linked to your account"
	// Someone signed up giving the owner's address: it was not attached to the new account.
	NoticeSignupWithYourAddress = "Someone signed up with your email address (it was not given to their account)"
)

// withNotice is ctx carrying the notice of what to u for the next store write (which queues it
// with its change); ctx itself when mail is off or u has no verified address. A template that
// fails is logged: the change it reports does not fail with it.
func (s *core) withNotice(ctx context.Context, u identity.User, what string) context.Context {
	if s.Mail == nil {
		return ctx
	}
	m, ok, err := s.Mail.Notice(u, what)
	if err != nil {
		s.Logger.ErrorContext(ctx, "mail: notice not composed", "err", err, "sub", u.ID)
		return ctx
	}
	if !ok {
		return ctx
	}
	return identity.WithMail(ctx, append(mailOf(ctx), m)...)
}

// mailOf is the mail ctx already carries (nil for none, or when it does not check).
func mailOf(ctx context.Context) []identity.Mail {
	m, _ := identity.MailOf(ctx)
	return m
}

// mailQueued wakes the sender after a write that carried mail.
func (s *core) mailQueued(ctx context.Context) {
	if s.Mail != nil && len(mailOf(ctx)) > 0 {
		s.Mail.Queued()
	}
}
