-- +goose Up
-- When an IdP first served from this database: `idp store copy` refuses to copy into it from
-- then on, since a copy would bring back users, sessions and tokens that were ended here.
CREATE TABLE idp_served (first_at timestamptz NOT NULL);

-- +goose Down
DROP TABLE idp_served;
