-- +goose Up
-- The clients that got tokens from a session (an authorization code made from it was redeemed):
-- those with a back-channel logout URI are told when it ends.
ALTER TABLE sessions ADD COLUMN clients text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE sessions DROP COLUMN clients;
