-- +goose Up
-- Issue 30. Dynamic client registration (RFC 7591/7592): the initial access tokens an admin
-- mints, kept by their SHA-256 with their expiry and the uses they have left, and the hash of
-- each registered client's registration access token ('' for a client an admin registered).
CREATE TABLE registration_tokens (
    hash       text COLLATE "C" PRIMARY KEY,
    id         text COLLATE "C" NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    uses_left  integer NOT NULL CHECK (uses_left > 0)
);
CREATE INDEX registration_tokens_expiry_idx ON registration_tokens (expires_at);

ALTER TABLE oauth_clients ADD registration_access_hash text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE oauth_clients DROP registration_access_hash;
DROP TABLE registration_tokens;
