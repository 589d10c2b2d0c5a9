-- +goose Up
-- Issue 30. When the user signed in for the sign-in that made a refresh family: the auth_time
-- of the ID tokens its refreshes issue. NULL for a family made before families kept it.
ALTER TABLE refresh_families ADD COLUMN auth_time timestamptz;

-- +goose Down
ALTER TABLE refresh_families DROP COLUMN auth_time;
