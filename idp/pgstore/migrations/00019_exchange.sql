-- +goose Up
-- Issue 30. When the user signed in for the sign-in that made a refresh family: the auth_time
-- of the ID tokens its refreshes issue. NULL for a family made before families kept it.
ALTER TABLE refresh_families ADD COLUMN auth_time timestamptz;
-- RFC 8707's resource indicator an authorization request asked for, and its code is bound to:
-- '' for none.
ALTER TABLE auth_requests ADD COLUMN resource text NOT NULL DEFAULT '';
ALTER TABLE auth_codes ADD COLUMN resource text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE auth_codes DROP COLUMN resource;
ALTER TABLE auth_requests DROP COLUMN resource;
ALTER TABLE refresh_families DROP COLUMN auth_time;
