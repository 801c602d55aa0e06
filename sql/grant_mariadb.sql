-- queue-mobile-toggle: the AGI's read-only account, MariaDB (10.3 or later).
-- Run it as root after sql/mariadb.sql, in the database that holds the
-- table. The password comes first on standard input, from a file only root
-- can read that holds the line  SET @qmt_agi_password = 'long-random-secret';
-- never from the command line, where ps shows it to every user:
--
--   cat /root/qmt_agi_password.sql sql/grant_mariadb.sql | mysql asterisk
--
-- (on standard input: inside `mysql -e "SOURCE ..."` an error does not
-- change mysql's exit status).
-- It creates (if missing) 'qmt_agi'@'localhost' (socket connections) and
-- 'qmt_agi'@'127.0.0.1' (TCP; with skip-name-resolve 'localhost' does not
-- match TCP). Every account of that name, on these hosts or any other,
-- gets the password and SELECT on queue_mobile_agents of this database,
-- and nothing else: other privileges, roles, its default role and PROXY
-- grants are revoked. PUBLIC (MariaDB 10.11+) loses its privileges on this
-- database and on the table, since every account has them.
-- Optional, not secret (e.g. mysql --init-command="SET @qmt_agi_host = ..."):
--   @qmt_agi_host = '10.20.0.%'   also the account for PBXs on that network
--   @qmt_agi_user = 'name'        another account name (default qmt_agi)
-- Safe to run again: the end state is the same.
DELIMITER //
BEGIN NOT ATOMIC
    -- No variable is named like a column of mysql.*: it would shadow it.
    DECLARE account_name VARCHAR(80) DEFAULT COALESCE(NULLIF(@qmt_agi_user, ''), 'qmt_agi');
    DECLARE database_name VARCHAR(200) DEFAULT CONCAT('`', REPLACE(DATABASE(), '`', '``'), '`');
    DECLARE allowlist_table VARCHAR(250) DEFAULT CONCAT(database_name, '.`queue_mobile_agents`');
    DECLARE account VARCHAR(400);
    IF DATABASE() IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
            'grant_mariadb.sql: name the database: cat <password file> sql/grant_mariadb.sql | mysql <database>';
    END IF;
    IF COALESCE(@qmt_agi_password, '') = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
            'grant_mariadb.sql: give the password first: cat <password file> sql/grant_mariadb.sql | mysql <database>, the file holding SET @qmt_agi_password = ''...'';';
    END IF;
    IF EXISTS (SELECT 1 FROM mysql.db WHERE User = 'PUBLIC' AND Host = '' AND Db = DATABASE()) THEN
        EXECUTE IMMEDIATE CONCAT('REVOKE ALL PRIVILEGES ON ', database_name, '.* FROM PUBLIC');
    END IF;
    IF EXISTS (SELECT 1 FROM mysql.tables_priv WHERE User = 'PUBLIC' AND Host = '' AND Db = DATABASE()
               AND Table_name = 'queue_mobile_agents') THEN
        EXECUTE IMMEDIATE CONCAT('REVOKE ALL PRIVILEGES ON ', allowlist_table, ' FROM PUBLIC');
    END IF;
    FOR wanted IN (SELECT 'localhost' AS host
                   UNION SELECT '127.0.0.1'
                   UNION SELECT @qmt_agi_host FROM DUAL WHERE COALESCE(@qmt_agi_host, '') <> '') DO
        EXECUTE IMMEDIATE CONCAT('CREATE USER IF NOT EXISTS ', QUOTE(account_name), '@', QUOTE(wanted.host),
                                 ' IDENTIFIED BY ', QUOTE(@qmt_agi_password));
    END FOR;
    FOR existing IN (SELECT Host AS host_name FROM mysql.user WHERE User = account_name AND is_role = 'N') DO
        SET account = CONCAT(QUOTE(account_name), '@', QUOTE(existing.host_name));
        EXECUTE IMMEDIATE CONCAT('ALTER USER ', account, ' IDENTIFIED BY ', QUOTE(@qmt_agi_password));
        -- REVOKE ALL leaves PROXY grants, and roles on some versions.
        FOR proxied IN (SELECT Proxied_user AS name, Proxied_host AS host FROM mysql.proxies_priv
                        WHERE User = account_name AND Host = existing.host_name) DO
            EXECUTE IMMEDIATE CONCAT('REVOKE PROXY ON ', QUOTE(proxied.name), '@', QUOTE(proxied.host),
                                     ' FROM ', account);
        END FOR;
        FOR granted IN (SELECT Role AS name FROM mysql.roles_mapping
                        WHERE User = account_name AND Host = existing.host_name) DO
            EXECUTE IMMEDIATE CONCAT('REVOKE `', REPLACE(granted.name, '`', '``'), '` FROM ', account);
        END FOR;
        EXECUTE IMMEDIATE CONCAT('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ', account);
        EXECUTE IMMEDIATE CONCAT('SET DEFAULT ROLE NONE FOR ', account);
        EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON ', allowlist_table, ' TO ', account);
    END FOR;
END //
DELIMITER ;
