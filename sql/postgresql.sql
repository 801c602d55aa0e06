-- queue-mobile-toggle allowlist, PostgreSQL.
-- TIMESTAMP (without time zone) columns hold UTC; NULL means open-ended.
-- Safe to apply again: it creates only what is missing.
CREATE TABLE IF NOT EXISTS queue_mobile_agents (
    number      VARCHAR(15)  NOT NULL CHECK (number ~ '^[0-9]{6,15}$'),
    queue       VARCHAR(64)  NOT NULL,
    penalty     INTEGER      NOT NULL DEFAULT 0 CHECK (penalty >= 0),
    member_name VARCHAR(64)  NULL,
    enabled     SMALLINT     NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    valid_from  TIMESTAMP    NULL,
    valid_until TIMESTAMP    NULL,
    pin_hash    VARCHAR(255) NULL,
    -- 1: the mobile presses 1 to take a queue call; 0: connected on answer
    -- (a desk phone behind a trunk); NULL: [member] confirm of the config.
    confirm_answer SMALLINT  NULL CHECK (confirm_answer IS NULL OR confirm_answer IN (0, 1)),
    -- When a login is allowed, in the PBX's local time, e.g.
    -- 'mon-fri 09:00-18:00, sat 10:00-14:00'; NULL: always (README, Shift windows).
    shift_window VARCHAR(255) NULL,
    PRIMARY KEY (number, queue)
);
