package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoClient = apperr.Errorf(apperr.ENOTFOUND, "Client not found")

const clientCols = `id, name, public, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes,
	first_party, created_at, forward_auth, token_endpoint_auth, jwks, jwks_uri, backchannel_logout_uri,
	backchannel_logout_session_required, exchange_audiences, registered_by, registration_access_hash`

// insertClient writes a client's row from clientArgs.
const insertClient = `INSERT INTO oauth_clients (` + clientCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`

// scanClient reads a client. pgx reads a NULL array as a nil slice and '{}' as an empty one,
// so each list reads back as it was stored.
func scanClient(row pgx.Row) (identity.Client, error) {
	var c identity.Client
	err := row.Scan(&c.ID, &c.Name, &c.Public, &c.SecretHash, &c.RedirectURIs, &c.PostLogoutRedirectURIs,
		&c.GrantTypes, &c.Scopes, &c.FirstParty, &c.CreatedAt, &c.ForwardAuth, &c.TokenEndpointAuth, &c.JWKS, &c.JWKSURI,
		&c.BackchannelLogoutURI, &c.BackchannelLogoutSessionRequired, &c.ExchangeAudiences, &c.RegisteredBy, &c.RegistrationAccessHash)
	c.CreatedAt = c.CreatedAt.UTC()
	return found(c, err, errNoClient)
}

// storedClient is c as it is written and as every later read sees it: text made storable
// (the bbolt store's JSON coerces invalid UTF-8 alike), lists copies of their own (nil stays
// nil), the time UTC to the microsecond.
func storedClient(c identity.Client) identity.Client {
	c.Name, c.SecretHash = text(c.Name), text(c.SecretHash)
	c.RedirectURIs, c.PostLogoutRedirectURIs = texts(c.RedirectURIs), texts(c.PostLogoutRedirectURIs)
	c.GrantTypes, c.Scopes = texts(c.GrantTypes), texts(c.Scopes)
	c.TokenEndpointAuth, c.JWKS, c.JWKSURI = text(c.TokenEndpointAuth), text(c.JWKS), text(c.JWKSURI)
	c.BackchannelLogoutURI, c.RegisteredBy = text(c.BackchannelLogoutURI), text(c.RegisteredBy)
	c.ExchangeAudiences = texts(c.ExchangeAudiences)
	c.RegistrationAccessHash = text(c.RegistrationAccessHash)
	c.CreatedAt = ts(c.CreatedAt)
	return c
}

func clientArgs(c identity.Client) []any {
	return []any{c.ID, c.Name, c.Public, c.SecretHash, c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes,
		c.FirstParty, c.CreatedAt, c.ForwardAuth, c.TokenEndpointAuth, c.JWKS, c.JWKSURI, c.BackchannelLogoutURI,
		c.BackchannelLogoutSessionRequired, c.ExchangeAudiences, c.RegisteredBy, c.RegistrationAccessHash}
}

// CreateClient implements identity.ClientStore.
func (s *DB) CreateClient(ctx context.Context, c identity.Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	_, err := s.exec(ctx, insertClient,
		clientArgs(storedClient(c))...)
	return s.fail(conflict(err))
}

// GetClient implements identity.ClientStore.
func (s *DB) GetClient(ctx context.Context, id string) (identity.Client, error) {
	return getRow(ctx, s, id, errNoClient, scanClient, `SELECT `+clientCols+` FROM oauth_clients WHERE id = $1`)
}

// ListClients implements identity.ClientStore: the id is COLLATE "C", so the order is the
// bytes' (the bbolt store's).
func (s *DB) ListClients(ctx context.Context) ([]identity.Client, error) {
	return list(ctx, s, scanClient, `SELECT `+clientCols+` FROM oauth_clients ORDER BY id`)
}

// UpdateClient implements identity.ClientStore: the client's row is locked FOR UPDATE as it is
// read, so concurrent updaters queue.
func (s *DB) UpdateClient(ctx context.Context, id string, fn func(identity.Client) (identity.Client, error)) (identity.Client, error) {
	return updateRow(ctx, s, id, errNoClient, `SELECT `+clientCols+` FROM oauth_clients WHERE id = $1 FOR UPDATE`, scanClient,
		func(old identity.Client) (identity.Client, bool, error) { return kept(identity.Apply(old, fn)) },
		func(tx pgx.Tx, c identity.Client) (identity.Client, error) {
			c = storedClient(c)
			_, err := tx.Exec(ctx, `UPDATE oauth_clients SET name = $2, public = $3, secret_hash = $4, redirect_uris = $5,
				post_logout_redirect_uris = $6, grant_types = $7, scopes = $8, first_party = $9, created_at = $10, forward_auth = $11,
				token_endpoint_auth = $12, jwks = $13, jwks_uri = $14, backchannel_logout_uri = $15,
				backchannel_logout_session_required = $16, exchange_audiences = $17, registered_by = $18,
				registration_access_hash = $19
				WHERE id = $1`, clientArgs(c)...)
			return c, err
		})
}

// DeleteClient implements identity.ClientStore: the row goes with the consents given to the
// client (ON DELETE CASCADE), and the codes issued to it are deleted and the families issued to
// it revoked, in one transaction (the indexes auth_codes_client_idx and
// refresh_families_client_idx find them).
// A family created for the client after this commits is not revoked: whoever issues one
// checks that its client is registered.
func (s *DB) DeleteClient(ctx context.Context, id string) error {
	return s.writeFor(ctx, id, errNoClient, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM oauth_clients WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errNoClient
		}
		if _, err := tx.Exec(ctx, `DELETE FROM auth_codes WHERE client_id = $1`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE refresh_families SET revoked = true WHERE client_id = $1 AND NOT revoked`, id)
		return err
	})
}
