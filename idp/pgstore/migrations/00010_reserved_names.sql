-- +goose Up
-- Issue 25. A deleted user's username and email, which nobody may take until an admin releases
-- them (applications behind forward-auth key their data on the username). CreateUser and
-- UpdateUser check it after writing the user's row, as they check deleted_users.
CREATE TABLE reserved_names (
    username_normalized text COLLATE "C" PRIMARY KEY,
    username            text NOT NULL,
    user_id             text COLLATE "C" NOT NULL,
    email               text NOT NULL DEFAULT ''
);
CREATE INDEX reserved_names_email_lower_idx ON reserved_names (lower(email)) WHERE email <> '';

-- +goose Down
DROP TABLE reserved_names;
