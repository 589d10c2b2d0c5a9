-- +goose Up
-- Issue 29. The links between local users and people at upstream identity providers, by the
-- connector's id and the upstream's subject only (never by email). A user's links go with
-- their row (ON DELETE CASCADE: DeleteUser deletes the row, and keeps only a tombstone); the
-- index on user_id finds a user's links. groups is NULL for none given, '{}' for an empty list.
CREATE TABLE federations (
    connector  text COLLATE "C" NOT NULL,
    subject    text COLLATE "C" NOT NULL,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    groups     text[],
    created_at timestamptz NOT NULL,
    checked_at timestamptz,                            -- NULL until the upstream is asked again
    PRIMARY KEY (connector, subject)
);
-- One link per user and connector: two replicas linking a user at once cannot both succeed.
CREATE UNIQUE INDEX federations_user_idx ON federations (user_id, connector);

-- The connector a sign-in went through, for the ID token's idp claim: '' for a local account.
ALTER TABLE sessions ADD COLUMN idp text NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN idp text NOT NULL DEFAULT '';
ALTER TABLE auth_codes ADD COLUMN idp text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE auth_codes DROP COLUMN idp;
ALTER TABLE refresh_families DROP COLUMN idp;
ALTER TABLE sessions DROP COLUMN idp;
DROP TABLE federations;
