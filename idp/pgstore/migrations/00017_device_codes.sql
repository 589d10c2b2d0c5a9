-- +goose Up
-- Issue 30. Device authorizations (RFC 8628): the device_code's hash, the user code a person
-- types (unique while stored), what the device asked for, the person's answer and the device's
-- last poll. amr is NULL for none given, '{}' for an empty list.
CREATE TABLE device_codes (
    hash         text COLLATE "C" PRIMARY KEY,
    user_code    text COLLATE "C" NOT NULL UNIQUE,
    client_id    text COLLATE "C" NOT NULL,
    scopes       text[],
    resource     text NOT NULL,
    status       text NOT NULL,
    user_id      text COLLATE "C" NOT NULL,
    session_id   text COLLATE "C" NOT NULL,
    epoch        bigint NOT NULL,
    auth_time    timestamptz,
    amr          text[],
    idp          text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    interval_s   integer NOT NULL,
    last_poll_at timestamptz,
    used         boolean NOT NULL
);
CREATE INDEX device_codes_expires_idx ON device_codes (expires_at);

-- +goose Down
DROP TABLE device_codes;
