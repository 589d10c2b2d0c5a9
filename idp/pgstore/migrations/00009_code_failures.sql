-- +goose Up
-- Refused one-time codes per account, shared by every replica (auth's code-step lockout): one
-- row per user id that has had a code refused recently.
CREATE TABLE code_failures (
    user_id    text COLLATE "C" PRIMARY KEY,
    first_at   timestamptz NOT NULL,
    until_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    touched_at timestamptz NOT NULL,
    failures   integer     NOT NULL,
    lockouts   integer     NOT NULL
);
CREATE INDEX code_failures_touched ON code_failures (touched_at);

-- +goose Down
DROP TABLE code_failures;
