package identity

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

// Federation links a local user to a person at an upstream identity provider: by the
// connector's id and the upstream's subject only, never by email. A user may have several (one
// per connector); a (connector, subject) names at most one user.
type Federation struct {
	Connector string // the connector's id
	Subject   string // the upstream's stable id for the person
	UserID    string
	// Groups are the groups of ours the upstream's groups mapped to at the last sign-in: the
	// ones a sign-in may take away again (groups an admin gave stay).
	Groups    []string
	CreatedAt time.Time
	// CheckedAt is when the upstream last said the person is still there (a sign-in, or the
	// refresh grant asking a directory): asked again at most once a minute.
	CheckedAt time.Time
}

// Validate checks a federation's invariants before it is stored. EINVALID.
func (f Federation) Validate() error {
	if f.Connector == "" || f.Subject == "" || f.UserID == "" || f.CreatedAt.IsZero() {
		return apperr.Errorf(apperr.EINVALID, "Federation: connector, subject, user and creation are required")
	}
	// The stores key a link by connector, a NUL, and subject, and keep them as text.
	if !utf8.ValidString(f.Connector) || !utf8.ValidString(f.Subject) || strings.ContainsRune(f.Connector+f.Subject, 0) {
		return apperr.Errorf(apperr.EINVALID, "Federation: the connector and the upstream subject must be text without NUL")
	}
	if len(f.Subject) > 1024 {
		return apperr.Errorf(apperr.EINVALID, "Federation: the upstream subject is over 1024 bytes")
	}
	for _, g := range f.Groups {
		if err := ValidateGroupName(g); err != nil {
			return err
		}
	}
	return nil
}

// CheckUpdate refuses next as the update of f when it changes the connector, the subject, the
// user or the creation time, or breaks Federation.Validate. EINVALID.
func (f Federation) CheckUpdate(next Federation) error {
	if next.Connector != f.Connector || next.Subject != f.Subject || next.UserID != f.UserID || !next.CreatedAt.Equal(f.CreatedAt) {
		return apperr.Errorf(apperr.EINVALID, "An update may not change a federation's connector, subject, user or creation time")
	}
	return next.Validate()
}

// ApplyUpdate is Apply for UpdateFederation: change gets a copy of f whose groups are its own.
func (f Federation) ApplyUpdate(change func(Federation) (Federation, error)) (Federation, error) {
	given := f
	given.Groups = slices.Clone(f.Groups)
	return Apply(f, func(Federation) (Federation, error) { return change(given) })
}

var (
	// ErrNoFederation: no user is linked to that upstream subject. ENOTFOUND.
	ErrNoFederation = apperr.Errorf(apperr.ENOTFOUND, "No account is linked to that upstream identity")
	// ErrFederationTaken: the upstream subject is linked to a user already. ECONFLICT.
	ErrFederationTaken = apperr.Errorf(apperr.ECONFLICT, "That upstream identity is linked to an account already")
	// ErrConnectorLinked: the user is linked to another subject of the connector already: one
	// link per user and connector. ECONFLICT.
	ErrConnectorLinked = apperr.Errorf(apperr.ECONFLICT, "This account is linked to another identity of that provider already")
)

// FederationStore keeps the links between local users and upstream identities. Deleting a user
// (UserStore.DeleteUser) removes their federations in the same transaction.
type FederationStore interface {
	// CreateFederation links f.UserID to (f.Connector, f.Subject), the user read in the same
	// transaction. EINVALID when f breaks Validate; ENOTFOUND when there is no such user;
	// ErrFederationTaken (ECONFLICT) when the subject is linked already; ErrConnectorLinked
	// (ECONFLICT) when the user has a link of f.Connector already (decided in that transaction).
	CreateFederation(ctx context.Context, f Federation) error
	// CreateFederatedUser creates u and links it to f (f.UserID is u.ID) in one transaction:
	// CreateUser's errors, or ErrFederationTaken with nothing created.
	CreateFederatedUser(ctx context.Context, u User, f Federation) error
	// GetFederation returns the link of (connector, subject). ErrNoFederation when none.
	GetFederation(ctx context.Context, connector, subject string) (Federation, error)
	// UserFederations returns the user's links, by connector: empty, never nil.
	UserFederations(ctx context.Context, userID string) ([]Federation, error)
	// UpdateFederation applies change to the link as stored, in one transaction (Connector,
	// Subject, UserID and CreatedAt stay: EINVALID when change's result moves them or breaks
	// Validate, with nothing changed; change's own error is returned as it is). ErrNoFederation
	// when none.
	UpdateFederation(ctx context.Context, connector, subject string, change func(Federation) (Federation, error)) (Federation, error)
}
