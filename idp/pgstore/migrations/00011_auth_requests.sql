-- +goose Up
-- Issue 26. Authorization requests kept while the browser is on the login, second-factor or
-- consent page, which carry only the id. They live 30 minutes; answered ones stay until then,
-- so an id is never continued twice, and the garbage collector removes the expired ones by the
-- index below. Not foreign keys: a request is checked against its client when it continues.
-- The lists are NULL for a nil list and '{}' for an empty one.
CREATE TABLE auth_requests (
    id             text COLLATE "C" PRIMARY KEY,
    client_id      text COLLATE "C" NOT NULL,
    redirect_uri   text NOT NULL,
    scopes         text[] NOT NULL,
    state          text NOT NULL,
    nonce          text NOT NULL,
    code_challenge text NOT NULL,                       -- '' when none was sent
    prompt         text NOT NULL,
    login_hint     text NOT NULL,
    max_age        bigint,                             -- NULL when not asked
    acr_values     text[],
    sign_in_after  timestamptz,                        -- NULL until it sends the browser to sign in
    answered       boolean NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX auth_requests_expires_idx ON auth_requests (expires_at);

-- +goose Down
DROP TABLE auth_requests;
