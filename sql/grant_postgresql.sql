-- queue-mobile-toggle: the AGI's read-only role, PostgreSQL (psql 10 or later).
-- Run it after sql/postgresql.sql, in the database that holds the table,
-- with the password as a psql variable (it is never stored in this file):
--
--   psql -v agi_password='long-random-secret' -d asterisk -f sql/grant_postgresql.sql
--
-- It creates (or updates) the login role qmt_agi, sets its password, and
-- leaves it with CONNECT on this database, USAGE on the table's schema and
-- SELECT on queue_mobile_agents: nothing else.
-- Optional: -v agi_user=name for another role name (default qmt_agi).
-- Safe to run again: the end state is the same.
\set ON_ERROR_STOP on
\if :{?agi_user}
\else
\set agi_user qmt_agi
\endif
\if :{?agi_password}
\else
DO $$ BEGIN RAISE EXCEPTION
  'grant_postgresql.sql: give the password: psql -v agi_password=... -d <database> -f sql/grant_postgresql.sql';
END $$;
\endif

SELECT format('CREATE ROLE %I LOGIN', :'agi_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'agi_user') \gexec

ALTER ROLE :"agi_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    PASSWORD :'agi_password';
REVOKE ALL ON TABLE queue_mobile_agents FROM :"agi_user";
GRANT CONNECT ON DATABASE :"DBNAME" TO :"agi_user";
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', schemaname, :'agi_user')
  FROM pg_tables WHERE tablename = 'queue_mobile_agents'
   AND schemaname = ANY (current_schemas(false)) LIMIT 1 \gexec
GRANT SELECT ON TABLE queue_mobile_agents TO :"agi_user";
