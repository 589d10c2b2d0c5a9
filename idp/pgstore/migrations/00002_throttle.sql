-- +goose Up
-- Failed-login counters, shared by every replica (auth.Throttle). Keys join an account, an
-- address or a device with NUL bytes, so they are bytea, not text.
CREATE TABLE throttle_counters (
    key        bytea       PRIMARY KEY,
    first_at   timestamptz NOT NULL,
    until_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    touched_at timestamptz NOT NULL,
    failures   integer     NOT NULL,
    lockouts   integer     NOT NULL
);
CREATE INDEX throttle_counters_touched ON throttle_counters (touched_at);

-- +goose Down
DROP TABLE throttle_counters;
