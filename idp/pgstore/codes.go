package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoCode = apperr.Errorf(apperr.ENOTFOUND, "Authorization code not found")

const codeCols = `hash, client_id, redirect_uri, code_challenge, nonce, scopes, user_id, epoch, session_id,
	auth_time, amr, created_at, expires_at, used, refresh_hash, idp, resource`

// scanCode reads a code. pgx reads a NULL array as a nil slice and '{}' as an empty one, so
// each list reads back as it was stored.
func scanCode(row pgx.Row) (identity.AuthCode, error) {
	var c identity.AuthCode
	err := row.Scan(&c.Hash, &c.ClientID, &c.RedirectURI, &c.CodeChallenge, &c.Nonce, &c.Scopes, &c.UserID, &c.Epoch,
		&c.SessionID, &c.AuthTime, &c.AMR, &c.CreatedAt, &c.ExpiresAt, &c.Used, &c.RefreshHash, &c.IDP, &c.Resource)
	c.AuthTime, c.CreatedAt, c.ExpiresAt = c.AuthTime.UTC(), c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	return found(c, err, errNoCode)
}

// storedCode is c as it is written and as every later read sees it: free text from the
// request made storable, lists copies of their own (nil stays nil), times UTC to the
// microsecond.
func storedCode(c identity.AuthCode) identity.AuthCode {
	c.ClientID, c.RedirectURI, c.CodeChallenge, c.Nonce = text(c.ClientID), text(c.RedirectURI), text(c.CodeChallenge), text(c.Nonce)
	c.SessionID, c.RefreshHash, c.IDP, c.Resource = text(c.SessionID), text(c.RefreshHash), text(c.IDP), text(c.Resource)
	c.Scopes, c.AMR = texts(c.Scopes), texts(c.AMR)
	c.AuthTime, c.CreatedAt, c.ExpiresAt = ts(c.AuthTime), ts(c.CreatedAt), ts(c.ExpiresAt)
	return c
}

func codeArgs(c identity.AuthCode) []any {
	return []any{c.Hash, c.ClientID, c.RedirectURI, c.CodeChallenge, c.Nonce, c.Scopes, c.UserID, c.Epoch, c.SessionID,
		c.AuthTime, c.AMR, c.CreatedAt, c.ExpiresAt, c.Used, c.RefreshHash, c.IDP, c.Resource}
}

// CreateCode implements identity.CodeStore.
func (s *DB) CreateCode(ctx context.Context, c identity.AuthCode) error {
	if err := c.Validate(); err != nil {
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO auth_codes (`+codeCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`, codeArgs(storedCode(c))...)
	return s.fail(conflict(err))
}

// UpdateCode implements identity.CodeStore: the code's row is locked FOR UPDATE as it is read,
// so of two redemptions of one code the second waits, and sees the first one's Used.
func (s *DB) UpdateCode(ctx context.Context, hash string, fn func(identity.AuthCode) (identity.AuthCode, error)) (identity.AuthCode, error) {
	return updateRow(ctx, s, hash, errNoCode, `SELECT `+codeCols+` FROM auth_codes WHERE hash = $1 FOR UPDATE`, scanCode,
		func(stored identity.AuthCode) (identity.AuthCode, bool, error) { return stored.ApplyUpdate(fn) },
		func(tx pgx.Tx, c identity.AuthCode) (identity.AuthCode, error) {
			c = storedCode(c)
			// CheckUpdate allowed nothing else to change.
			_, err := tx.Exec(ctx, `UPDATE auth_codes SET used = $2, refresh_hash = $3 WHERE hash = $1`, c.Hash, c.Used, c.RefreshHash)
			return c, err
		})
}

// DeleteDeadCodes implements identity.CodeStore, in batches as DeleteDeadFamilies.
func (s *DB) DeleteDeadCodes(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM auth_codes WHERE hash IN (
		SELECT hash FROM auth_codes WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, before)
}
