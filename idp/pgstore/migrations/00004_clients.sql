-- +goose Up
-- Registered OAuth 2.0 / OpenID Connect clients (issue 15), every field in a column of its own.
-- The lists are NULL for a nil list and '{}' for an empty one, as refresh_families.audience.
CREATE TABLE oauth_clients (
    id                        text COLLATE "C" PRIMARY KEY,   -- listed in byte order, as bbolt does
    name                      text NOT NULL,
    public                    boolean NOT NULL,
    secret_hash               text NOT NULL,                  -- '' for a public client
    redirect_uris             text[],
    post_logout_redirect_uris text[],
    grant_types               text[],
    scopes                    text[],
    first_party               boolean NOT NULL,
    created_at                timestamptz NOT NULL
);
-- Deleting a client revokes the families issued to it.
CREATE INDEX refresh_families_client_idx ON refresh_families (client_id);

-- +goose Down
DROP INDEX refresh_families_client_idx;
DROP TABLE oauth_clients;
