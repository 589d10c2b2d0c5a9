-- The work-item service's tables. The IdP may share the database: its tables have other names
-- and its schema version is kept in its own table.

-- +goose Up
CREATE TABLE workitems (
    -- Ids come from one sequence for the whole store: they only grow and are never reused, not
    -- even after a delete, as with bbolt. Only an import (store copy) gives its own id.
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- bytea, not text: an owner is issuer NUL subject, and text cannot hold a NUL byte.
    owner      bytea       NOT NULL,
    title      text        NOT NULL,
    done       boolean     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- A user's page of items, oldest first: GET /workitems.
CREATE INDEX workitems_owner_id ON workitems (owner, id);

-- +goose Down
DROP TABLE workitems;
