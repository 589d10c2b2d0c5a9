package identity

import (
	"context"
	"slices"
	"time"

	"jwtidp/shared/apperr"
)

// AuthRequest is an authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1) as
// the IdP keeps it while the browser is away on a page — the login, the second factor, the
// consent — checked once when it arrived: its client and redirect URI verified, its scopes ones
// the client may have. The pages carry only its ID, an unguessable random value. A request is
// answered once (a code or an error sent to the client); it then stays stored, answered, until
// it expires, so that its ID cannot be used again.
type AuthRequest struct {
	ID            string // random, at least 128 bits
	ClientID      string
	RedirectURI   string   // byte for byte one the client registered
	Scopes        []string // checked: each one the client may have, in the order asked
	State         string
	Nonce         string
	CodeChallenge string // S256; "" when the (confidential) client sent none
	Prompt        string // space-delimited, checked (OpenID Connect Core §3.1.2.1)
	LoginHint     string
	MaxAge        *int     // seconds; nil when not asked
	ACRValues     []string // as asked, in order of preference; unknown ones included
	// SignInAfter is when the request sent the browser to sign in (zero until it has): a sign-in
	// at or after it satisfies what asked for one (prompt=login, select_account, max_age, a
	// second factor for acr_values), so the next visit does not ask again.
	SignInAfter time.Time
	// Resource is RFC 8707's resource indicator, checked: one the client may ask for ("" for
	// none); the code, and so the access tokens, are bound to it.
	Resource  string `json:",omitempty"`
	Answered  bool
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuthRequestTTL is how long a stored authorization request waits for the browser: long enough
// for a person to sign in, set a second factor aside, and read a consent page.
const AuthRequestTTL = 30 * time.Minute

// MaxAuthRequestText bounds what a stored request keeps of the client's free text (state,
// nonce, login_hint, acr_values), in bytes altogether: storing is open to anyone, and a
// request this large no longer fit the login page's return address before it was stored.
const MaxAuthRequestText = 4096

// Validate checks a request's invariants before it is stored. EINVALID.
func (r AuthRequest) Validate() error {
	if r.ID == "" || r.ClientID == "" || r.RedirectURI == "" || len(r.Scopes) == 0 || r.ExpiresAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "Authorization request: id, client, redirect URI, scopes and expiry are required")
	}
	n := len(r.State) + len(r.Nonce) + len(r.LoginHint)
	for _, v := range r.ACRValues {
		n += len(v) + 1
	}
	if n > MaxAuthRequestText {
		return apperr.Errorf(apperr.EINVALID, "Authorization request: state, nonce, login_hint and acr_values are longer than %d bytes", MaxAuthRequestText)
	}
	return nil
}

// CheckUpdate refuses next as the update of r when it changes anything the request was made
// with, moves SignInAfter back, un-answers it, or breaks Validate: an update only records that
// the request sent the browser to sign in, and that it was answered.
func (r AuthRequest) CheckUpdate(next AuthRequest) error {
	bound := next
	bound.SignInAfter, bound.Answered = r.SignInAfter, r.Answered
	if !bound.equal(r) || next.SignInAfter.Before(r.SignInAfter) || (r.Answered && !next.Answered) {
		return apperr.Errorf(apperr.EINVALID, "An update may only record a sign-in asked for and the answer of an authorization request")
	}
	return next.Validate()
}

// ApplyUpdate runs fn, the updater of UpdateAuthRequest, on r (as stored now), given a copy of
// its own (lists, max_age), and checks its result with CheckUpdate. Nothing is stored when the
// error is not nil: fn's own error is returned as it is.
func (r AuthRequest) ApplyUpdate(fn func(AuthRequest) (AuthRequest, error)) (AuthRequest, error) {
	given := r
	given.Scopes, given.ACRValues = slices.Clone(r.Scopes), slices.Clone(r.ACRValues)
	if r.MaxAge != nil {
		n := *r.MaxAge
		given.MaxAge = &n
	}
	return Apply(r, func(AuthRequest) (AuthRequest, error) { return fn(given) })
}

func (r AuthRequest) equal(o AuthRequest) bool {
	return r.ID == o.ID && r.ClientID == o.ClientID && r.RedirectURI == o.RedirectURI && slices.Equal(r.Scopes, o.Scopes) &&
		r.State == o.State && r.Nonce == o.Nonce && r.CodeChallenge == o.CodeChallenge && r.Prompt == o.Prompt &&
		r.LoginHint == o.LoginHint && equalMaxAge(r.MaxAge, o.MaxAge) && slices.Equal(r.ACRValues, o.ACRValues) &&
		r.SignInAfter.Equal(o.SignInAfter) && r.Answered == o.Answered && r.CreatedAt.Equal(o.CreatedAt) &&
		r.ExpiresAt.Equal(o.ExpiresAt) && r.Resource == o.Resource
}

func equalMaxAge(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// AuthRequestStore keeps authorization requests, by id.
type AuthRequestStore interface {
	// CreateAuthRequest stores r. EINVALID when r breaks AuthRequest.Validate; ECONFLICT when
	// its id is taken.
	CreateAuthRequest(ctx context.Context, r AuthRequest) error
	// GetAuthRequest returns the request stored under id, expired or answered as it may be.
	// ENOTFOUND when there is none.
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	// UpdateAuthRequest runs fn on the request stored under id and stores its result, in one
	// transaction, and returns what it stored; fn may run more than once. When fn returns an
	// error nothing changes and that error is returned. ENOTFOUND when there is no such request
	// (fn is not called); EINVALID when fn's result breaks AuthRequest.CheckUpdate.
	UpdateAuthRequest(ctx context.Context, id string, fn func(AuthRequest) (AuthRequest, error)) (AuthRequest, error)
	// DeleteDeadAuthRequests removes the requests that expired before before and returns how
	// many.
	DeleteDeadAuthRequests(ctx context.Context, before time.Time) (int, error)
}
