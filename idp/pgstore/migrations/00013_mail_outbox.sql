-- +goose Up
-- The mail outbox: a message is inserted in the transaction of its cause, claimed by any
-- replica's sender (SELECT … FOR UPDATE SKIP LOCKED, then a lease), and deleted once sent or
-- given up on. lease_until and next_attempt_at are NULL for none; the partial order of the
-- index below is the claim's: the oldest due message first.
CREATE TABLE mail_outbox (
    id              text COLLATE "C" PRIMARY KEY,
    to_addr         text NOT NULL,
    subject         text NOT NULL,
    text_body       text NOT NULL,
    html_body       text NOT NULL,
    kind            text NOT NULL,
    user_id         text COLLATE "C" NOT NULL,      -- '' when nobody; no foreign key: a notice outlives its user
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz,                    -- NULL: at once
    attempts        integer NOT NULL,
    lease_until     timestamptz,                    -- NULL: not leased
    last_error      text NOT NULL
);
CREATE INDEX mail_outbox_order_idx ON mail_outbox (created_at, id);

-- +goose Down
DROP TABLE mail_outbox;
