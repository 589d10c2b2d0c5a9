package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoConsent = apperr.Errorf(apperr.ENOTFOUND, "Consent not found")

const consentCols = `user_id, client_id, scopes, granted_at`

func scanConsent(row pgx.Row) (identity.Consent, error) {
	var c identity.Consent
	err := row.Scan(&c.UserID, &c.ClientID, &c.Scopes, &c.GrantedAt)
	c.GrantedAt = c.GrantedAt.UTC()
	return found(c, err, errNoConsent)
}

// GetConsent implements identity.ConsentStore.
func (s *DB) GetConsent(ctx context.Context, userID, clientID string) (identity.Consent, error) {
	userID, ok := key(userID)
	clientID, ok2 := key(clientID)
	if !ok || !ok2 {
		return identity.Consent{}, errNoConsent
	}
	c, err := scanConsent(s.pool.QueryRow(ctx, `SELECT `+consentCols+` FROM consents WHERE user_id = $1 AND client_id = $2`,
		userID, clientID))
	return c, s.fail(err)
}

// SaveConsent implements identity.ConsentStore: one statement, whose foreign-key checks find
// the user and the client and lock their rows (FOR KEY SHARE) until it commits, so a
// concurrent DeleteUser or DeleteClient either went first — and the consent is refused — or
// waits and deletes it.
func (s *DB) SaveConsent(ctx context.Context, c identity.Consent) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, ok := key(c.UserID); !ok {
		return errNoUser
	}
	if _, ok := key(c.ClientID); !ok {
		return errNoClient
	}
	_, err := s.exec(ctx, `INSERT INTO consents (`+consentCols+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at`,
		c.UserID, c.ClientID, texts(c.Scopes), c.GrantedAt)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // a foreign key's refusal: which one is gone?
		if pe.ConstraintName == "consents_client_id_fkey" {
			return errNoClient
		}
		return errNoUser
	}
	return s.fail(err)
}

// ListConsents implements identity.ConsentStore: client ids are COLLATE "C", so the order is
// the bytes' (the bbolt store's).
func (s *DB) ListConsents(ctx context.Context, userID string) ([]identity.Consent, error) {
	return listFor(ctx, s, userID, scanConsent, `SELECT `+consentCols+` FROM consents WHERE user_id = $1 ORDER BY client_id`)
}
