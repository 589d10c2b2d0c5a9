package identity

import (
	"context"
	"time"
	"unicode"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

// UsedAssertion is a client's signed assertion (private_key_jwt, RFC 7523) the IdP accepted:
// its jti is remembered, per client, until the assertion expires, so it is accepted once.
type UsedAssertion struct {
	ClientID  string
	JTI       string
	ExpiresAt time.Time
}

// MaxJTI bounds an assertion's jti, as it is stored.
const MaxJTI = 256

// ErrAssertionReplayed refuses a jti the client already used in an assertion not yet expired.
var ErrAssertionReplayed = apperr.Errorf(apperr.ECONFLICT, "The client assertion was already used")

// Validate checks a used assertion before it is stored: a client id, a jti of 1–MaxJTI
// printable characters, an expiry. EINVALID.
func (a UsedAssertion) Validate() error {
	if a.ClientID == "" || a.ExpiresAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "A used assertion needs its client and expiry")
	}
	if a.JTI == "" || len(a.JTI) > MaxJTI || !utf8.ValidString(a.JTI) {
		return apperr.Errorf(apperr.EINVALID, "jti must be 1 to %d bytes of UTF-8", MaxJTI)
	}
	for _, r := range a.JTI {
		if !unicode.IsPrint(r) {
			return apperr.Errorf(apperr.EINVALID, "jti must be printable")
		}
	}
	return nil
}

// Live reports whether a stored use still stands at now: a jti is free again once the
// assertion it came in has expired (and the assertion with it).
func (a UsedAssertion) Live(now time.Time) bool { return now.Before(a.ExpiresAt) }

// AssertionStore remembers the jtis of accepted client assertions until they expire. Several
// processes share it: the decision whether a jti is new is the store's, in one transaction.
type AssertionStore interface {
	// UseAssertion records a, in one transaction with the check that the client has no live
	// (at now) use of the same jti: ErrAssertionReplayed then, and nothing changes. An
	// expired use of it is replaced. EINVALID when a breaks Validate.
	UseAssertion(ctx context.Context, a UsedAssertion, now time.Time) error
	// DeleteExpiredAssertions removes the uses expired at now and returns how many.
	DeleteExpiredAssertions(ctx context.Context, now time.Time) (int, error)
}
