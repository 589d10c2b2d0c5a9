-- +goose Up
-- What the OpenID Connect flow needs: an optional email on users (unique in any letter case
-- among the users who have one; '' for none), authorization codes and remembered consents.
ALTER TABLE users ADD email text NOT NULL DEFAULT '', ADD email_verified boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email)) WHERE email <> '';

-- Authorization codes, by the hash of the code; kept, used, until they expire so that a second
-- use is recognised as a replay. The user and the client are not foreign keys (a code is made
-- for whoever just signed in, and nothing refuses it); DeleteUser and DeleteClient delete
-- theirs by the indexes below. The lists are NULL for a nil list and '{}' for an empty one.
CREATE TABLE auth_codes (
    hash           text COLLATE "C" PRIMARY KEY,        -- SHA-256 of the code
    client_id      text COLLATE "C" NOT NULL,
    redirect_uri   text NOT NULL,
    code_challenge text NOT NULL,                       -- '' when none was sent
    nonce          text NOT NULL,
    scopes         text[],
    user_id        text COLLATE "C" NOT NULL,
    epoch          bigint NOT NULL,
    session_id     text NOT NULL,
    auth_time      timestamptz NOT NULL,
    amr            text[],
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    used           boolean NOT NULL,
    refresh_hash   text NOT NULL                        -- '' when the redemption issued none
);
CREATE INDEX auth_codes_expires_idx ON auth_codes (expires_at);
CREATE INDEX auth_codes_user_idx ON auth_codes (user_id);
CREATE INDEX auth_codes_client_idx ON auth_codes (client_id);

-- A user's remembered consent to a client: one per pair, gone with either.
CREATE TABLE consents (
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  text COLLATE "C" NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scopes     text[] NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_idx ON consents (client_id);

-- +goose Down
DROP TABLE consents;
DROP TABLE auth_codes;
DROP INDEX users_email_lower_key;
ALTER TABLE users DROP email, DROP email_verified;
