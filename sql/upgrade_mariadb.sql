-- queue-mobile-toggle: adds the columns of later versions to a table made
-- by an earlier sql/mariadb.sql. Safe to run again: it adds only what is
-- missing (MariaDB 10.3 or later).
--   mysql asterisk < sql/upgrade_mariadb.sql
ALTER TABLE queue_mobile_agents
    ADD COLUMN IF NOT EXISTS pin_hash VARCHAR(255) NULL,
    ADD COLUMN IF NOT EXISTS confirm_answer TINYINT NULL,
    ADD COLUMN IF NOT EXISTS shift_window VARCHAR(255) NULL,
    ADD CONSTRAINT IF NOT EXISTS qma_confirm_flag CHECK (confirm_answer IS NULL OR confirm_answer IN (0, 1));
