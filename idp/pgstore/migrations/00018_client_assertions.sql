-- +goose Up
-- Issue 30. The jtis of the client assertions (private_key_jwt) the IdP accepted, per client,
-- until each assertion expires: a jti is accepted once. The garbage collector removes the
-- expired rows (the index on expires_at finds them).
CREATE TABLE client_assertions (
    client_id  text COLLATE "C" NOT NULL,
    jti        text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expires ON client_assertions (expires_at);

-- +goose Down
DROP TABLE client_assertions;
