-- +goose Up
-- Issue 17. A user's flags: disabled (may not sign in), admin (may be granted idp:admin), and
-- when they last signed in (NULL: never). The ids of deleted users, which CreateUser refuses
-- for ever. The audit trail: security events, newest first by id, looked up by user, by type
-- and by age (the retention's delete); '' where an event has no such field.
ALTER TABLE users ADD disabled boolean NOT NULL DEFAULT false, ADD admin boolean NOT NULL DEFAULT false,
    ADD last_login_at timestamptz;

CREATE TABLE deleted_users (
    id text COLLATE "C" PRIMARY KEY
);

CREATE TABLE audit_events (
    id        bigserial PRIMARY KEY,
    time      timestamptz NOT NULL,
    type      text NOT NULL,
    user_id   text COLLATE "C" NOT NULL DEFAULT '',
    actor     text NOT NULL DEFAULT '',
    client_ip text NOT NULL DEFAULT '',
    outcome   text NOT NULL DEFAULT '',
    detail    text NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, id);
CREATE INDEX audit_events_type_idx ON audit_events (type, id);
CREATE INDEX audit_events_time_idx ON audit_events (time);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE deleted_users;
ALTER TABLE users DROP last_login_at, DROP admin, DROP disabled;
