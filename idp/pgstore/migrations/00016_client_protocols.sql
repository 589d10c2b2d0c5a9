-- +goose Up
-- Issue 30. How a client authenticates at the token endpoint (private_key_jwt with its keys),
-- where its back-channel logout goes, the audiences token exchange may give it, and who
-- registered it (RFC 7591). Every client registered before keeps what it did: a secret, no
-- logout, no exchange, registered by an admin.
ALTER TABLE oauth_clients
    ADD token_endpoint_auth text NOT NULL DEFAULT '',
    ADD jwks text NOT NULL DEFAULT '',
    ADD jwks_uri text NOT NULL DEFAULT '',
    ADD backchannel_logout_uri text NOT NULL DEFAULT '',
    ADD backchannel_logout_session_required boolean NOT NULL DEFAULT false,
    ADD exchange_audiences text[],
    ADD registered_by text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE oauth_clients
    DROP token_endpoint_auth,
    DROP jwks,
    DROP jwks_uri,
    DROP backchannel_logout_uri,
    DROP backchannel_logout_session_required,
    DROP exchange_audiences,
    DROP registered_by;
