package boltdb

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoConsent = apperr.Errorf(apperr.ENOTFOUND, "Consent not found")

func decodeConsent(data []byte) (identity.Consent, error) {
	var c identity.Consent
	err := json.Unmarshal(data, &c)
	c.GrantedAt = c.GrantedAt.UTC()
	return c, err
}

// GetConsent implements identity.ConsentStore.
func (s *DB) GetConsent(ctx context.Context, userID, clientID string) (identity.Consent, error) {
	var c identity.Consent
	err := s.DB.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketConsents).Bucket([]byte(userID))
		if ub == nil {
			return errNoConsent
		}
		data := ub.Get([]byte(clientID))
		if data == nil {
			return errNoConsent
		}
		var err error
		if c, err = decodeConsent(data); err != nil {
			return fmt.Errorf("read consent of %s for %s: %w", userID, clientID, err)
		}
		return nil
	})
	if err != nil {
		return identity.Consent{}, err
	}
	return c, nil
}

// SaveConsent implements identity.ConsentStore.
func (s *DB) SaveConsent(ctx context.Context, c identity.Consent) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get([]byte(c.UserID)) == nil {
			return errNoUser
		}
		if tx.Bucket(bucketClients).Get([]byte(c.ClientID)) == nil {
			return errNoClient
		}
		ub, err := tx.Bucket(bucketConsents).CreateBucketIfNotExists([]byte(c.UserID))
		if err != nil {
			return err
		}
		data, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return ub.Put([]byte(c.ClientID), data)
	})
}

// ListConsents implements identity.ConsentStore: a walk of the user's bucket, which bbolt keeps
// in the byte order of the client ids.
func (s *DB) ListConsents(ctx context.Context, userID string) ([]identity.Consent, error) {
	out := []identity.Consent{}
	err := s.DB.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketConsents).Bucket([]byte(userID))
		if ub == nil {
			return nil
		}
		return ub.ForEach(func(k, v []byte) error {
			c, err := decodeConsent(v)
			if err != nil {
				return fmt.Errorf("read consent of %s for %s: %w", userID, k, err)
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

// deleteConsents removes every consent of the user.
func deleteConsents(tx *bolt.Tx, userID string) error {
	consents := tx.Bucket(bucketConsents)
	if consents.Bucket([]byte(userID)) == nil {
		return nil
	}
	return consents.DeleteBucket([]byte(userID))
}

// deleteClientConsents removes every consent given to the client. Consents are kept by user,
// so this walks every user's: fine for a rare admin action, as DeleteClient's scan of the
// families is.
func deleteClientConsents(tx *bolt.Tx, clientID string) error {
	consents := tx.Bucket(bucketConsents)
	var users [][]byte
	err := consents.ForEach(func(k, v []byte) error {
		if v == nil && consents.Bucket(k).Get([]byte(clientID)) != nil { // a nested bucket
			users = append(users, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := consents.Bucket(u).Delete([]byte(clientID)); err != nil {
			return err
		}
	}
	return nil
}
