-- +goose Up
-- Second factors (issue 16): a user's TOTP authenticator and recovery-code hashes as one JSON
-- object — the identity.SecondFactors struct, its TOTP secret sealed by the IdP when a secrets
-- key is configured, base64 in the JSON — so factors added later (passkeys) live beside them;
-- '{}' for none. Pending pre-sessions (password right, a second factor still owed), and the
-- sign-in methods (amr) a refresh family's access tokens carry: NULL for a nil list, '{}' for
-- an empty one, as refresh_families.audience.
ALTER TABLE users ADD second_factors jsonb NOT NULL DEFAULT '{}';
ALTER TABLE sessions ADD pending boolean NOT NULL DEFAULT false;
ALTER TABLE refresh_families ADD amr text[];

-- +goose Down
ALTER TABLE refresh_families DROP amr;
ALTER TABLE sessions DROP pending;
ALTER TABLE users DROP second_factors;
