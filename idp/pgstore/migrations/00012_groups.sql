-- +goose Up
-- Issue 27. Groups, kept by admins, and who is a member of which. A membership goes with its
-- group or its user (ON DELETE CASCADE), so DeleteGroup and DeleteUser remove them in their
-- own statement; the index on user_id finds a user's groups for their tokens.
CREATE TABLE groups (
    name       text COLLATE "C" PRIMARY KEY,           -- [a-z0-9._:-]{1,64}
    created_at timestamptz NOT NULL
);

CREATE TABLE group_members (
    group_name text COLLATE "C" NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_name, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id, group_name);

-- +goose Down
DROP TABLE group_members;
DROP TABLE groups;
