#!/usr/bin/env bash
# queue-mobile-toggle installer for Asterisk / FreePBX on Debian.
# Run `sudo ./install.sh --help`; docs/install.md has the details.
set -euo pipefail
umask 022

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PREFIX=/opt/queue-mobile-toggle
VENV=$PREFIX/venv
MANIFEST=$PREFIX/install.manifest
ASTETC=/etc/asterisk
CONFIG=$ASTETC/queue_mobile_toggle.conf
DIALPLAN=extensions_queue_mobile_toggle.conf
SCRIPT=queue_mobile_toggle.py
CONTEXT=app-queue-toggle-mob
SQLITE_DB=/var/lib/asterisk/queue_mobile_toggle.sqlite
ODBC_INI=/etc/odbc.ini
DEFAULT_DSN=queue_mobile_toggle
AST_USER=asterisk
REQUIREMENTS=$SRC/agi/requirements.txt     # the pinned run-time packages
TABLE=queue_mobile_agents
INCLUDE_LINE="#include $DIALPLAN"
INCLUDE_RE="^[[:space:]]*#include[[:space:]]+\"?$DIALPLAN\"?[[:space:]]*\$"

usage() {
    cat <<EOF
Usage: sudo ./$PROG [options]            install or update (safe to run again)
       sudo ./$PROG --check              check an installation, exit 1 on any failure
       sudo ./$PROG --uninstall [--purge]  remove what was installed

Options:
  --db sqlite|mariadb|postgresql  allowlist backend (default sqlite: a local
                                  SQLite file and its ODBC DSN are created)
  --dsn NAME        ODBC DSN of the allowlist (default $DEFAULT_DSN; required
                    with --db mariadb|postgresql, which you define in $ODBC_INI)
  --agi-dir DIR     install the AGI script there instead of Asterisk's agi-bin
  --wheelhouse DIR  install the Python packages offline from a folder of wheels
  --no-apt          do not install OS packages with apt-get
  --purge           with --uninstall: also delete the allowlist database and the config
  -h, --help        this text
EOF
}

die_usage() { echo "$PROG: $*" >&2; echo "Try '$PROG --help'." >&2; exit 2; }

MODE=install DB="" DSN="" AGI_DIR_OPT="" WHEELHOUSE="" NO_APT=0 PURGE=0
while [ $# -gt 0 ]; do
    case $1 in
        --check) MODE=check ;;
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        --no-apt) NO_APT=1 ;;
        --db|--dsn|--agi-dir|--wheelhouse)
            if [ $# -lt 2 ] || [ -z "$2" ]; then die_usage "$1 needs a value"; fi
            case $1 in
                --db) DB=$2 ;;
                --dsn) DSN=$2 ;;
                --agi-dir) AGI_DIR_OPT=$2 ;;
                --wheelhouse) WHEELHOUSE=$2 ;;
            esac
            shift ;;
        --db=*) DB=${1#*=} ;;
        --dsn=*) DSN=${1#*=} ;;
        --agi-dir=*) AGI_DIR_OPT=${1#*=} ;;
        --wheelhouse=*) WHEELHOUSE=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown argument: $1" ;;
    esac
    shift
done
case $DB in
    ""|sqlite|mariadb|postgresql) ;;
    *) die_usage "--db must be sqlite, mariadb or postgresql, not '$DB'" ;;
esac
[ "$PURGE" = 0 ] || [ "$MODE" = uninstall ] || die_usage "--purge goes with --uninstall"
if [ "$MODE" != install ] && { [ -n "$DB$DSN$WHEELHOUSE" ] || [ "$NO_APT" = 1 ]; }; then
    die_usage "--db, --dsn, --wheelhouse and --no-apt go with an install, not --$MODE"
fi
if [ -n "$DSN" ] && ! [[ $DSN =~ ^[A-Za-z0-9_.-]{1,64}$ ]]; then
    die_usage "--dsn: letters, digits and ._- only"
fi
if [ "$DB" = mariadb ] || [ "$DB" = postgresql ]; then
    [ -n "$DSN" ] || die_usage "--db $DB needs --dsn NAME (a DSN you define in $ODBC_INI)"
fi
if [ -n "$WHEELHOUSE" ]; then
    [ -d "$WHEELHOUSE" ] || die_usage "--wheelhouse: no such folder: $WHEELHOUSE"
    WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
fi
if [ -n "$AGI_DIR_OPT" ] && [[ $AGI_DIR_OPT != /* ]]; then
    die_usage "--agi-dir needs an absolute path"
fi
if [ "$(id -u)" != 0 ]; then
    echo "$PROG: must run as root (try: sudo ./$PROG)" >&2
    exit 1
fi
[ -f "$REQUIREMENTS" ] || { echo "$PROG: $REQUIREMENTS is missing: run $PROG from the unpacked project" >&2; exit 1; }
# The exact pins (name==version), lower-cased as pip freeze prints them.
mapfile -t PINS < <(sed -n 's/^[[:space:]]*\([A-Za-z0-9_.-]*==[^[:space:]#;]*\).*/\1/p' "$REQUIREMENTS" | tr '[:upper:]' '[:lower:]')
[ ${#PINS[@]} -gt 0 ] || { echo "$PROG: no name==version pin in $REQUIREMENTS" >&2; exit 1; }

# ------------------------------------------------------------ reporting
CHANGES=0 FAILS=0
ok()      { printf '[ok]      %s\n' "$*"; }
changed() { printf '[changed] %s\n' "$*"; CHANGES=$((CHANGES + 1)); }
note()    { printf '[note]    %s\n' "$*"; }
pass()    { printf '[PASS]    %s\n' "$*"; }
fail()    { printf '[FAIL]    %s\n' "$*"; FAILS=$((FAILS + 1)); }
die()     { printf '[ERROR]   %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------- helpers
as_asterisk() { runuser -u "$AST_USER" -- "$@"; }     # util-linux, always on Debian

# Never pipe asterisk -rx into a reader that may stop early (grep -q, head):
# with pipefail the SIGPIPE it gets would read as a failure. Capture, then test.
asterisk_running() {
    command -v asterisk >/dev/null 2>&1 || return 1
    local v
    v=$(timeout 10 asterisk -rx 'core show version' 2>/dev/null) || return 1
    [[ $v == Asterisk* ]]
}

ast_cli() { timeout 20 asterisk -rx "$1" 2>/dev/null || true; }

ast_has() {  # ast_has COMMAND TEXT: the command's output contains TEXT
    local o
    o=$(ast_cli "$1")
    [[ $o == *"$2"* ]]
}

running_agi_dir() {
    local o
    o=$(ast_cli 'core show settings')
    awk '/^ *AGI Scripts directory:/ { sub(/^ *AGI Scripts directory: */, ""); sub(/[ \r]+$/, ""); print; exit }' <<<"$o"
}

manifest_get() {
    [ -f "$MANIFEST" ] || return 0
    sed -n "s/^$1=//p" "$MANIFEST" | tail -n 1
}

# Where Asterisk looks for AGI scripts, the way Asterisk resolves it:
# the running Asterisk says it; else asterisk.conf's astagidir if its
# [directories] section is not a template "(!)"; else the binary's
# compiled-in default. Sets AGI_DIR and AGI_DIR_FROM.
resolve_agi_dir() {
    AGI_DIR="" AGI_DIR_FROM=""
    if [ -n "$AGI_DIR_OPT" ]; then
        AGI_DIR=$AGI_DIR_OPT AGI_DIR_FROM="--agi-dir"; return
    fi
    if asterisk_running; then
        AGI_DIR=$(running_agi_dir)
        if [ -n "$AGI_DIR" ]; then AGI_DIR_FROM="the running Asterisk"; return; fi
    fi
    if [ -f "$ASTETC/asterisk.conf" ]; then
        AGI_DIR=$(awk '
            /^[[:space:]]*\[/ {
                insec = 0
                if ($0 ~ /^[[:space:]]*\[directories\]/) {
                    rest = $0; sub(/^[[:space:]]*\[directories\]/, "", rest); sub(/[;].*$/, "", rest)
                    insec = (rest ~ /\(/ && rest ~ /!/) ? 0 : 1
                }
                next
            }
            insec && /^[[:space:]]*astagidir[[:space:]]*=>?/ {
                v = $0; sub(/^[^=]*=>?[[:space:]]*/, "", v); sub(/[[:space:]]*;.*$/, "", v)
                sub(/[[:space:]]+$/, "", v); print v; exit
            }' "$ASTETC/asterisk.conf")
        if [ -n "$AGI_DIR" ]; then AGI_DIR_FROM="$ASTETC/asterisk.conf [directories]"; return; fi
    fi
    local bin
    bin=$(command -v asterisk 2>/dev/null || true)
    if [ -n "$bin" ]; then
        AGI_DIR=$(grep -aoE -m 1 '/[A-Za-z0-9_./-]*/agi-bin' "$bin" 2>/dev/null || true)
        AGI_DIR=${AGI_DIR%%$'\n'*}
        if [ -n "$AGI_DIR" ]; then AGI_DIR_FROM="the default compiled into $bin"; return; fi
    fi
    AGI_DIR=/var/lib/asterisk/agi-bin AGI_DIR_FROM="Asterisk's stock default"
}

# FreePBX keeps admin dialplan in extensions_custom.conf (it rewrites the rest).
include_file() {
    if [ -f /etc/freepbx.conf ] || [ -f /etc/amportal.conf ] || [ -f "$ASTETC/extensions_custom.conf" ]; then
        echo "$ASTETC/extensions_custom.conf"
    else
        echo "$ASTETC/extensions.conf"
    fi
}

# The ODBC connection string of a config file (the script's default if unset).
config_connection() {
    python3 - "$1" <<'PY'
import configparser, sys
p = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
with open(sys.argv[1], encoding="utf-8") as f:
    p.read_file(f)
print(p.get("database", "connection", fallback="DSN=queue_mobile_toggle").strip())
PY
}

# The DSN named by a connection string that is exactly DSN=NAME, else "".
plain_dsn() {
    local c=$1
    if [[ $c =~ ^[Dd][Ss][Nn]=([A-Za-z0-9_.-]+)\;?$ ]]; then echo "${BASH_REMATCH[1]}"; fi
}
# The DSN named anywhere in a connection string, else "".
any_dsn() {
    local c=";$1"
    if [[ $c =~ \;[[:space:]]*[Dd][Ss][Nn][[:space:]]*=[[:space:]]*([^\;]+) ]]; then
        echo "${BASH_REMATCH[1]}" | sed 's/[[:space:]]*$//'
    fi
}

dsn_defined() { [ -f "$ODBC_INI" ] && grep -qiE "^[[:space:]]*\[$1\][[:space:]]*$" "$ODBC_INI"; }

dsn_value() {  # dsn_value NAME KEY
    [ -f "$ODBC_INI" ] || return 0
    awk -v sec="$1" -v key="$2" '
        /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); insec = (tolower(s) == tolower(sec)); next }
        insec { k = $0; sub(/[[:space:]]*=.*/, "", k); gsub(/^[[:space:]]+/, "", k)
                if (tolower(k) == tolower(key)) { v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]+$/, "", v); print v; exit } }' "$ODBC_INI"
}

driver_package() {
    case $1 in
        sqlite) echo libsqliteodbc ;;
        mariadb) echo odbc-mariadb ;;
        postgresql) echo odbc-postgresql ;;
    esac
}
driver_name() {
    case $1 in
        sqlite) echo SQLite3 ;;
        mariadb) echo "MariaDB Unicode" ;;
        postgresql) echo "PostgreSQL Unicode" ;;
    esac
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# install_file SRC DEST MODE OWNER:GROUP LABEL: copy only when different.
install_file() {
    local src=$1 dest=$2 mode=$3 own=$4 label=$5
    if [ -f "$dest" ] && cmp -s "$src" "$dest" &&
        [ "$(stat -c '%a %U:%G' "$dest")" = "$mode $own" ]; then
        ok "$label: $dest unchanged"
    else
        install -m "$mode" -o "${own%%:*}" -g "${own##*:}" "$src" "$dest"
        changed "$label: installed $dest (mode $mode, $own)"
    fi
}

venv_ok() {
    [ -x "$VENV/bin/python3" ] || return 1
    "$VENV/bin/python3" -c 'import asterisk.agi, pyodbc' >/dev/null 2>&1 || return 1
    local frozen pin
    frozen=$("$VENV/bin/python3" -m pip freeze --disable-pip-version-check 2>/dev/null | tr '[:upper:]' '[:lower:]') || return 1
    for pin in "${PINS[@]}"; do
        grep -qx "$pin" <<<"$frozen" || return 1
    done
}

write_manifest() {
    local tmp
    tmp=$(mktemp)
    {
        echo "# queue-mobile-toggle install.sh manifest: what --uninstall removes"
        echo "agi_dir=$AGI_DIR"
        echo "include_file=$INCLUDE_FILE"
        echo "dsn_added=$M_DSN_ADDED"
        echo "sqlite_db=$M_SQLITE_DB"
        echo "config_sha256=$M_CONFIG_SHA"
        echo "backend=$M_BACKEND"
    } >"$tmp"
    if [ -f "$MANIFEST" ] && cmp -s "$tmp" "$MANIFEST"; then
        rm -f "$tmp"
    else
        install -m 0644 "$tmp" "$MANIFEST"
        rm -f "$tmp"
    fi
}

# ------------------------------------------------------------------ install
do_install() {
    local f
    for f in agi/$SCRIPT agi/$DIALPLAN agi/queue_mobile_toggle.conf.example sql/sqlite.sql; do
        [ -f "$SRC/$f" ] || die "source file missing: $SRC/$f (run $PROG from the unpacked project)"
    done
    id "$AST_USER" >/dev/null 2>&1 || die "no '$AST_USER' user: install Asterisk first"
    command -v python3 >/dev/null 2>&1 || [ "$NO_APT" = 0 ] || die "python3 is missing (and --no-apt was given)"

    # Which backend: --db, else what an earlier install or the config says.
    local backend=${DB:-$(manifest_get backend)}
    if [ -z "$backend" ] && [ -f "$CONFIG" ] && command -v python3 >/dev/null 2>&1; then
        local d
        d=$(any_dsn "$(config_connection "$CONFIG")")
        case $(dsn_value "$d" Driver) in
            *[Mm]aria*|*[Mm]y[Ss][Qq][Ll]*) backend=mariadb ;;
            *[Pp]ostgre*) backend=postgresql ;;
        esac
    fi
    backend=${backend:-sqlite}
    local dsn=${DSN:-$DEFAULT_DSN}

    # 1. OS packages
    local pkgs=(unixodbc python3 python3-venv "$(driver_package "$backend")") missing=() p
    [ "$backend" = sqlite ] && pkgs+=(sqlite3)
    if ! command -v dpkg-query >/dev/null 2>&1; then
        note "packages: no dpkg here; make sure ${pkgs[*]} (or equivalents) are installed"
    else
        for p in "${pkgs[@]}"; do
            [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
        done
        if [ ${#missing[@]} = 0 ]; then
            ok "packages: ${pkgs[*]} already installed"
        elif [ "$NO_APT" = 1 ]; then
            note "packages: --no-apt given; missing: ${missing[*]}"
        else
            export DEBIAN_FRONTEND=noninteractive
            if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
                apt-get update -q >/dev/null 2>&1 || true
                apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
                    die "packages: apt-get install ${missing[*]} failed"
            fi
            changed "packages: installed ${missing[*]} with apt-get"
        fi
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 is missing"

    # 2. Python virtual environment with the pinned packages
    if venv_ok; then
        ok "venv: $VENV has ${PINS[*]}"
    else
        mkdir -p "$PREFIX"
        if [ -e "$VENV" ]; then rm -rf "$VENV"; fi
        python3 -m venv "$VENV" >/dev/null || die "venv: python3 -m venv $VENV failed (is python3-venv installed?)"
        local pipargs=(install --quiet --disable-pip-version-check --no-cache-dir)
        if [ -n "$WHEELHOUSE" ]; then pipargs+=(--no-index --find-links "$WHEELHOUSE"); fi
        "$VENV/bin/python3" -m pip "${pipargs[@]}" -r "$REQUIREMENTS" ||
            die "venv: pip install ${PINS[*]} failed${WHEELHOUSE:+ from $WHEELHOUSE} (see docs/install.md, 'Offline')"
        venv_ok || die "venv: $VENV cannot import asterisk.agi and pyodbc after pip install"
        changed "venv: created $VENV with ${PINS[*]}${WHEELHOUSE:+ (offline, from $WHEELHOUSE)}"
    fi

    # 3. The AGI script, its shebang on the venv's Python
    resolve_agi_dir
    if [ -d "$AGI_DIR" ]; then
        ok "agi-bin: $AGI_DIR (from $AGI_DIR_FROM)"
    else
        mkdir -p "$AGI_DIR"
        changed "agi-bin: created $AGI_DIR (from $AGI_DIR_FROM)"
    fi
    local tmp
    tmp=$(mktemp)
    { echo "#!$VENV/bin/python3"; sed '1{/^#!/d}' "$SRC/agi/$SCRIPT"; } >"$tmp"
    install_file "$tmp" "$AGI_DIR/$SCRIPT" 750 "root:$AST_USER" "script"
    rm -f "$tmp"

    # 4. The config: written only when none exists
    M_CONFIG_SHA=$(manifest_get config_sha256)
    if [ -f "$CONFIG" ]; then
        ok "config: $CONFIG exists, kept as it is"
        if (( 8#$(stat -c %a "$CONFIG") & 8#007 )); then
            chmod o-rwx "$CONFIG"
            changed "config: $CONFIG was readable by others: now mode $(stat -c %a "$CONFIG")"
        fi
    else
        tmp=$(mktemp)
        if [ "$backend" = sqlite ] && [ "$dsn" = "$DEFAULT_DSN" ]; then
            cp "$SRC/agi/queue_mobile_toggle.conf.example" "$tmp"
        else
            sed "s|^connection *=.*|connection = DSN=$dsn|" "$SRC/agi/queue_mobile_toggle.conf.example" >"$tmp"
        fi
        install -m 640 -o root -g "$AST_USER" "$tmp" "$CONFIG"
        rm -f "$tmp"
        M_CONFIG_SHA=$(sha_of "$CONFIG")
        changed "config: wrote $CONFIG (mode 640, root:$AST_USER; connection = DSN=$dsn)"
    fi
    local conn cdsn
    conn=$(config_connection "$CONFIG") || die "config: cannot parse $CONFIG"
    cdsn=$(plain_dsn "$conn")
    if [ -n "$DSN$DB" ] && [ "$(any_dsn "$conn")" != "$dsn" ]; then
        note "config: $CONFIG says 'connection = ${conn%%;*}...', not DSN=$dsn; edit it if --dsn $dsn is what you want"
    fi

    # 5. The embedded default: a SQLite allowlist and its DSN
    M_DSN_ADDED=$(manifest_get dsn_added) M_SQLITE_DB=$(manifest_get sqlite_db)
    if [ "$backend" != sqlite ]; then
        local sdsn
        sdsn=$(any_dsn "$conn")
        sdsn=${sdsn:-$dsn}
        ok "allowlist: $backend through DSN=$sdsn (no SQLite file; the DSN is yours to define, see docs/install.md)"
        dsn_defined "$sdsn" || note "allowlist: DSN $sdsn is not defined in $ODBC_INI yet"
    elif [ -z "$cdsn" ] || { [ -n "$DSN" ] && [ "$cdsn" != "$DSN" ]; }; then
        ok "allowlist: the config points elsewhere (${conn%%;*}...): no SQLite allowlist created"
    elif dsn_defined "$cdsn" && [ "$cdsn" != "$M_DSN_ADDED" ]; then
        ok "allowlist: DSN $cdsn is already defined in $ODBC_INI (driver $(dsn_value "$cdsn" Driver)): left as it is"
    else
        odbcinst -q -d -n SQLite3 >/dev/null 2>&1 ||
            die "allowlist: ODBC driver SQLite3 is not registered (apt-get install libsqliteodbc)"
        local db
        db=$(dsn_value "$cdsn" Database)
        db=${db:-$SQLITE_DB}
        if [ -d "$(dirname "$db")" ]; then :; else
            install -d -m 750 -o root -g "$AST_USER" "$(dirname "$db")"
            changed "allowlist: created $(dirname "$db") (mode 750, root:$AST_USER)"
        fi
        if [ -f "$db" ] && python3 - "$db" "$TABLE" <<'PY'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
sys.exit(0 if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (sys.argv[2],)).fetchone() else 1)
PY
        then
            ok "allowlist: $db has table $TABLE"
        else
            python3 - "$db" "$SRC/sql/sqlite.sql" <<'PY' || die "allowlist: could not create $db"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    c.executescript(f.read())
c.commit()
PY
            changed "allowlist: created table $TABLE in $db from sql/sqlite.sql"
        fi
        if [ "$(stat -c '%a %U:%G' "$db")" != "640 root:$AST_USER" ]; then
            chown "root:$AST_USER" "$db"; chmod 640 "$db"
            changed "allowlist: $db is mode 640, root:$AST_USER (the asterisk group reads it)"
        fi
        M_SQLITE_DB=$db
        if dsn_defined "$cdsn"; then
            ok "allowlist: DSN $cdsn in $ODBC_INI"
        else
            [ -f "$ODBC_INI" ] || install -m 644 /dev/null "$ODBC_INI"
            if [ -s "$ODBC_INI" ] && [ -n "$(tail -c 1 "$ODBC_INI")" ]; then echo >>"$ODBC_INI"; fi
            cat >>"$ODBC_INI" <<EOF
[$cdsn]
Description = queue-mobile-toggle allowlist (added by install.sh)
Driver = SQLite3
Database = $db
NoCreat = 1
Timeout = 2000
EOF
            M_DSN_ADDED=$cdsn
            changed "allowlist: added DSN $cdsn (SQLite3, $db) to $ODBC_INI"
        fi
    fi

    # 6. The dialplan file and exactly one #include line
    local dialplan_changed=$CHANGES
    install_file "$SRC/agi/$DIALPLAN" "$ASTETC/$DIALPLAN" 644 "root:root" "dialplan"
    INCLUDE_FILE=$(include_file)
    local where=""
    for f in "$ASTETC/extensions.conf" "$ASTETC/extensions_custom.conf"; do
        if [ -f "$f" ] && grep -qE "$INCLUDE_RE" "$f"; then where=$f; break; fi
    done
    if [ -n "$where" ]; then
        INCLUDE_FILE=$where
        ok "include: $where has '$INCLUDE_LINE'"
    else
        if [ -s "$INCLUDE_FILE" ] && [ -n "$(tail -c 1 "$INCLUDE_FILE")" ]; then echo >>"$INCLUDE_FILE"; fi
        echo "$INCLUDE_LINE" >>"$INCLUDE_FILE"
        changed "include: added '$INCLUDE_LINE' to $INCLUDE_FILE"
    fi
    [ "$CHANGES" = "$dialplan_changed" ] && dialplan_changed=0 || dialplan_changed=1

    M_BACKEND=$backend
    write_manifest

    # 7. Reload the dialplan when Asterisk runs
    if asterisk_running; then
        if [ "$dialplan_changed" = 1 ] || ! context_loaded; then
            ast_cli 'dialplan reload' >/dev/null || true
            if context_loaded; then
                changed "asterisk: dialplan reloaded, context $CONTEXT loaded"
            else
                die "asterisk: dialplan reloaded but context $CONTEXT is not loaded (check the Asterisk log)"
            fi
        else
            ok "asterisk: context $CONTEXT loaded"
        fi
        local running_dir
        running_dir=$(running_agi_dir)
        if [ -n "$running_dir" ] && [ "$running_dir" != "$AGI_DIR" ]; then
            note "asterisk: it looks for AGI scripts in $running_dir, not $AGI_DIR"
        fi
    else
        note "asterisk: not running; the dialplan loads when it starts"
    fi

    if [ "$CHANGES" = 0 ]; then
        echo "queue-mobile-toggle: already installed, nothing changed."
    else
        echo "queue-mobile-toggle: installed ($CHANGES changes). Add numbers to $TABLE; check with: sudo ./$PROG --check"
    fi
}

context_loaded() { ast_has "dialplan show $CONTEXT" "Context '$CONTEXT'"; }

# -------------------------------------------------------------------- check
do_check() {
    local agi_dir script conn dsn
    agi_dir=$(manifest_get agi_dir)
    if [ -z "$agi_dir" ]; then resolve_agi_dir; agi_dir=$AGI_DIR; fi
    script=$agi_dir/$SCRIPT
    id "$AST_USER" >/dev/null 2>&1 || { fail "user: no '$AST_USER' user"; report_check; }

    # The script and its virtual environment, as the asterisk user sees them
    if [ ! -f "$script" ]; then
        fail "script: $script is missing"
    else
        local shebang
        shebang=$(head -n 1 "$script")
        if [ "$shebang" != "#!$VENV/bin/python3" ]; then
            fail "script: $script starts with '$shebang', not #!$VENV/bin/python3"
        elif ! as_asterisk test -x "$script"; then
            fail "script: $AST_USER cannot run $script ($(stat -c '%a %U:%G' "$script"))"
        elif as_asterisk test -w "$script"; then
            fail "script: $AST_USER can change $script ($(stat -c '%a %U:%G' "$script")); want 750 root:$AST_USER"
        elif ! as_asterisk "$VENV/bin/python3" -c 'import sys; compile(open(sys.argv[1], encoding="utf-8").read(), sys.argv[1], "exec"); import asterisk.agi, pyodbc' "$script" 2>/dev/null; then
            fail "script: $VENV/bin/python3 cannot compile it or import asterisk.agi/pyodbc as $AST_USER"
        else
            pass "script: $script runs under $VENV/bin/python3 ($(stat -c '%a %U:%G' "$script"))"
        fi
    fi
    if venv_ok; then pass "venv: ${PINS[*]}"; else fail "venv: $VENV lacks ${PINS[*]} (run $PROG again)"; fi

    # The config
    if [ ! -f "$CONFIG" ]; then
        fail "config: $CONFIG is missing"
    elif ! as_asterisk test -r "$CONFIG"; then
        fail "config: $AST_USER cannot read $CONFIG ($(stat -c '%a %U:%G' "$CONFIG"))"
    elif ! conn=$(config_connection "$CONFIG" 2>/dev/null); then
        fail "config: $CONFIG does not parse"
    else
        if (( 8#$(stat -c %a "$CONFIG") & 8#007 )); then
            fail "config: $CONFIG is readable by others ($(stat -c %a "$CONFIG")); chmod o-rwx it"
        else
            pass "config: $CONFIG ($(stat -c '%a %U:%G' "$CONFIG"))"
        fi
        # The allowlist, reached the way the script reaches it
        dsn=$(any_dsn "$conn")
        if [ -n "$dsn" ]; then
            if dsn_defined "$dsn"; then
                pass "dsn: $dsn in $ODBC_INI, driver $(dsn_value "$dsn" Driver)$( [ -n "$(dsn_value "$dsn" Database)" ] && echo ", database $(dsn_value "$dsn" Database)")"
            else
                fail "dsn: $dsn is not defined in $ODBC_INI"
            fi
        fi
        local out
        if out=$(QMT_CONFIG=$CONFIG as_asterisk timeout 20 "$VENV/bin/python3" - "$CONFIG" "$TABLE" 2>&1 <<'PY'
import configparser, sys
p = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
with open(sys.argv[1], encoding="utf-8") as f:
    p.read_file(f)
conn = p.get("database", "connection", fallback="DSN=queue_mobile_toggle").strip()
timeout = max(1, int(float(p.get("database", "timeout", fallback="3"))))
import pyodbc
try:
    c = pyodbc.connect(conn, timeout=timeout, autocommit=True)
except pyodbc.Error as e:
    print("cannot connect: %s" % " ".join(str(a) for a in e.args)[:300]); sys.exit(2)
try:
    c.timeout = timeout          # query timeout; psqlODBC refuses the attribute
except pyodbc.Error:
    pass
try:
    total, live = c.cursor().execute(
        "SELECT COUNT(*), SUM(CASE WHEN enabled = 1 THEN 1 ELSE 0 END) FROM %s" % sys.argv[2]).fetchone()
except pyodbc.Error as e:
    print("table %s: %s" % (sys.argv[2], " ".join(str(a) for a in e.args)[:300])); sys.exit(3)
print("%d rows, %d enabled (%s)" % (total, live or 0, c.getinfo(pyodbc.SQL_DBMS_NAME)))
PY
        ); then
            pass "database: table $TABLE reachable as $AST_USER: $out"
        else
            fail "database: ${out:-no answer within 20 s} (connection = ${conn%%PWD=*}$( [[ $conn == *PWD=* ]] && echo 'PWD=...'))"
        fi
    fi

    # The dialplan
    local inc="" f
    if [ -f "$ASTETC/$DIALPLAN" ]; then pass "dialplan: $ASTETC/$DIALPLAN"; else fail "dialplan: $ASTETC/$DIALPLAN is missing"; fi
    for f in "$ASTETC/extensions.conf" "$ASTETC/extensions_custom.conf"; do
        [ -f "$f" ] && grep -qE "$INCLUDE_RE" "$f" && inc="$inc $f"
    done
    if [ -n "$inc" ]; then pass "include: '$INCLUDE_LINE' in$inc"; else fail "include: '$INCLUDE_LINE' is in neither extensions.conf nor extensions_custom.conf"; fi
    if asterisk_running; then
        if context_loaded; then pass "asterisk: context $CONTEXT loaded"; else fail "asterisk: context $CONTEXT is not loaded (dialplan reload?)"; fi
        if ast_has 'module show like res_agi.so' 'res_agi.so'; then pass "asterisk: res_agi loaded"; else fail "asterisk: res_agi is not loaded"; fi
        local running_dir
        running_dir=$(running_agi_dir)
        if [ "$running_dir" = "$agi_dir" ]; then pass "asterisk: looks for AGI scripts in $agi_dir"
        else fail "asterisk: looks for AGI scripts in ${running_dir:-?}, the script is in $agi_dir"; fi
    else
        fail "asterisk: not running (or its control socket is not reachable); dialplan not checked"
    fi
    report_check
}

report_check() {
    if [ "$FAILS" = 0 ]; then
        echo "queue-mobile-toggle: check passed."
        exit 0
    fi
    echo "queue-mobile-toggle: check FAILED ($FAILS problems)."
    exit 1
}

# ---------------------------------------------------------------- uninstall
do_uninstall() {
    local agi_dir inc dsn db sha f
    agi_dir=$(manifest_get agi_dir)
    if [ -z "$agi_dir" ]; then resolve_agi_dir; agi_dir=$AGI_DIR; fi
    dsn=$(manifest_get dsn_added) db=$(manifest_get sqlite_db) sha=$(manifest_get config_sha256)
    [ -f "$MANIFEST" ] || note "no $MANIFEST: removing what is found in the usual places"

    if [ -f "$agi_dir/$SCRIPT" ] && [ "$(head -n 1 "$agi_dir/$SCRIPT")" = "#!$VENV/bin/python3" ]; then
        rm -f "$agi_dir/$SCRIPT"; changed "script: removed $agi_dir/$SCRIPT"
    elif [ -f "$agi_dir/$SCRIPT" ]; then
        note "script: $agi_dir/$SCRIPT was not installed by $PROG (other shebang): left"
    else
        ok "script: none in $agi_dir"
    fi
    for inc in "$ASTETC/extensions.conf" "$ASTETC/extensions_custom.conf"; do
        if [ -f "$inc" ] && grep -qE "$INCLUDE_RE" "$inc"; then
            local tmp
            tmp=$(mktemp)
            grep -vE "$INCLUDE_RE" "$inc" >"$tmp" || true
            cat "$tmp" >"$inc"       # keeps the file's owner and mode
            rm -f "$tmp"
            changed "include: removed '$INCLUDE_LINE' from $inc"
        fi
    done
    if [ -f "$ASTETC/$DIALPLAN" ]; then rm -f "$ASTETC/$DIALPLAN"; changed "dialplan: removed $ASTETC/$DIALPLAN"
    else ok "dialplan: no $ASTETC/$DIALPLAN"; fi
    if [ -z "$dsn" ] && [ -f "$ODBC_INI" ] && dsn_defined "$DEFAULT_DSN" &&
        [ "$(dsn_value "$DEFAULT_DSN" Description)" = "queue-mobile-toggle allowlist (added by install.sh)" ]; then
        dsn=$DEFAULT_DSN
    fi
    if [ -n "$dsn" ] && dsn_defined "$dsn"; then
        local tmp
        tmp=$(mktemp)
        awk -v sec="$dsn" '
            /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); skip = (tolower(s) == tolower(sec)) }
            !skip' "$ODBC_INI" >"$tmp"
        cat "$tmp" >"$ODBC_INI"
        rm -f "$tmp"
        changed "dsn: removed $dsn from $ODBC_INI"
    else
        ok "dsn: nothing of ours in $ODBC_INI"
    fi
    if [ -f "$CONFIG" ]; then
        if [ "$PURGE" = 1 ]; then
            rm -f "$CONFIG"; changed "config: removed $CONFIG (--purge)"
        elif [ -n "$sha" ] && [ "$(sha_of "$CONFIG")" = "$sha" ]; then
            rm -f "$CONFIG"; changed "config: removed $CONFIG (as installed, never edited)"
        else
            note "config: $CONFIG kept (edited by you or not ours); --purge removes it"
        fi
    else
        ok "config: none"
    fi
    db=${db:-$SQLITE_DB}
    if [ -f "$db" ]; then
        if [ "$PURGE" = 1 ]; then
            rm -f "$db" "$db-journal" "$db-wal" "$db-shm"; changed "allowlist: deleted $db (--purge)"
        else
            note "allowlist: $db kept with its numbers; --purge deletes it"
        fi
    fi
    if [ -d "$PREFIX" ]; then rm -rf "$PREFIX"; changed "venv: removed $PREFIX"
    else ok "venv: no $PREFIX"; fi
    if asterisk_running; then
        if context_loaded; then
            ast_cli 'dialplan reload' >/dev/null || true
            changed "asterisk: dialplan reloaded"
        fi
        if context_loaded; then note "asterisk: context $CONTEXT is still loaded: it is defined elsewhere too"; fi
    fi
    if [ "$CHANGES" = 0 ]; then
        echo "queue-mobile-toggle: nothing to remove, nothing changed."
    else
        echo "queue-mobile-toggle: uninstalled ($CHANGES changes)."
    fi
}

case $MODE in
    install) do_install ;;
    check) do_check ;;
    uninstall) do_uninstall ;;
esac
