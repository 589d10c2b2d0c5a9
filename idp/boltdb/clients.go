package boltdb

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoClient = apperr.Errorf(apperr.ENOTFOUND, "Client not found")

// clients are stored as their JSON, which keeps a nil list (null) apart from an empty one
// ([]), so each reads back as it was stored.
var clients = table[identity.Client]{bucket: bucketClients, name: "client", missing: errNoClient,
	taken: apperr.Errorf(apperr.ECONFLICT, "Client id already taken"),
	utc:   func(c *identity.Client) { c.CreatedAt = c.CreatedAt.UTC() }}

// CreateClient implements identity.ClientStore.
func (s *DB) CreateClient(ctx context.Context, c identity.Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error { return clients.create(tx, c.ID, c) })
}

// GetClient implements identity.ClientStore.
func (s *DB) GetClient(ctx context.Context, id string) (identity.Client, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.Client, error) { return clients.get(tx, id) })
}

// ListClients implements identity.ClientStore: a walk of the bucket, which bbolt keeps in the
// byte order of the ids.
func (s *DB) ListClients(ctx context.Context) ([]identity.Client, error) {
	return result(ctx, s.view, clients.list)
}

// UpdateClient implements identity.ClientStore.
func (s *DB) UpdateClient(ctx context.Context, id string, fn func(identity.Client) (identity.Client, error)) (identity.Client, error) {
	return result(ctx, s.write, func(tx *bolt.Tx) (identity.Client, error) {
		return clients.update(tx, id, func(old identity.Client) (identity.Client, error) { return identity.Apply(old, fn) })
	})
}

// DeleteClient implements identity.ClientStore. Families, consents and codes are not indexed by
// client, so the revocation and the deletions scan them in the transaction: fine while deleting a client is a rare
// admin action and families number in the thousands; an index (client id → family ids, kept
// by indexToken and deleteFamily) is the fix if either stops being true.
func (s *DB) DeleteClient(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := clients.exists(tx, id); err != nil {
			return err
		}
		issued, err := families.where(tx.Bucket(bucketFamilies), func(f identity.Family) bool { return f.ClientID == id && !f.Revoked })
		if err != nil {
			return err
		}
		// Written after the walk: a bucket must not change under its ForEach.
		for _, f := range issued {
			f.Revoked = true
			if err := families.put(tx, f.ID, f); err != nil {
				return err
			}
		}
		if err := deleteClientConsents(tx, id); err != nil {
			return err
		}
		if _, err := codes.deleteWhere(tx, func(c identity.AuthCode) bool { return c.ClientID == id }); err != nil {
			return err
		}
		return clients.delete(tx, id)
	})
}
