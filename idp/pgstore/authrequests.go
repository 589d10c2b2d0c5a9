package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var _ identity.AuthRequestStore = (*DB)(nil)

var errNoAuthRequest = apperr.Errorf(apperr.ENOTFOUND, "Authorization request not found")

const authRequestCols = `id, client_id, redirect_uri, scopes, state, nonce, code_challenge, prompt, login_hint, max_age,
	acr_values, sign_in_after, answered, created_at, expires_at, resource`

func scanAuthRequest(row pgx.Row) (identity.AuthRequest, error) {
	var r identity.AuthRequest
	var maxAge pgtype.Int8
	var signIn pgtype.Timestamptz
	err := row.Scan(&r.ID, &r.ClientID, &r.RedirectURI, &r.Scopes, &r.State, &r.Nonce, &r.CodeChallenge, &r.Prompt,
		&r.LoginHint, &maxAge, &r.ACRValues, &signIn, &r.Answered, &r.CreatedAt, &r.ExpiresAt, &r.Resource)
	if maxAge.Valid {
		n := int(maxAge.Int64)
		r.MaxAge = &n
	}
	r.SignInAfter, r.CreatedAt, r.ExpiresAt = fromNull(signIn), r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return found(r, err, errNoAuthRequest)
}

// storedAuthRequest is r as it is written and as every later read sees it: the client's free
// text made storable, lists and max_age copies of their own (nil stays nil), times UTC to the
// microsecond.
func storedAuthRequest(r identity.AuthRequest) identity.AuthRequest {
	r.ClientID, r.RedirectURI, r.State, r.Nonce = text(r.ClientID), text(r.RedirectURI), text(r.State), text(r.Nonce)
	r.CodeChallenge, r.Prompt, r.LoginHint, r.Resource = text(r.CodeChallenge), text(r.Prompt), text(r.LoginHint), text(r.Resource)
	r.Scopes, r.ACRValues = texts(r.Scopes), texts(r.ACRValues)
	if r.MaxAge != nil {
		n := *r.MaxAge
		r.MaxAge = &n
	}
	if !r.SignInAfter.IsZero() {
		r.SignInAfter = ts(r.SignInAfter)
	}
	r.CreatedAt, r.ExpiresAt = ts(r.CreatedAt), ts(r.ExpiresAt)
	return r
}

func authRequestArgs(r identity.AuthRequest) []any {
	var maxAge any
	if r.MaxAge != nil {
		maxAge = int64(*r.MaxAge)
	}
	return []any{r.ID, r.ClientID, r.RedirectURI, r.Scopes, r.State, r.Nonce, r.CodeChallenge, r.Prompt, r.LoginHint, maxAge,
		r.ACRValues, nullTime(r.SignInAfter), r.Answered, r.CreatedAt, r.ExpiresAt, r.Resource}
}

// CreateAuthRequest implements identity.AuthRequestStore.
func (s *DB) CreateAuthRequest(ctx context.Context, r identity.AuthRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO auth_requests (`+authRequestCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, authRequestArgs(storedAuthRequest(r))...)
	return s.fail(conflict(err))
}

// GetAuthRequest implements identity.AuthRequestStore.
func (s *DB) GetAuthRequest(ctx context.Context, id string) (identity.AuthRequest, error) {
	return getRow(ctx, s, id, errNoAuthRequest, scanAuthRequest, `SELECT `+authRequestCols+` FROM auth_requests WHERE id = $1`)
}

// UpdateAuthRequest implements identity.AuthRequestStore: the row is locked FOR UPDATE as it is
// read, so of two answers to one request the second waits, and sees the first.
func (s *DB) UpdateAuthRequest(ctx context.Context, id string, fn func(identity.AuthRequest) (identity.AuthRequest, error)) (identity.AuthRequest, error) {
	return updateRow(ctx, s, id, errNoAuthRequest, `SELECT `+authRequestCols+` FROM auth_requests WHERE id = $1 FOR UPDATE`, scanAuthRequest,
		func(old identity.AuthRequest) (identity.AuthRequest, bool, error) { return kept(old.ApplyUpdate(fn)) },
		func(tx pgx.Tx, r identity.AuthRequest) (identity.AuthRequest, error) {
			r = storedAuthRequest(r)
			// CheckUpdate allowed nothing else to change.
			_, err := tx.Exec(ctx, `UPDATE auth_requests SET sign_in_after = $2, answered = $3 WHERE id = $1`,
				r.ID, nullTime(r.SignInAfter), r.Answered)
			return r, err
		})
}

// DeleteDeadAuthRequests implements identity.AuthRequestStore, in batches as DeleteDeadCodes.
func (s *DB) DeleteDeadAuthRequests(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM auth_requests WHERE id IN (
		SELECT id FROM auth_requests WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, before)
}
