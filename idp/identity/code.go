package identity

import (
	"context"
	"slices"
	"time"

	"jwtidp/shared/apperr"
)

// AuthCode is an authorization code (RFC 6749 §4.1.2) as the IdP keeps it: only the hash of the
// code the client holds, and everything the authorization request and the sign-in bound it to.
// A code is single-use: redeeming it marks it Used, and it stays stored until it expires so a
// second use is recognised as a replay and revokes what the first one issued (§4.1.2, §10.5).
type AuthCode struct {
	Hash          string // SHA-256 of the code
	ClientID      string
	RedirectURI   string
	CodeChallenge string // S256 challenge; "" when the (confidential) client sent none
	Nonce         string
	Scopes        []string // granted
	UserID        string
	Epoch         int64 // the user's credential epoch at sign-in
	SessionID     string
	AuthTime      time.Time
	AMR           []string
	IDP           string `json:",omitempty"` // the connector the sign-in went through ("" for a local account)
	Resource      string `json:",omitempty"` // RFC 8707: the access tokens' one audience; "" for the IdP's default
	CreatedAt     time.Time
	ExpiresAt     time.Time
	Used          bool
	// RefreshHash is the hash of the first refresh token the redemption issued ("" when none):
	// its family is what a replay revokes.
	RefreshHash string
}

// CodeTTL is an authorization code's lifetime (API.md: 60 s; RFC 6749 §4.1.2 recommends at
// most 10 minutes).
const CodeTTL = 60 * time.Second

// Validate checks a code's invariants before it is stored. EINVALID.
func (c AuthCode) Validate() error {
	if c.Hash == "" || c.ClientID == "" || c.RedirectURI == "" || c.UserID == "" || c.ExpiresAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "Authorization code: hash, client, redirect URI, user and expiry are required")
	}
	return nil
}

// CheckUpdate refuses next as the update of c when it changes anything the code is bound to,
// un-uses a used code, or breaks Validate: a redemption only marks it used and names what it
// issued.
func (c AuthCode) CheckUpdate(next AuthCode) error {
	bound := next
	bound.Used, bound.RefreshHash = c.Used, c.RefreshHash
	if !bound.equal(c) || (c.Used && !next.Used) {
		return apperr.Errorf(apperr.EINVALID, "An update may only mark an authorization code used")
	}
	return next.Validate()
}

func (c AuthCode) equal(o AuthCode) bool {
	return c.Hash == o.Hash && c.ClientID == o.ClientID && c.RedirectURI == o.RedirectURI &&
		c.CodeChallenge == o.CodeChallenge && c.Nonce == o.Nonce && slices.Equal(c.Scopes, o.Scopes) &&
		c.UserID == o.UserID && c.Epoch == o.Epoch && c.SessionID == o.SessionID &&
		c.AuthTime.Equal(o.AuthTime) && slices.Equal(c.AMR, o.AMR) && c.IDP == o.IDP && c.CreatedAt.Equal(o.CreatedAt) &&
		c.ExpiresAt.Equal(o.ExpiresAt) && c.Used == o.Used && c.RefreshHash == o.RefreshHash && c.Resource == o.Resource
}

// CodeStore keeps authorization codes, by hash.
type CodeStore interface {
	// CreateCode stores c. EINVALID when c breaks AuthCode.Validate; ECONFLICT when its hash is
	// taken.
	CreateCode(ctx context.Context, c AuthCode) error
	// UpdateCode runs fn on the code stored under hash and stores its result, in one
	// transaction, and returns what it stored; fn may run more than once. When fn returns an
	// error nothing changes and the code as stored is returned with that error (so a caller
	// can act on a replay). ENOTFOUND when there is no such code (fn is not called); EINVALID
	// when fn's result breaks AuthCode.CheckUpdate.
	UpdateCode(ctx context.Context, hash string, fn func(AuthCode) (AuthCode, error)) (AuthCode, error)
	// DeleteDeadCodes removes the codes that expired before before and returns how many.
	DeleteDeadCodes(ctx context.Context, before time.Time) (int, error)
}

// Consent is a user's remembered answer to a client's consent page: the scopes they allowed it.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string
	GrantedAt time.Time
}

// Covers reports whether the consent allows every one of scopes.
func (c Consent) Covers(scopes []string) bool {
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

// Validate checks a consent's invariants before it is stored. EINVALID.
func (c Consent) Validate() error {
	if c.UserID == "" || c.ClientID == "" || len(c.Scopes) == 0 {
		return apperr.Errorf(apperr.EINVALID, "Consent: user, client and scopes are required")
	}
	return nil
}

// ConsentStore keeps consents, one per user and client. Deleting the user (DeleteUser) or the
// client (DeleteClient) deletes its consents in the same transaction.
type ConsentStore interface {
	// GetConsent returns the user's consent for the client. ENOTFOUND when there is none.
	GetConsent(ctx context.Context, userID, clientID string) (Consent, error)
	// SaveConsent stores c, replacing the user's consent for that client, but only if the user
	// and the client exist — checked in the same transaction — else ENOTFOUND. EINVALID when c
	// breaks Consent.Validate.
	SaveConsent(ctx context.Context, c Consent) error
	// ListConsents returns every consent of the user ordered by client id; empty, never nil.
	ListConsents(ctx context.Context, userID string) ([]Consent, error)
}
