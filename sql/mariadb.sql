-- queue-mobile-toggle allowlist, MariaDB / MySQL.
-- Run it in the database the AGI reads (e.g. `mysql asterisk < sql/mariadb.sql`).
-- DATETIME columns hold UTC; NULL means open-ended.
-- Safe to apply again: it creates only what is missing.
CREATE TABLE IF NOT EXISTS queue_mobile_agents (
    number      VARCHAR(15)  NOT NULL,
    queue       VARCHAR(64)  NOT NULL,
    penalty     INT          NOT NULL DEFAULT 0,
    member_name VARCHAR(64)  NULL,
    enabled     TINYINT      NOT NULL DEFAULT 1,
    valid_from  DATETIME     NULL,
    valid_until DATETIME     NULL,
    pin_hash    VARCHAR(255) NULL,
    -- 1: the mobile presses 1 to take a queue call; 0: connected on answer
    -- (a desk phone behind a trunk); NULL: [member] confirm of the config.
    confirm_answer TINYINT   NULL,
    -- When a login is allowed, in the PBX's local time, e.g.
    -- 'mon-fri 09:00-18:00, sat 10:00-14:00'; NULL: always (README, Shift windows).
    shift_window VARCHAR(255) NULL,
    PRIMARY KEY (number, queue),
    CONSTRAINT qma_number_digits CHECK (number REGEXP '^[0-9]{6,15}$'),
    CONSTRAINT qma_penalty_nonneg CHECK (penalty >= 0),
    CONSTRAINT qma_enabled_flag CHECK (enabled IN (0, 1)),
    CONSTRAINT qma_confirm_flag CHECK (confirm_answer IS NULL OR confirm_answer IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
