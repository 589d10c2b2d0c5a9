package boltdb

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoConsent = apperr.Errorf(apperr.ENOTFOUND, "Consent not found")

// consents are kept by user: a nested bucket per user id holds the user's, by client id.
var consents = table[identity.Consent]{bucket: bucketConsents, name: "consent", missing: errNoConsent,
	utc: func(c *identity.Consent) { c.GrantedAt = c.GrantedAt.UTC() }}

// GetConsent implements identity.ConsentStore.
func (s *DB) GetConsent(ctx context.Context, userID, clientID string) (identity.Consent, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.Consent, error) {
		return consents.getIn(tx.Bucket(bucketConsents).Bucket([]byte(userID)), clientID)
	})
}

// SaveConsent implements identity.ConsentStore.
func (s *DB) SaveConsent(ctx context.Context, c identity.Consent) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := users.exists(tx, c.UserID); err != nil {
			return err
		}
		if err := clients.exists(tx, c.ClientID); err != nil {
			return err
		}
		ub, err := tx.Bucket(bucketConsents).CreateBucketIfNotExists([]byte(c.UserID))
		if err != nil {
			return err
		}
		return consents.putIn(ub, c.ClientID, c)
	})
}

// ListConsents implements identity.ConsentStore: a walk of the user's bucket, which bbolt keeps
// in the byte order of the client ids.
func (s *DB) ListConsents(ctx context.Context, userID string) ([]identity.Consent, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) ([]identity.Consent, error) {
		return consents.listIn(tx.Bucket(bucketConsents).Bucket([]byte(userID)))
	})
}

// deleteConsents removes every consent of the user.
func deleteConsents(tx *bolt.Tx, userID string) error {
	all := tx.Bucket(bucketConsents)
	if all.Bucket([]byte(userID)) == nil {
		return nil
	}
	return all.DeleteBucket([]byte(userID))
}

// deleteClientConsents removes every consent given to the client. Consents are kept by user,
// so this walks every user's: fine for a rare admin action, as DeleteClient's scan of the
// families is.
func deleteClientConsents(tx *bolt.Tx, clientID string) error {
	all := tx.Bucket(bucketConsents)
	var givers [][]byte
	err := all.ForEach(func(k, v []byte) error {
		if v == nil && all.Bucket(k).Get([]byte(clientID)) != nil { // a nested bucket
			givers = append(givers, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range givers {
		if err := all.Bucket(u).Delete([]byte(clientID)); err != nil {
			return err
		}
	}
	return nil
}
