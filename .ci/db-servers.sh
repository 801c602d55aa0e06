#!/usr/bin/env bash
# Make sure MariaDB and PostgreSQL run on localhost for the server tests
# (pytest -m servers: tests/test_backends.py, tests/test_db_faults.py), and
# that their ODBC drivers (odbc-mariadb, odbc-postgresql) are installed.
#
# A server that already answers is used as it is. Otherwise it is installed
# from Debian's packages if missing and started without systemd. Then:
#  - MariaDB: root must connect over the socket (Debian's default as OS
#    root) and TCP 127.0.0.1:3306 must be open (the tests' AGI user uses it);
#  - PostgreSQL: user postgres must connect over TCP 127.0.0.1:5432 without
#    prompting (trust, or a password in ~/.pgpass: on a server this script
#    installed, or in CI, it sets one up itself);
#  - PostgreSQL gets the NOLOGIN role qmt_test_password_auth and, at the top
#    of pg_hba.conf, one line that makes its members (only the tests' own
#    AGI roles) log in by password over TCP even where the rest is `trust`,
#    so the wrong-password test means something.
# Exits non-zero, with the reason, when a server cannot be made ready.
set -euo pipefail

MYSQL_SOCKET=${QMT_TEST_MYSQL_SOCKET:-/run/mysqld/mysqld.sock}
MYSQL_PORT=${QMT_TEST_MYSQL_PORT:-3306}
PG_PORT=${QMT_TEST_PG_PORT:-5432}
PG_GROUP=qmt_test_password_auth
PG_HBA_LINE="host all +$PG_GROUP 127.0.0.1/32 scram-sha-256  # queue-mobile-toggle tests (.ci/db-servers.sh)"
WAIT_SECONDS=${QMT_DB_WAIT:-60}
installed_pg=no

say() { echo "db-servers: $*"; }
die() { echo "db-servers: ERROR: $*" >&2; exit 1; }
ci() { case "${CI:-}" in true|1|yes) return 0 ;; esac; return 1; }

apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to apt-get install $*"
    say "installing $* from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >/tmp/qmt-db-servers-apt.log 2>&1; then
        apt-get update >>/tmp/qmt-db-servers-apt.log 2>&1 || true
        apt-get install -y --no-install-recommends "$@" >>/tmp/qmt-db-servers-apt.log 2>&1 \
            || die "apt-get install $* failed; see /tmp/qmt-db-servers-apt.log"
    fi
}

wait_for() {  # wait_for <what> <command...>
    local what=$1; shift
    local waited=0
    until "$@" >/dev/null 2>&1; do
        [ "$waited" -lt "$WAIT_SECONDS" ] || return 1
        sleep 1
        waited=$((waited + 1))
    done
    say "$what is ready"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ------------------------------------------------------------ ODBC drivers
missing=()
odbcinst -q -d -n "MariaDB Unicode" >/dev/null 2>&1 || missing+=(odbc-mariadb)
odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null 2>&1 || missing+=(odbc-postgresql)
[ ${#missing[@]} -eq 0 ] || apt_install unixodbc "${missing[@]}"

# ---------------------------------------------------------------- MariaDB
mariadb_admin() { mysql --protocol=socket -S "$MYSQL_SOCKET" -uroot -N -B "$@"; }
mariadb_ready() { mariadb_admin -e 'SELECT 1' && tcp_open "$MYSQL_PORT"; }

if mariadb_ready >/dev/null 2>&1; then
    say "MariaDB already runs (socket $MYSQL_SOCKET, 127.0.0.1:$MYSQL_PORT)"
else
    if ! [ -x /usr/sbin/mariadbd ] || ! command -v mysql >/dev/null; then
        apt_install mariadb-server
    fi
    [ "$(id -u)" = 0 ] || die "MariaDB is not running and only root can start it"
    install -d -o mysql -g mysql -m 0755 "$(dirname "$MYSQL_SOCKET")"
    say "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
        || die "start-stop-daemon could not start /usr/sbin/mariadbd"
    wait_for "MariaDB" mariadb_admin -e 'SELECT 1' \
        || die "MariaDB did not accept connections on $MYSQL_SOCKET within ${WAIT_SECONDS}s (see its error log, e.g. /var/log/mysql/error.log)"
    tcp_open "$MYSQL_PORT" \
        || die "MariaDB runs but does not listen on 127.0.0.1:$MYSQL_PORT (skip-networking or bind-address?)"
fi

# ------------------------------------------------------------- PostgreSQL
pg_admin() { psql -X -w -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -At "$@"; }

if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    if ! pg_admin -c 'SELECT 1' >/dev/null 2>&1; then
        apt_install postgresql
        installed_pg=yes
    fi
fi
if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    say "PostgreSQL already runs (127.0.0.1:$PG_PORT)"
else
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not running and only root can start it"
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1)
    [ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql"
    say "starting PostgreSQL $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || die "pg_ctlcluster $version main start failed (see /var/log/postgresql/)"
    wait_for "PostgreSQL" pg_isready -q -h 127.0.0.1 -p "$PG_PORT" \
        || die "PostgreSQL did not accept connections on 127.0.0.1:$PG_PORT within ${WAIT_SECONDS}s"
fi

if ! pg_admin -c 'SELECT 1' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && { [ "$installed_pg" = yes ] || ci; }; then
        say "postgres needs a password over TCP: setting one and storing it in ~/.pgpass"
        password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
        runuser -u postgres -- psql -X -q -p "$PG_PORT" -v ON_ERROR_STOP=1 -v pw="$password" \
            -c "ALTER ROLE postgres PASSWORD :'pw'" >/dev/null \
            || die "could not set the postgres password through the local socket"
        touch ~/.pgpass && chmod 600 ~/.pgpass
        sed -i "/^127\.0\.0\.1:$PG_PORT:\*:postgres:/d" ~/.pgpass
        echo "127.0.0.1:$PG_PORT:*:postgres:$password" >>~/.pgpass
    fi
    pg_admin -c 'SELECT 1' >/dev/null \
        || die "cannot connect as postgres to 127.0.0.1:$PG_PORT without a prompt: allow it (trust) or put its password in ~/.pgpass"
fi

pg_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_GROUP'" | grep -q 1 \
    || pg_admin -c "CREATE ROLE $PG_GROUP NOLOGIN"
hba=$(pg_admin -c 'SHOW hba_file')
if ! grep -qF "+$PG_GROUP " "$hba" 2>/dev/null; then
    if [ -w "$hba" ]; then
        say "adding to $hba: $PG_HBA_LINE"
        sed -i "1i $PG_HBA_LINE" "$hba"
        pg_admin -c 'SELECT pg_reload_conf()' >/dev/null
    else
        say "WARNING: cannot write $hba; where it says trust, the wrong-password test cannot run"
    fi
fi
say "MariaDB and PostgreSQL are ready"
