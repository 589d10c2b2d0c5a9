-- +goose Up
-- When a work-item service first served from this database: `workitems store copy` refuses to
-- copy into it from then on, since a copy would bring back items deleted here.
CREATE TABLE workitems_served (first_at timestamptz NOT NULL);

-- +goose Down
DROP TABLE workitems_served;
