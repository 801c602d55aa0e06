-- queue-mobile-toggle allowlist, SQLite 3 (the embedded default).
-- Times are UTC text 'YYYY-MM-DD HH:MM:SS'; NULL means open-ended.
-- Safe to apply again: it creates only what is missing.
CREATE TABLE IF NOT EXISTS queue_mobile_agents (
    number      TEXT    NOT NULL
                CHECK (length(number) BETWEEN 6 AND 15 AND number NOT GLOB '*[^0-9]*'),
    queue       TEXT    NOT NULL CHECK (length(queue) BETWEEN 1 AND 64),
    penalty     INTEGER NOT NULL DEFAULT 0 CHECK (penalty >= 0),
    member_name TEXT,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    valid_from  TEXT CHECK (valid_from  IS NULL OR valid_from  GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]*'),
    valid_until TEXT CHECK (valid_until IS NULL OR valid_until GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]*'),
    pin_hash    TEXT,
    -- 1: the mobile presses 1 to take a queue call; 0: connected on answer
    -- (a desk phone behind a trunk); NULL: [member] confirm of the config.
    confirm_answer INTEGER CHECK (confirm_answer IS NULL OR confirm_answer IN (0, 1)),
    -- When a login is allowed, in the PBX's local time, e.g.
    -- 'mon-fri 09:00-18:00, sat 10:00-14:00'; NULL: always (README, Shift windows).
    shift_window TEXT,
    PRIMARY KEY (number, queue)
);
