-- The IdP's store: users, signing keys, refresh-token families with every token hash they
-- issued, browser sessions and the IdP's own secrets. Every field of an entity has a column
-- of its own. Identifiers and hashes are COLLATE "C", so they compare byte by byte, as the
-- bbolt store orders them. A time the domain leaves zero is stored as 0001-01-01 UTC (Go's
-- zero time), except a key's retired_at and delete_at, which are NULL until it is retired.

-- +goose Up
CREATE TABLE users (
    id                  text COLLATE "C" PRIMARY KEY,
    username            text NOT NULL,                  -- as typed at signup
    username_normalized text COLLATE "C" NOT NULL,      -- identity.NormalizeUsername(username)
    password_hash       text NOT NULL,                  -- PHC string
    created_at          timestamptz NOT NULL,
    epoch               bigint NOT NULL,                -- credential epoch
    CONSTRAINT users_username_normalized_key UNIQUE (username_normalized)
);

CREATE TABLE signing_keys (
    id          text COLLATE "C" PRIMARY KEY,           -- the kid
    state       text NOT NULL,                          -- next, current, retired
    private_der bytea,                                  -- PKCS #8 (NULL for a nil slice)
    created_at  timestamptz NOT NULL,
    signs_from  timestamptz NOT NULL,
    retired_at  timestamptz,                            -- NULL unless retired
    delete_at   timestamptz                             -- NULL unless retired
);

CREATE TABLE refresh_families (
    id            text COLLATE "C" PRIMARY KEY,
    user_id       text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id     text NOT NULL,
    scope         text NOT NULL,
    audience      text[],                               -- NULL for a nil list, '{}' for an empty one
    session_id    text COLLATE "C",                     -- NULL when bound to no browser session
    epoch         bigint NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    current_token text COLLATE "C" NOT NULL,            -- hash of the one live token
    revoked       boolean NOT NULL
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id, created_at, id);
CREATE INDEX refresh_families_session_idx ON refresh_families (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX refresh_families_expires_idx ON refresh_families (expires_at);
CREATE INDEX refresh_families_revoked_idx ON refresh_families (id) WHERE revoked;

-- Every token hash a family issued, so a spent token still finds its family (reuse detection).
CREATE TABLE refresh_tokens (
    token_hash text COLLATE "C" PRIMARY KEY,
    family_id  text COLLATE "C" NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE sessions (
    id           text COLLATE "C" PRIMARY KEY,
    token_hash   text COLLATE "C" NOT NULL,             -- SHA-256 of the cookie's secret
    user_id      text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    epoch        bigint NOT NULL,
    auth_time    timestamptz NOT NULL,
    amr          text[],                                -- NULL for a nil list
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    idle_ttl     interval NOT NULL,                     -- 0 or less: no idle limit
    expires_at   timestamptz NOT NULL,
    remote_addr  text NOT NULL,
    user_agent   text NOT NULL,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at, id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_last_seen_idx ON sessions (last_seen_at);

CREATE TABLE secrets (
    name       text COLLATE "C" PRIMARY KEY,
    value      bytea NOT NULL CHECK (length(value) > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE secrets;
DROP TABLE sessions;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE signing_keys;
DROP TABLE users;
