-- queue-mobile-toggle: the AGI's read-only role, PostgreSQL (psql 10 or later).
-- Run it as a superuser after sql/postgresql.sql, in the database that holds
-- the table. The password comes on standard input, from a file only root
-- can read that holds it alone on one line; never from the command line,
-- where ps shows it to every user:
--
--   psql -d asterisk -f sql/grant_postgresql.sql < /root/qmt_agi.password
--
-- (with -f, psql's \prompt reads standard input).
-- It creates (or updates) the login role qmt_agi, sets its password, and
-- leaves it with CONNECT on this database, USAGE on the table's schema and
-- SELECT on queue_mobile_agents: nothing else. Whatever was added to the
-- role since is taken back: attributes, settings, memberships, grants in
-- this database and on databases; what it owns here passes to the user
-- running this file (what it owns or holds in OTHER databases stays: see
-- the end). PUBLIC (every role) loses CONNECT and TEMPORARY on this
-- database, CREATE on the table's schema and any right on the table.
-- Optional: -v agi_user=name for another role name (default qmt_agi).
-- Safe to run again: the end state is the same. One transaction.
\set ON_ERROR_STOP on
\if :{?agi_user}
\else
\set agi_user qmt_agi
\endif
-- (-v agi_password=... works too, but shows in ps)
\if :{?agi_password}
\else
\prompt 'Password for the AGI role: ' agi_password
\endif
SELECT :'agi_password' = '' AS agi_no_password \gset
\if :agi_no_password
DO $$ BEGIN RAISE EXCEPTION
  'grant_postgresql.sql: give the password on standard input: psql -d <database> -f sql/grant_postgresql.sql < <password file>';
END $$;
\endif

BEGIN;
SELECT format('CREATE ROLE %I LOGIN', :'agi_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'agi_user') \gexec
SELECT oid AS agi_oid FROM pg_roles WHERE rolname = :'agi_user' \gset

-- CONNECTION LIMIT and VALID UNTIL are left as set: they only narrow.
ALTER ROLE :"agi_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS
    PASSWORD :'agi_password';
-- Settings: a search_path, say, could point the query at another table.
SELECT format('ALTER ROLE %I%s RESET ALL', :'agi_user',
              (SELECT ' IN DATABASE ' || quote_ident(datname) FROM pg_database WHERE oid = setdatabase))
  FROM pg_db_role_setting WHERE setrole = :agi_oid \gexec
-- Memberships (pg_read_all_data, ...). Since 16 a grant is per grantor.
SELECT format('REVOKE %s FROM %I%s CASCADE', roleid::regrole, :'agi_user',
              CASE WHEN current_setting('server_version_num')::int >= 160000
                   THEN ' GRANTED BY ' || grantor::regrole ELSE '' END)
  FROM pg_auth_members WHERE member = :agi_oid \gexec
-- Every right granted to the role here and on databases and tablespaces;
-- DROP OWNED then drops nothing, as the role owns nothing here any more.
REASSIGN OWNED BY :"agi_user" TO CURRENT_USER;
DROP OWNED BY :"agi_user";

REVOKE CONNECT, TEMPORARY ON DATABASE :"DBNAME" FROM PUBLIC;
REVOKE ALL ON TABLE queue_mobile_agents FROM PUBLIC;
SELECT format('REVOKE CREATE ON SCHEMA %s FROM PUBLIC', schema),
       format('GRANT USAGE ON SCHEMA %s TO %I', schema, :'agi_user')
  FROM (SELECT relnamespace::regnamespace AS schema FROM pg_class
         WHERE oid = 'queue_mobile_agents'::regclass) AS allowlist \gexec
GRANT CONNECT ON DATABASE :"DBNAME" TO :"agi_user";
GRANT SELECT ON TABLE queue_mobile_agents TO :"agi_user";
COMMIT;

-- PUBLIC keeps CONNECT on other databases unless their owners took it.
SELECT coalesce(string_agg(quote_ident(datname), ', '), '') AS agi_elsewhere FROM pg_database
 WHERE oid <> (SELECT oid FROM pg_database WHERE datname = current_database()) AND datallowconn
   AND has_database_privilege(:agi_oid, oid, 'CONNECT') \gset
SELECT :'agi_elsewhere' <> '' AS agi_can_go_elsewhere \gset
\if :agi_can_go_elsewhere
\echo 'grant_postgresql.sql: note:' :agi_user 'may still connect to' :agi_elsewhere '- let it into' :DBNAME 'only, in pg_hba.conf'
\endif

-- REASSIGN OWNED and DROP OWNED above work in this database (and on
-- databases and tablespaces) only: what the role owns or was granted in
-- another database stays. This file cannot reach it (it works in one
-- database, in one transaction, and the other may be another
-- application's), so it names those databases (pg_shdepend lists them from
-- anywhere), and the DBA runs in each of them, as a superuser:
--   psql -d <that database> -c 'REASSIGN OWNED BY qmt_agi TO CURRENT_USER; DROP OWNED BY qmt_agi'
SELECT count(*) > 0 AS agi_holds_elsewhere,
       format('grant_postgresql.sql: note: %s still owns objects or holds rights in other databases: %s.'
              ' In each, as a superuser: psql -d <database> -c ''REASSIGN OWNED BY %s TO CURRENT_USER;'
              ' DROP OWNED BY %s''', quote_ident(:'agi_user'), string_agg(DISTINCT quote_ident(d.datname), ', '),
              quote_ident(:'agi_user'), quote_ident(:'agi_user')) AS agi_elsewhere_note
  FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
 WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = :agi_oid AND d.datname <> current_database() \gset
\if :agi_holds_elsewhere
\echo :agi_elsewhere_note
\endif
