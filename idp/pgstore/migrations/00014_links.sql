-- +goose Up
-- Issue 28. Links the IdP mails (a verification, a password reset, an invitation): only the
-- SHA-256 of the token a link carries is kept. A used link stays, used, until it expires, so its
-- token is refused again; the garbage collector removes the expired ones by the index below.
-- user_id is not a foreign key: a link of a deleted user is refused where it is used.
CREATE TABLE links (
    id         text COLLATE "C" PRIMARY KEY,
    hash       text COLLATE "C" NOT NULL UNIQUE,
    kind       text NOT NULL,
    user_id    text COLLATE "C" NOT NULL,              -- '' for an invitation
    email      text NOT NULL,
    groups     text[] NOT NULL,
    epoch      bigint NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz                             -- NULL until used
);
CREATE INDEX links_expires_idx ON links (expires_at);
CREATE INDEX links_kind_idx ON links (kind, created_at, id);

-- +goose Down
DROP TABLE links;
