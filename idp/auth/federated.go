package auth

import (
	"context"

	"jwtidp/idp/upstream"
	"jwtidp/shared/apperr"
)

// Upstream sign-ins: a connector proved who someone is upstream (an upstream.Identity);
// Federated decides which local user that is and hands back an Authentication for Complete.

// ErrLinkRequired: the connector says link: existing and this upstream subject is linked to
// no local user yet — the person must prove a local account's password once (LinkExisting).
// EFORBIDDEN; the LinkNeeded error that carries it holds the ticket.
var ErrLinkRequired = apperr.Errorf(apperr.EFORBIDDEN, "Sign in with your account here once to link it")

// LinkNeeded is Federated's error when the person must link a local account: Ticket is an
// opaque, short-lived, tamper-proof value naming the upstream identity, for LinkExisting.
type LinkNeeded struct{ Ticket string }

func (e *LinkNeeded) Error() string { return ErrLinkRequired.Error() }
func (e *LinkNeeded) Unwrap() error { return ErrLinkRequired }

// Federated turns what connector id proved into a sign-in: the local user linked to (id,
// subject) — made just in time with link: create, a LinkNeeded error with link: existing —
// with the upstream's groups mapped into ours, refused (ErrInvalidCredentials) when the local
// user is disabled. Its Authentication has AMR "fed" (oidc) or "pwd" (ldap), IDP the
// connector's id, and is Pending when the connector requires our second factor.
func (s *SignIn) Federated(ctx context.Context, connector string, id upstream.Identity) (Authentication, error) {
	return Authentication{}, apperr.Errorf(apperr.EUNAVAILABLE, "upstream sign-in is not built yet")
}

// LinkExisting links the upstream identity a LinkNeeded ticket names to the local account c
// proves (its password, throttled as a login), and signs in as Federated would.
func (s *SignIn) LinkExisting(ctx context.Context, ticket string, c Credentials) (Authentication, error) {
	return Authentication{}, apperr.Errorf(apperr.EUNAVAILABLE, "upstream sign-in is not built yet")
}

// CheckUpstream is the refresh grant's question for a user linked to a directory: still there
// and active? Asked at most once a minute per user (Federation.CheckedAt); ErrGone ends the
// refresh.
func (s *core) CheckUpstream(ctx context.Context, userID string) error {
	return nil
}
