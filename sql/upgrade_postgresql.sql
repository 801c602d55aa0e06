-- queue-mobile-toggle: adds the columns of later versions to a table made
-- by an earlier sql/postgresql.sql. Safe to run again: it adds only what is
-- missing (PostgreSQL 9.6 or later).
--   psql -d asterisk -v ON_ERROR_STOP=1 -f sql/upgrade_postgresql.sql
ALTER TABLE queue_mobile_agents ADD COLUMN IF NOT EXISTS pin_hash VARCHAR(255) NULL;
ALTER TABLE queue_mobile_agents ADD COLUMN IF NOT EXISTS confirm_answer SMALLINT NULL
    CHECK (confirm_answer IS NULL OR confirm_answer IN (0, 1));
ALTER TABLE queue_mobile_agents ADD COLUMN IF NOT EXISTS shift_window VARCHAR(255) NULL;
