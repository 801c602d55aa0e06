-- queue-mobile-toggle: adds the columns of later versions to a table made
-- by an earlier sql/sqlite.sql. install.sh does this for you when run again
-- (it adds only the missing ones). By hand:
--   sqlite3 /var/lib/asterisk/queue_mobile_toggle.sqlite < sql/upgrade_sqlite.sql
-- SQLite has no ADD COLUMN IF NOT EXISTS: a column already there makes its
-- line fail with "duplicate column name", changing nothing, and the next
-- line still runs; so a second run is harmless, only noisy.
ALTER TABLE queue_mobile_agents ADD COLUMN pin_hash TEXT;
ALTER TABLE queue_mobile_agents ADD COLUMN confirm_answer INTEGER
    CHECK (confirm_answer IS NULL OR confirm_answer IN (0, 1));
ALTER TABLE queue_mobile_agents ADD COLUMN shift_window TEXT;
