package boltdb

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoClient = apperr.Errorf(apperr.ENOTFOUND, "Client not found")

// decodeClient reads a stored client. JSON keeps a nil list (null) apart from an empty one
// ([]), so each reads back as it was stored.
func decodeClient(data []byte) (identity.Client, error) {
	var c identity.Client
	err := json.Unmarshal(data, &c)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, err
}

func getClient(tx *bolt.Tx, id string) (identity.Client, error) {
	data := tx.Bucket(bucketClients).Get([]byte(id))
	if data == nil {
		return identity.Client{}, errNoClient
	}
	c, err := decodeClient(data)
	if err != nil {
		return c, fmt.Errorf("read client %s: %w", id, err)
	}
	return c, nil
}

// putClient stores c and returns it as every later read sees it.
func putClient(tx *bolt.Tx, c identity.Client) (identity.Client, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	if err := tx.Bucket(bucketClients).Put([]byte(c.ID), data); err != nil {
		return c, err
	}
	return decodeClient(data)
}

// CreateClient implements identity.ClientStore.
func (s *DB) CreateClient(ctx context.Context, c identity.Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketClients).Get([]byte(c.ID)) != nil {
			return apperr.Errorf(apperr.ECONFLICT, "Client id already taken")
		}
		_, err := putClient(tx, c)
		return err
	})
}

// GetClient implements identity.ClientStore.
func (s *DB) GetClient(ctx context.Context, id string) (identity.Client, error) {
	var c identity.Client
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		c, err = getClient(tx, id)
		return err
	})
	if err != nil {
		return identity.Client{}, err
	}
	return c, nil
}

// ListClients implements identity.ClientStore: a walk of the bucket, which bbolt keeps in the
// byte order of the ids.
func (s *DB) ListClients(ctx context.Context) ([]identity.Client, error) {
	out := []identity.Client{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
			c, err := decodeClient(v)
			if err != nil {
				return fmt.Errorf("read client %s: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateClient implements identity.ClientStore.
func (s *DB) UpdateClient(ctx context.Context, id string, fn func(identity.Client) (identity.Client, error)) (identity.Client, error) {
	var out identity.Client
	err := s.write(ctx, func(tx *bolt.Tx) error {
		old, err := getClient(tx, id)
		if err != nil {
			return err
		}
		c, err := fn(old)
		if err != nil {
			return err
		}
		if err := old.CheckUpdate(c); err != nil {
			return err
		}
		out, err = putClient(tx, c)
		return err
	})
	if err != nil {
		return identity.Client{}, err
	}
	return out, nil
}

// DeleteClient implements identity.ClientStore. Families, consents and codes are not indexed by
// client, so the revocation and the deletions scan them in the transaction: fine while deleting a client is a rare
// admin action and families number in the thousands; an index (client id → family ids, kept
// by putFamily and deleteFamily) is the fix if either stops being true.
func (s *DB) DeleteClient(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		clients := tx.Bucket(bucketClients)
		if clients.Get([]byte(id)) == nil {
			return errNoClient
		}
		families := tx.Bucket(bucketFamilies)
		var issued []identity.Family
		err := families.ForEach(func(k, v []byte) error {
			f, err := decodeFamily(v)
			if err != nil {
				return fmt.Errorf("read family %s: %w", k, err)
			}
			if f.ClientID == id && !f.Revoked {
				issued = append(issued, f)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Written after the walk: a bucket must not change under its ForEach.
		for _, f := range issued {
			f.Revoked = true
			if err := put(families, f.ID, f); err != nil {
				return err
			}
		}
		if err := deleteClientConsents(tx, id); err != nil {
			return err
		}
		if _, err := deleteCodes(tx, func(c identity.AuthCode) bool { return c.ClientID == id }); err != nil {
			return err
		}
		return clients.Delete([]byte(id))
	})
}
