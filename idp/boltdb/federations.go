package boltdb

import (
	"context"
	"strings"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// federations are kept by connector + "\x00" + subject (a connector id holds no NUL), and
// indexed by user: bucketUserFeds holds under the user's id the set of their federations' keys,
// written with the federation and removed with the user (DeleteUser).
var federations = table[identity.Federation]{bucket: bucketFederations, name: "federation",
	missing: identity.ErrNoFederation, taken: identity.ErrFederationTaken,
	utc: func(f *identity.Federation) { f.CreatedAt, f.CheckedAt = f.CreatedAt.UTC(), f.CheckedAt.UTC() }}

// federationKey is the key of the federation of (connector, subject).
func federationKey(connector, subject string) string { return connector + "\x00" + subject }

// CreateFederation implements identity.FederationStore.
func (s *DB) CreateFederation(ctx context.Context, f identity.Federation) error {
	if err := f.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := users.exists(tx, f.UserID); err != nil {
			return err
		}
		return createFederation(tx, f)
	})
}

// CreateFederatedUser implements identity.FederationStore: the user as CreateUser makes it,
// then the link, in one transaction; either's refusal rolls back both.
func (s *DB) CreateFederatedUser(ctx context.Context, u identity.User, f identity.Federation) error {
	if err := u.Validate(); err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	if f.UserID != u.ID {
		return apperr.Errorf(apperr.EINVALID, "Federation: the link must be the new user's")
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := createUser(tx, u); err != nil {
			return err
		}
		return createFederation(tx, f)
	})
}

// createFederation stores f under its key and indexes it under its user.
func createFederation(tx *bolt.Tx, f identity.Federation) error {
	k := federationKey(f.Connector, f.Subject)
	if _, err := federations.get(tx, k); err == nil {
		return identity.ErrFederationTaken // the subject's link is the first word, as in PostgreSQL
	}
	mine, err := members(tx.Bucket(bucketUserFeds), f.UserID)
	if err != nil {
		return err
	}
	for _, m := range mine {
		if strings.HasPrefix(m, f.Connector+"\x00") {
			return identity.ErrConnectorLinked
		}
	}
	if err := federations.create(tx, k, f); err != nil {
		return err
	}
	return index(tx.Bucket(bucketUserFeds), f.UserID, k)
}

// GetFederation implements identity.FederationStore.
func (s *DB) GetFederation(ctx context.Context, connector, subject string) (identity.Federation, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.Federation, error) {
		return federations.get(tx, federationKey(connector, subject))
	})
}

// UserFederations implements identity.FederationStore: the user's set of keys, which bbolt
// keeps in byte order, that of their connectors (no connector id holds the NUL).
func (s *DB) UserFederations(ctx context.Context, userID string) ([]identity.Federation, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) ([]identity.Federation, error) {
		keys, err := members(tx.Bucket(bucketUserFeds), userID)
		if err != nil {
			return nil, err
		}
		out := []identity.Federation{}
		for _, k := range keys {
			f, err := federations.get(tx, k)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		return out, nil
	})
}

// UpdateFederation implements identity.FederationStore.
func (s *DB) UpdateFederation(ctx context.Context, connector, subject string,
	change func(identity.Federation) (identity.Federation, error)) (identity.Federation, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.Federation, error) {
		return federations.update(tx, federationKey(connector, subject), func(old identity.Federation) (identity.Federation, error) {
			return old.ApplyUpdate(change)
		})
	})
}

// deleteFederations removes every federation of the user and their index (DeleteUser).
func deleteFederations(tx *bolt.Tx, userID string) error {
	keys, err := members(tx.Bucket(bucketUserFeds), userID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := federations.delete(tx, k); err != nil {
			return err
		}
	}
	return dropSet(tx.Bucket(bucketUserFeds), userID)
}
