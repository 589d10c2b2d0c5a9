-- +goose Up
-- Issue 25. A client whose users' access tokens pass /verify (forward-auth at the edge), as the
-- first-party client's do; every client registered before may not.
ALTER TABLE oauth_clients ADD forward_auth boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE oauth_clients DROP forward_auth;
