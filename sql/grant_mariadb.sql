-- queue-mobile-toggle: the AGI's read-only account, MariaDB (10.3 or later).
-- Run it after sql/mariadb.sql, in the database that holds the table, with
-- the password in a session variable (it is never stored in this file):
--
--   mysql --init-command="SET @qmt_agi_password='long-random-secret'" asterisk < sql/grant_mariadb.sql
--
-- (on standard input: inside `mysql -e "SOURCE ..."` an error does not
-- change mysql's exit status).
-- It creates (or updates) 'qmt_agi'@'localhost' (socket connections) and
-- 'qmt_agi'@'127.0.0.1' (TCP; with skip-name-resolve 'localhost' does not
-- match TCP), sets the password, and leaves each account with SELECT on
-- queue_mobile_agents of this database and nothing else.
-- Optional, in the same SET:
--   @qmt_agi_host = '10.20.0.%'   also the account for PBXs on that network
--   @qmt_agi_user = 'name'        another account name (default qmt_agi)
-- Safe to run again: the end state is the same.
DELIMITER //
BEGIN NOT ATOMIC
    DECLARE account_name VARCHAR(80) DEFAULT COALESCE(NULLIF(@qmt_agi_user, ''), 'qmt_agi');
    DECLARE table_name VARCHAR(200);
    DECLARE account VARCHAR(400);
    IF DATABASE() IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
            'grant_mariadb.sql: name the database: mysql --init-command="SET @qmt_agi_password=..." <database> < sql/grant_mariadb.sql';
    END IF;
    IF COALESCE(@qmt_agi_password, '') = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
            'grant_mariadb.sql: give the password: mysql --init-command="SET @qmt_agi_password=''...''" <database> < sql/grant_mariadb.sql';
    END IF;
    SET table_name = CONCAT('`', REPLACE(DATABASE(), '`', '``'), '`.`queue_mobile_agents`');
    FOR host IN (SELECT 'localhost' AS name
                 UNION SELECT '127.0.0.1'
                 UNION SELECT @qmt_agi_host FROM DUAL WHERE COALESCE(@qmt_agi_host, '') <> '') DO
        SET account = CONCAT(QUOTE(account_name), '@', QUOTE(host.name));
        EXECUTE IMMEDIATE CONCAT('CREATE USER IF NOT EXISTS ', account,
                                 ' IDENTIFIED BY ', QUOTE(@qmt_agi_password));
        EXECUTE IMMEDIATE CONCAT('ALTER USER ', account, ' IDENTIFIED BY ', QUOTE(@qmt_agi_password));
        EXECUTE IMMEDIATE CONCAT('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ', account);
        EXECUTE IMMEDIATE CONCAT('GRANT SELECT ON ', table_name, ' TO ', account);
    END FOR;
END //
DELIMITER ;
