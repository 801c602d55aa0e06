#!/usr/bin/env bash
# queue-mobile-toggle installer for Asterisk / FreePBX on Debian.
# Run `./install.sh --help` as root; docs/install.md has the details.
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
DSN_DESCRIPTION="queue-mobile-toggle allowlist (added by install.sh)"
ODBCINST_INI=/etc/odbcinst.ini                 # where the ODBC drivers are registered
PG_DRIVER="PostgreSQL Unicode"                  # psqlODBC's name there
AST_USER=asterisk
REQUIREMENTS=$SRC/agi/requirements.txt     # the pinned run-time packages
TABLE=queue_mobile_agents
INCLUDE_LINE="#include $DIALPLAN"
SHEBANG="#!$VENV/bin/python3 -I"              # -I: the package from the venv only
QMT_LINK=/usr/local/sbin/qmt                   # the admin command, on root's PATH
MANAGER_CONF=$ASTETC/manager.conf
# Files root reads, most of them the asterisk user's: every mode refuses an
# unsafe one (a link, a FIFO...) before any change, as it does those it writes.
READ_FILES=("$ASTETC/asterisk.conf" "$ASTETC/extensions.conf" "$ASTETC/extensions_custom.conf" "$MANAGER_CONF"
            "$CONFIG" "$MANIFEST" "$ODBC_INI" "$ODBCINST_INI")
AMI_USER=qmt                                   # the manager account of `qmt`
AMI_OWN_FILE=manager_queue_mobile_toggle.conf  # where manager.conf includes nothing we can use
AMI_INCLUDE_LINE="#include $AMI_OWN_FILE"
SWEEP_CRON=/etc/cron.d/queue-mobile-toggle
SWEEP_UNITS=/etc/systemd/system/qmt-sweep      # .service and .timer
SWEEP_COMMAND="$QMT_LINK sweep --apply"
INCLUDE_RE="^[[:space:]]*#include[[:space:]]+\"?$DIALPLAN\"?[[:space:]]*\$"

usage() {
    cat <<EOF
Usage: ./$PROG [options]            install or update (safe to run again)
       ./$PROG --check              check an installation, exit 1 on any failure
       ./$PROG --uninstall [--purge]  remove what was installed
As root (a root shell needs no sudo; an admin who is not root runs: sudo ./$PROG ...).

Options:
  --db sqlite|mariadb|postgresql  allowlist backend (default sqlite: a local
                                  SQLite file and its ODBC DSN are created)
  --dsn NAME        ODBC DSN of the allowlist (default $DEFAULT_DSN; required
                    with --db mariadb|postgresql, which you define in $ODBC_INI)
  --agi-dir DIR     install the AGI script there instead of Asterisk's agi-bin
  --wheelhouse DIR  install the Python packages offline from a folder of wheels
  --no-apt          do not install OS packages with apt-get
  --enable-ami      turn Asterisk's manager interface on (127.0.0.1 only) when
                    manager.conf has it off; qmt check/status/sweep need it
  --purge           with --uninstall: also delete the allowlist database and the config
  -h, --help        this text
EOF
}

die_usage() { echo "$PROG: $*" >&2; echo "Try '$PROG --help'." >&2; exit 2; }

MODE=install DB="" DSN="" AGI_DIR_OPT="" WHEELHOUSE="" NO_APT=0 PURGE=0 ENABLE_AMI=0
while [ $# -gt 0 ]; do
    case $1 in
        --check) MODE=check ;;
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        --no-apt) NO_APT=1 ;;
        --enable-ami) ENABLE_AMI=1 ;;
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
if [ "$MODE" != install ] && { [ -n "$DB$DSN$WHEELHOUSE" ] || [ "$NO_APT$ENABLE_AMI" != 00 ]; }; then
    die_usage "--db, --dsn, --wheelhouse, --no-apt and --enable-ami go with an install, not --$MODE"
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
# Every path is absolute from here on. Leave the caller's folder: it may be
# the asterisk user's (/var/lib/asterisk), and no program root starts here
# may find files of its choosing there. Python also runs isolated (-I): no
# current folder on sys.path, no PYTHON* variables, no user site.
cd /
if [ "$(id -u)" != 0 ]; then
    echo "$PROG: must run as root (try: sudo ./$PROG)" >&2
    exit 1
fi
[ -f "$REQUIREMENTS" ] || { echo "$PROG: $REQUIREMENTS is missing: run $PROG from the unpacked project" >&2; exit 1; }
# The exact pins (name==version), lower-cased as pip freeze prints them.
mapfile -t PINS < <(sed -n 's/^[[:space:]]*\([A-Za-z0-9_.-]*==[^[:space:]#;]*\).*/\1/p' "$REQUIREMENTS" | tr '[:upper:]' '[:lower:]')
[ ${#PINS[@]} -gt 0 ] || { echo "$PROG: no name==version pin in $REQUIREMENTS" >&2; exit 1; }
# Root's own scratch folder (mode 700) for files built before they are put in place.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' TERM       # die in a subshell ends the whole run (below)

# ------------------------------------------------------------ reporting
CHANGES=0 FAILS=0
ok()      { printf '[ok]      %s\n' "$*"; }
changed() { printf '[changed] %s\n' "$*"; CHANGES=$((CHANGES + 1)); }
note()    { printf '[note]    %s\n' "$*"; }
pass()    { printf '[PASS]    %s\n' "$*"; }
fail()    { printf '[FAIL]    %s\n' "$*"; FAILS=$((FAILS + 1)); }
die() {   # also from inside $(...) or a pipeline: the whole run stops, exit 1
    printf '[ERROR]   %s\n' "$*" >&2
    if [ "$BASHPID" != "$$" ]; then kill -s TERM "$$"; fi
    exit 1
}

# --------------------------------------------------------------- helpers
as_asterisk() { runuser -u "$AST_USER" -- "$@"; }     # util-linux, always on Debian

# ------------------------------------------------ files root reads or writes
# /etc/asterisk, /var/lib/asterisk and agi-bin belong to the asterisk user
# (Debian, FreePBX): it can put a link, a hard link, a FIFO or a folder
# where root is about to read or write. So root never reads, writes, chmods
# or chowns by a file's name: safe_file walks to the folder as given, one
# name at a time without following links (a folder link is followed only
# when only root could have made it), every folder owned by root or
# asterisk and none writable by all; it refuses a target that is a link,
# has other hard links, is not a regular file (opened non-blocking, so a
# FIFO never stalls the run) or belongs to someone else; it changes mode and
# owner through an open file, and replaces contents whole: a new file beside
# the old one, renamed over it, so that a failure half-way leaves the old
# file as it was.
SAFE_FILE_PY=$(cat <<'PY'
import grp, os, pwd, stat, sys

class Refused(Exception):
    pass

def user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)

TRUSTED = (0, pwd.getpwnam(sys.argv[1]).pw_uid)
op, path, args = sys.argv[2], sys.argv[3], sys.argv[4:]
folder, name = os.path.split(path)
FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket",
         stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}

def vet_folder(st, where):
    if st.st_uid not in TRUSTED:
        raise Refused("the folder %s belongs to %s" % (where, user(st.st_uid)))
    if st.st_mode & stat.S_IWOTH:
        raise Refused("the folder %s is writable by anyone" % where)

def made_by_root(link, parent):
    """Only root could have made this link (Debian's /var/run -> /run, /lib -> usr/lib):
    it is root's, in a folder of root's that nobody else may write."""
    return link.st_uid == 0 and parent.st_uid == 0 and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)

def names(p):
    return [part for part in p.split("/") if part not in ("", ".")]

def make_folder(fd, part, mode, uid, gid):
    os.mkdir(part, 0o700, dir_fd=fd)
    sub = os.open(part, FOLDER, dir_fd=fd)
    try:
        os.fchown(sub, uid, gid)
        os.fchmod(sub, mode)
    finally:
        os.close(sub)

def open_folder(where_to, create=None):
    """where_to, walked from / as given (no realpath: it would follow a
    planted link). create=(mode, uid, gid): make what is missing, the
    folders on the way 755 root:root."""
    todo, links = names(where_to)[::-1], 0          # a stack: a followed link pushes its target
    fd, where = os.open("/", FOLDER), "/"
    try:
        vet_folder(os.fstat(fd), where)
        while todo:
            part = todo.pop()
            here = os.path.normpath(os.path.join(where, part))
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    raise
                make_folder(fd, part, *(create if not todo else (0o755, 0, 0)))
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(part, dir_fd=fd)
                if not made_by_root(st, os.fstat(fd)):
                    raise Refused("the folder %s is a symbolic link to %s" % (here, target))
                links += 1
                if links > 40:
                    raise Refused("the folder %s: too many links" % here)
                todo.extend(names(target)[::-1])
                if target.startswith("/"):
                    os.close(fd)
                    fd, where = os.open("/", FOLDER), "/"
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise Refused("%s is not a folder" % here)
            sub = os.open(part, FOLDER, dir_fd=fd)
            os.close(fd)
            fd, where = sub, here
            vet_folder(os.fstat(fd), where)
        return fd
    except BaseException:
        os.close(fd)
        raise

def vet(st, dfd):
    if stat.S_ISLNK(st.st_mode):
        raise Refused("it is a symbolic link to %s" % os.readlink(name, dir_fd=dfd))
    if not stat.S_ISREG(st.st_mode):
        raise Refused("it is not a regular file but %s" % KINDS.get(stat.S_IFMT(st.st_mode), "something else"))
    if st.st_nlink != 1:
        raise Refused("it has %d hard links" % st.st_nlink)
    if st.st_uid not in TRUSTED:
        raise Refused("it belongs to %s" % user(st.st_uid))

def existing(dfd):
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    vet(st, dfd)
    return st

def open_existing(dfd):
    st = existing(dfd)
    if st is None:
        raise Refused("it does not exist")
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    now = os.fstat(fd)
    vet(now, dfd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        raise Refused("it was replaced while install.sh looked at it")
    return fd, now

def replace(dfd, data, mode, uid, gid):
    while True:
        tmp = ".%s.qmt-%s" % (name, os.urandom(4).hex())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchown(f.fileno(), uid, gid)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        os.unlink(tmp, dir_fd=dfd)
        raise
    os.fsync(dfd)

def wanted(st, new_mode=0o644):  # MODE [USER GROUP] as given, the rest as the file is (a new one: root root)
    mode, uid, gid = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) if st else (new_mode, 0, 0)
    if args:
        mode = int(args[0], 8)
    if len(args) == 3:
        uid, gid = pwd.getpwnam(args[1]).pw_uid, grp.getgrnam(args[2]).gr_gid
    return mode, uid, gid

def main():
    if op == "mkdir":
        os.close(open_folder(path, create=wanted(None, 0o755)))
        return
    try:
        dfd = open_folder(folder)
    except FileNotFoundError:
        if op in ("check", "read", "remove"):
            return              # nothing there to refuse, read or remove
        raise
    if op == "check":
        existing(dfd)
    elif op == "read":          # a missing file reads as empty
        if existing(dfd) is not None:
            fd, _ = open_existing(dfd)
            with os.fdopen(fd, "rb") as f:
                sys.stdout.buffer.write(f.read())
    elif op == "remove":
        if existing(dfd) is not None:
            os.unlink(name, dir_fd=dfd)
    elif op == "chmod":
        fd, st = open_existing(dfd)
        try:
            mode, uid, gid = wanted(st)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    elif op in ("write", "append"):
        st, data = existing(dfd), sys.stdin.buffer.read()
        if op == "append" and st is not None:
            fd, st = open_existing(dfd)
            with os.fdopen(fd, "rb") as f:
                old = f.read()
            data = old + (b"\n" if old and not old.endswith(b"\n") else b"") + data
        replace(dfd, data, *wanted(st))
    else:
        raise ValueError("unknown operation " + op)

try:
    main()
except Refused as e:
    sys.exit("refusing to touch %s: %s; install.sh reads and writes only regular files of root or %s,"
             " never through a link another user could have made" % (path, e, sys.argv[1]))
except OSError as e:
    sys.exit("could not %s %s (%s): it is left as it was" % (op, path, e.strerror or e))
except Exception as e:
    sys.exit("could not %s %s: %s" % (op, path, e))
PY
)

# safe_file check|read|write|append|chmod|remove|mkdir PATH [MODE [USER GROUP]]:
# see above. check: refuse PATH now (a missing file or folder is fine);
# read: PATH to stdout (a missing one reads as empty); write: stdin becomes
# PATH; append: stdin added to PATH (its last line ended first); chmod: set
# mode and owner; remove: PATH, if there; mkdir: the folder PATH and those
# on the way (new ones 755 root:root, PATH itself as given). write, append
# and chmod keep PATH's mode and owner unless given (a new file: 644
# root:root). A refusal or failure ends the run with its one line.
safe_file() {
    local why
    why=$(python3 -I -c "$SAFE_FILE_PY" "$AST_USER" "$@" 2>&1 >&3) || die "${why:-could not $1 $2}"
} 3>&1

refuse_unsafe() { local f; for f in "$@"; do [ -z "$f" ] || safe_file check "$f"; done; }   # refuse_unsafe PATH...

# Files root reads go through `safe_file read` too, captured first
# (text=$(safe_file read F); grep -q ... <<<"$text"): a reader that stops
# early (grep -q, awk's exit) would break the pipe and fail the read.

# Never pipe asterisk -rx into a reader that may stop early (grep -q, head):
# with pipefail the SIGPIPE it gets would read as a failure. Capture, then test.
asterisk_running() {
    command -v asterisk >/dev/null 2>&1 || return 1
    local v
    v=$(timeout 10 asterisk -rx 'core show version' 2>/dev/null) || return 1
    [[ $'\n'$v == *$'\n'"Asterisk "* ]]    # a warning may come first (no ethernet card: EID)
}

ast_cli() { timeout 20 asterisk -rx "$1" 2>/dev/null || true; }

ast_has() {  # ast_has COMMAND TEXT: the command's output contains TEXT
    local o
    o=$(ast_cli "$1")
    [[ $o == *"$2"* ]]
}

context_loaded() { ast_has "dialplan show $CONTEXT" "Context '$CONTEXT'"; }

running_agi_dir() {
    local o
    o=$(ast_cli 'core show settings')
    awk '/^ *AGI Scripts directory:/ { sub(/^ *AGI Scripts directory: */, ""); sub(/[ \r]+$/, ""); print; exit }' <<<"$o"
}

manifest_all() {   # every value of a key, in the order written
    [ -e "$MANIFEST" ] || [ -L "$MANIFEST" ] || return 0
    local text
    text=$(safe_file read "$MANIFEST")
    sed -n "s/^$1=//p" <<<"$text"
}
manifest_get() { manifest_all "$1" | tail -n 1; }   # its last value

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
    local text
    text=$(safe_file read "$ASTETC/asterisk.conf")
    if [ -n "$text" ]; then
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
            }' <<<"$text")
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

# The agi-bin of the installed script (for --check): the one the manifest
# recorded last, else where Asterisk would look. Sets AGI_DIR.
installed_agi_dir() {
    AGI_DIR=$(manifest_get agi_dir)
    if [ -z "$AGI_DIR" ]; then resolve_agi_dir; fi
}

# Every agi-bin an install has used, one a line, the current one ($AGI_DIR)
# last: the manifest keeps them all, so that --uninstall leaves no script
# behind after a changed --agi-dir.
agi_dirs_used() {
    manifest_all agi_dir | grep -vxF -- "$AGI_DIR" || [ $? = 1 ]   # grep: 1 = none other
    echo "$AGI_DIR"
}

# FreePBX keeps admin dialplan in extensions_custom.conf (it rewrites the rest).
include_file() {
    if [ -f /etc/freepbx.conf ] || [ -f /etc/amportal.conf ] || [ -f "$ASTETC/extensions_custom.conf" ]; then
        echo "$ASTETC/extensions_custom.conf"
    else
        echo "$ASTETC/extensions.conf"
    fi
}

# The file that has our #include line, else the one it belongs in.
include_target() {
    local have
    mapfile -t have < <(files_with_include)
    if [ ${#have[@]} -gt 0 ]; then echo "${have[0]}"; else include_file; fi
}

# The files that have our #include line, one a line.
files_with_include() {
    local f text
    for f in "$ASTETC/extensions.conf" "$ASTETC/extensions_custom.conf"; do
        text=$(safe_file read "$f")
        if grep -qE "$INCLUDE_RE" <<<"$text"; then echo "$f"; fi
    done
}

# The ODBC connection string of a config file (the script's default if unset).
# Fails (1, quietly) when it does not parse.
config_connection() {
    local text
    text=$(safe_file read "$1")
    python3 -I -c '
import configparser, sys
p = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
p.read_string(sys.stdin.buffer.read().decode("utf-8"))
print(p.get("database", "connection", fallback="DSN=queue_mobile_toggle").strip())' 2>/dev/null <<<"$text"
}

# The connection string as install.sh may show it: the value of every key
# ending in PWD, PASSWD or PASSWORD (any case: Pwd, TLSKEYPWD...) is ***, as
# the package's masker does; a value in braces may hold ";" and "}}", an
# unclosed brace hides the rest.
masked_connection() {
    python3 -I -c '
import re, sys
s, out, pos = sys.argv[1], [], 0
part = re.compile(r"([^=;]*)(?:=(\{(?:[^}]|\}\})*\}(?=;|$)|\{.*|[^;]*))?;?")
while pos < len(s):
    m = part.match(s, pos)
    if m.group(2) is not None and re.search(r"(pwd|passwd|password)\s*$", m.group(1), re.I):
        out.append(m.group(1) + "=***" + (";" if m.group(0).endswith(";") else ""))
    else:
        out.append(m.group(0))
    pos = m.end()
print("".join(out))' "$1"
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
        c=${BASH_REMATCH[1]}
        echo "${c%"${c##*[![:space:]]}"}"       # without trailing blanks
    fi
}

# ini_has FILE SECTION: FILE has a [SECTION] (names compare case-insensitively).
ini_has() {
    local text
    text=$(safe_file read "$1")
    awk -v sec="$2" '
        /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); if (tolower(s) == tolower(sec)) { found = 1; exit } }
        END { exit !found }' <<<"$text"
}

# ini_value FILE SECTION KEY: the value of KEY in [SECTION], else "".
ini_value() {
    local text
    text=$(safe_file read "$1")
    awk -v sec="$2" -v key="$3" '
        /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); insec = (tolower(s) == tolower(sec)); next }
        insec { k = $0; sub(/[[:space:]]*=.*/, "", k); gsub(/^[[:space:]]+/, "", k)
                if (tolower(k) == tolower(key)) { v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]+$/, "", v); print v; exit } }' <<<"$text"
}

# Filters for rewrite_file: stdin to stdout.
ini_without_section() {  # ini_without_section SECTION
    awk -v sec="$1" '
        /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); skip = (tolower(s) == tolower(sec)) }
        !skip'
}
ini_with_value() {  # ini_with_value SECTION KEY VALUE: an existing KEY of [SECTION] set to VALUE
    awk -v sec="$1" -v key="$2" -v val="$3" '
        /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); insec = (tolower(s) == tolower(sec)); print; next }
        insec { k = $0; sub(/[[:space:]]*=.*/, "", k); gsub(/^[[:space:]]+/, "", k)
                if (tolower(k) == tolower(key) && match($0, /=[[:space:]]*/)) $0 = substr($0, 1, RSTART + RLENGTH - 1) val }
        { print }'
}
ini_set() {  # ini_set SECTION KEY VALUE: KEY of [SECTION] set to VALUE; a missing KEY goes right
            # under the [SECTION] line, since an #include may follow the section's last key
    awk -v sec="$1" -v key="$2" -v val="$3" '
        { line[NR] = $0 }
        /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); insec = (tolower(s) == tolower(sec))
                            if (insec && !head) head = NR; next }
        insec { k = $0; sub(/[[:space:]]*=.*/, "", k); gsub(/^[[:space:]]+/, "", k)
                if (tolower(k) == tolower(key) && !at) at = NR }
        END { for (i = 1; i <= NR; i++) {
                  if (i == at) { print key " = " val; continue }
                  print line[i]
                  if (i == head && !at) print key " = " val } }'
}
without_include_line() { grep -vE "$INCLUDE_RE" || [ $? = 1 ]; }   # grep: 1 = no line left

# rewrite_file FILE FILTER [ARG...]: FILE becomes FILTER's output on FILE,
# with the same owner and mode.
rewrite_file() {
    local file=$1
    shift
    safe_file read "$file" >"$WORK/old"
    "$@" <"$WORK/old" >"$WORK/new" || die "could not rewrite $file: it is left as it was"
    safe_file write "$file" <"$WORK/new"
}

dsn_defined() { ini_has "$ODBC_INI" "$1"; }
dsn_value() { ini_value "$ODBC_INI" "$1" "$2"; }   # dsn_value NAME KEY

# psqlODBC's CommLog in Debian's /etc/odbcinst.ini: when on, it writes a
# /tmp/psqlodbc_*.log for every connection, whatever the DSN says.
psqlodbc_commlog() { ini_value "$ODBCINST_INI" "$PG_DRIVER" CommLog; }
psqlodbc_commlog_on() {   # the driver reads the value with atoi(): on when > 0
    local v
    v=$(psqlodbc_commlog)
    [[ $v =~ ^[0-9]+ ]] && (( 10#${BASH_REMATCH[0]} > 0 ))
}

driver_package() {
    case $1 in
        sqlite) echo libsqliteodbc ;;
        mariadb) echo odbc-mariadb ;;
        postgresql) echo odbc-postgresql ;;
    esac
}

# The allowlist backend: --db, else what an earlier install recorded, else
# the one the driver of the config's DSN names; sqlite by default. Sets BACKEND.
find_backend() {
    BACKEND=${DB:-$(manifest_get backend)}
    if [ -z "$BACKEND" ] && [ -f "$CONFIG" ] && command -v python3 >/dev/null 2>&1; then
        local d
        d=$(any_dsn "$(config_connection "$CONFIG" || true)")   # unparsable: said later
        case $(dsn_value "$d" Driver) in
            *[Mm]aria*|*[Mm]y[Ss][Qq][Ll]*) BACKEND=mariadb ;;
            *[Pp]ostgre*) BACKEND=postgresql ;;
        esac
    fi
    BACKEND=${BACKEND:-sqlite}
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }        # of a file in $WORK
installed_sha() { safe_file read "$1" | sha256sum | cut -d' ' -f1; }   # of a file in place
same_bytes() {   # same_bytes SRC DEST: DEST in place holds exactly SRC's bytes
    safe_file read "$2" >"$WORK/installed"
    cmp -s "$1" "$WORK/installed"
}
mode_of() { stat -c '%a %U:%G' "$1"; }               # "640 root:asterisk"
readable_by_others() { (( 8#$(stat -c %a "$1") & 8#007 )); }

# install_file SRC DEST MODE OWNER:GROUP LABEL: copy only when different.
install_file() {
    local src=$1 dest=$2 mode=$3 own=$4 label=$5
    if [ -f "$dest" ] && same_bytes "$src" "$dest" && [ "$(mode_of "$dest")" = "$mode $own" ]; then
        ok "$label: $dest unchanged"
    else
        safe_file write "$dest" "$mode" "${own%%:*}" "${own##*:}" <"$src"
        changed "$label: installed $dest (mode $mode, $own)"
    fi
}

venv_ok() {
    [ -x "$VENV/bin/python3" ] || return 1
    "$VENV/bin/python3" -I -c 'import asterisk.agi, pyodbc' >/dev/null 2>&1 || return 1
    local frozen pin
    frozen=$("$VENV/bin/python3" -I -m pip freeze --disable-pip-version-check 2>/dev/null | tr '[:upper:]' '[:lower:]') || return 1
    for pin in "${PINS[@]}"; do
        grep -qx "$pin" <<<"$frozen" || return 1
    done
}

# ------------------------------------------------------------------ install
# What the install steps share, besides AGI_DIR (resolve_agi_dir) and
# BACKEND (find_backend):
WANT_DSN=""          # the allowlist's DSN: --dsn, else the default
CONN=""              # the config's ODBC connection string (read_config_connection)
INCLUDE_FILE=""      # the file with our #include line (install_include_line)
DIALPLAN_CHANGED=0   # 1 when install_dialplan changed a file (reload_dialplan)
# and what write_manifest records for --uninstall:
M_CONFIG_SHA="" M_DSN_ADDED="" M_SQLITE_DB=""

do_install() {
    require_install_prerequisites
    find_backend
    WANT_DSN=${DSN:-$DEFAULT_DSN}
    install_os_packages
    resolve_agi_dir
    refuse_unsafe_install_targets
    quiet_psqlodbc_commlog
    install_venv
    install_package
    install_qmt_command
    install_agi_script
    install_config
    read_config_connection
    install_allowlist
    install_dialplan
    install_ami_account
    install_sweep_timer
    write_manifest
    reload_dialplan
    reload_manager
    report_install
}

# Before any change: every file this run may read, write, chmod or chown
# must be one safe_file accepts; else the run stops here with one line.
# The files read to name the others come first.
refuse_unsafe_install_targets() {
    refuse_unsafe "${READ_FILES[@]}"
    refuse_unsafe "$AGI_DIR/$SCRIPT" "$ASTETC/$DIALPLAN" "$(ami_account_file)" "$SWEEP_CRON" \
        "$SWEEP_UNITS.service" "$SWEEP_UNITS.timer"
    [ "$BACKEND" != sqlite ] || refuse_unsafe "$(sqlite_db_of "$WANT_DSN")" "$(sqlite_db_of "$(config_dsn)")"
}

config_dsn() { plain_dsn "$(config_connection "$CONFIG" || true)"; }   # "" unless DSN=NAME

require_install_prerequisites() {
    local f
    for f in agi/$SCRIPT agi/$DIALPLAN agi/queue_mobile_toggle.conf.example sql/sqlite.sql; do
        [ -f "$SRC/$f" ] || die "source file missing: $SRC/$f (run $PROG from the unpacked project)"
    done
    id "$AST_USER" >/dev/null 2>&1 || die "no '$AST_USER' user: install Asterisk first"
    command -v python3 >/dev/null 2>&1 || [ "$NO_APT" = 0 ] || die "python3 is missing (and --no-apt was given)"
}

# The ODBC manager, Python, the backend's ODBC driver (and for SQLite its CLI).
install_os_packages() {
    local pkgs=(unixodbc python3 python3-venv "$(driver_package "$BACKEND")") missing=() p
    if [ "$BACKEND" = sqlite ]; then pkgs+=(sqlite3); fi
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
}

# PostgreSQL backend only: CommLog=0 for the driver in /etc/odbcinst.ini.
quiet_psqlodbc_commlog() {
    [ "$BACKEND" = postgresql ] || return 0
    local where="[$PG_DRIVER] of $ODBCINST_INI"
    if ! ini_has "$ODBCINST_INI" "$PG_DRIVER"; then
        note "odbcinst: no $where (odbc-postgresql registers the driver there)"
    elif psqlodbc_commlog_on; then
        local was
        was=$(psqlodbc_commlog)
        rewrite_file "$ODBCINST_INI" ini_with_value "$PG_DRIVER" CommLog 0
        changed "odbcinst: CommLog=0 in $where (was $was: a /tmp/psqlodbc_*.log file for every call)"
    else
        ok "odbcinst: CommLog is off in $where"
    fi
}

# A virtual environment with the pinned Python packages, rebuilt when it lacks one.
install_venv() {
    if venv_ok; then
        ok "venv: $VENV has ${PINS[*]}"
        return
    fi
    mkdir -p "$PREFIX"
    rm -rf "$VENV"
    python3 -I -m venv "$VENV" >/dev/null || die "venv: python3 -m venv $VENV failed (is python3-venv installed?)"
    local pipargs=(install --quiet --disable-pip-version-check --no-cache-dir)
    if [ -n "$WHEELHOUSE" ]; then pipargs+=(--no-index --find-links "$WHEELHOUSE"); fi
    "$VENV/bin/python3" -I -m pip "${pipargs[@]}" -r "$REQUIREMENTS" ||
        die "venv: pip install ${PINS[*]} failed${WHEELHOUSE:+ from $WHEELHOUSE} (see docs/install.md, 'Offline')"
    venv_ok || die "venv: $VENV cannot import asterisk.agi and pyodbc after pip install"
    changed "venv: created $VENV with ${PINS[*]}${WHEELHOUSE:+ (offline, from $WHEELHOUSE)}"
}

# The project's package (agi/qmt: the toggle and the `qmt` command) in the
# venv, byte-compiled by pip; reinstalled when a source file differs. pip
# builds it from a copy in root's scratch folder (setuptools comes from the
# index, or from the wheelhouse offline), so the source tree stays as it is.
install_package() {
    if package_current; then
        ok "package: qmt $(package_version) in $VENV"
        return
    fi
    mkdir -p "$WORK/project/agi"
    cp "$SRC/setup.cfg" "$SRC/pyproject.toml" "$WORK/project/"
    cp -r "$SRC/agi/qmt" "$WORK/project/agi/"
    local pipargs=(install --quiet --disable-pip-version-check --no-cache-dir --no-deps)
    if [ -n "$WHEELHOUSE" ]; then pipargs+=(--no-index --find-links "$WHEELHOUSE"); fi
    "$VENV/bin/python3" -I -m pip "${pipargs[@]}" "$WORK/project" >"$WORK/pip.log" 2>&1 ||
        die "package: pip install of agi/qmt failed${WHEELHOUSE:+ from $WHEELHOUSE (it needs a setuptools wheel there)}: $(tail -n 3 "$WORK/pip.log" | tr '\n' ' ')"
    package_current || die "package: $VENV does not have the qmt package after pip install"
    changed "package: installed qmt $(package_version) in $VENV"
}

package_dir() { "$VENV/bin/python3" -I -c 'import os, qmt; print(os.path.dirname(qmt.__file__))' 2>/dev/null; }
package_version() { "$VENV/bin/python3" -I -c 'import qmt; print(qmt.__version__)' 2>/dev/null; }

# The venv's qmt package is this source tree's, and its command is there.
package_current() {
    local dir f
    dir=$(package_dir) || return 1
    [ -x "$VENV/bin/qmt" ] || return 1
    for f in "$SRC"/agi/qmt/*.py; do
        cmp -s "$f" "$dir/${f##*/}" || return 1
    done
}

# `qmt` on root's PATH: a link to the venv's console script.
install_qmt_command() {
    if [ "$(readlink "$QMT_LINK" 2>/dev/null)" = "$VENV/bin/qmt" ]; then
        ok "command: $QMT_LINK -> $VENV/bin/qmt"
    elif [ -e "$QMT_LINK" ] || [ -L "$QMT_LINK" ]; then
        note "command: $QMT_LINK exists and is not ours: left; run $VENV/bin/qmt"
    else
        mkdir -p "${QMT_LINK%/*}"
        ln -s "$VENV/bin/qmt" "$QMT_LINK"
        changed "command: $QMT_LINK -> $VENV/bin/qmt"
    fi
}

# The AGI script, in the agi-bin Asterisk uses, its shebang on the venv's Python.
install_agi_script() {
    if [ -d "$AGI_DIR" ]; then
        ok "agi-bin: $AGI_DIR (from $AGI_DIR_FROM)"
    else
        safe_file mkdir "$AGI_DIR"
        changed "agi-bin: created $AGI_DIR (from $AGI_DIR_FROM)"
    fi
    { echo "$SHEBANG"; sed '1{/^#!/d}' "$SRC/agi/$SCRIPT"; } >"$WORK/$SCRIPT"
    install_file "$WORK/$SCRIPT" "$AGI_DIR/$SCRIPT" 750 "root:$AST_USER" "script"
}

# The config, written only when none exists; never readable by others.
install_config() {
    M_CONFIG_SHA=$(manifest_get config_sha256)
    if [ -f "$CONFIG" ]; then
        ok "config: $CONFIG exists, kept as it is"
        if readable_by_others "$CONFIG"; then
            safe_file chmod "$CONFIG" "$(printf '%o' $(( 8#$(stat -c %a "$CONFIG") & ~8#007 )))"
            changed "config: $CONFIG was readable by others: now mode $(stat -c %a "$CONFIG")"
        fi
        return
    fi
    local new=$WORK/config
    if [ "$BACKEND" = sqlite ] && [ "$WANT_DSN" = "$DEFAULT_DSN" ]; then
        cp "$SRC/agi/queue_mobile_toggle.conf.example" "$new"
    else
        sed "s|^connection *=.*|connection = DSN=$WANT_DSN|" "$SRC/agi/queue_mobile_toggle.conf.example" >"$new"
    fi
    safe_file write "$CONFIG" 640 root "$AST_USER" <"$new"
    M_CONFIG_SHA=$(sha_of "$new")
    changed "config: wrote $CONFIG (mode 640, root:$AST_USER; connection = DSN=$WANT_DSN)"
}

# Sets CONN; a note when --db/--dsn asked for a DSN the kept config does not name.
read_config_connection() {
    CONN=$(config_connection "$CONFIG") || die "config: cannot parse $CONFIG"
    if [ -n "$DSN$DB" ] && [ "$(any_dsn "$CONN")" != "$WANT_DSN" ]; then
        note "config: $CONFIG says 'connection = $(masked_connection "$CONN")', not DSN=$WANT_DSN; edit it if --dsn $WANT_DSN is what you want"
    fi
}

# The allowlist: a server's is the admin's to set up; the embedded default
# is a SQLite file and its DSN, made here unless the config points elsewhere.
install_allowlist() {
    M_DSN_ADDED=$(manifest_get dsn_added) M_SQLITE_DB=$(manifest_get sqlite_db)
    local cdsn
    cdsn=$(plain_dsn "$CONN")
    if [ "$BACKEND" != sqlite ]; then
        local sdsn
        sdsn=$(any_dsn "$CONN")
        sdsn=${sdsn:-$WANT_DSN}
        ok "allowlist: $BACKEND through DSN=$sdsn (no SQLite file; the DSN is yours to define, see docs/install.md)"
        dsn_defined "$sdsn" || note "allowlist: DSN $sdsn is not defined in $ODBC_INI yet"
    elif [ -z "$cdsn" ] || { [ -n "$DSN" ] && [ "$cdsn" != "$DSN" ]; }; then
        ok "allowlist: the config points elsewhere ($(masked_connection "$CONN")): no SQLite allowlist created"
    elif dsn_defined "$cdsn" && [ "$cdsn" != "$M_DSN_ADDED" ]; then
        ok "allowlist: DSN $cdsn is already defined in $ODBC_INI (driver $(dsn_value "$cdsn" Driver)): left as it is"
    else
        odbcinst -q -d -n SQLite3 >/dev/null 2>&1 ||
            die "allowlist: ODBC driver SQLite3 is not registered (apt-get install libsqliteodbc)"
        local db
        db=$(sqlite_db_of "$cdsn")
        install_sqlite_allowlist "$db"
        install_sqlite_dsn "$cdsn" "$db"
    fi
}

sqlite_db_of() {  # sqlite_db_of DSN: the file its Database names, else the default
    local db
    db=$(dsn_value "$1" Database)
    echo "${db:-$SQLITE_DB}"
}

# sqlite_has_table DB TABLE, read as the asterisk user (as the script reads
# it): root opens no file by a name that user could redirect.
sqlite_has_table() {
    [ -f "$1" ] || return 1
    as_asterisk timeout 30 python3 -I - "$1" "$2" 2>/dev/null <<'PY'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
sys.exit(0 if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (sys.argv[2],)).fetchone() else 1)
PY
}

# The allowlist file is the asterisk user's to write, so root never opens it
# with SQLite (a crafted file is crafted input to a C parser run as root):
# SQLITE_PY runs as asterisk on a private copy. Argument: create|upgrade and
# the SQL; stdin: the old file (empty: a new one); stdout: the names of the
# columns it added on one line, then the new file.
SQLITE_PY=$(cat <<'PY'
import os, re, sqlite3, sys, tempfile

def add_columns(c, sql):  # the ALTER TABLE ... ADD COLUMN lines whose column the table lacks
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    added = []
    for statement in filter(None, (s.strip() for s in text.split(";"))):
        m = re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", statement, re.IGNORECASE)
        if not m:
            sys.exit("not an ADD COLUMN: " + statement.split("\n")[0])
        if m.group(2).lower() not in [row[1].lower() for row in c.execute("PRAGMA table_info(%s)" % m.group(1))]:
            c.execute(statement)
            added.append(m.group(2))
    return added

op, sql = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory() as scratch:
    db = os.path.join(scratch, "allowlist.sqlite")
    with open(db, "wb") as f:
        f.write(sys.stdin.buffer.read())
    c = sqlite3.connect(db)
    added = []
    if op == "upgrade":
        added = add_columns(c, sql)
    else:
        c.executescript(sql)
    c.commit()
    c.close()
    with open(db, "rb") as f:
        sys.stdout.buffer.write((" ".join(added) + "\n").encode() + f.read())
PY
)

# sqlite_as_asterisk create|upgrade DB SQL_FILE COPY: SQL_FILE applied (as
# the asterisk user) to a copy of DB, which goes to COPY in root's scratch
# folder; prints the columns added.
sqlite_as_asterisk() {
    local out=$WORK/sqlite.out
    safe_file read "$2" | as_asterisk timeout 60 python3 -I -c "$SQLITE_PY" "$1" "$(<"$3")" >"$out" || return 1
    head -n 1 "$out"
    tail -n +2 "$out" >"$4"
}

# install_sqlite_allowlist DB: the SQLite file with its table, readable and
# writable by the asterisk group only: root's `qmt allow` and `revoke` run as
# the asterisk user (README, Security), which owns the folder and could
# replace the file anyway.
SQLITE_MODE=660
install_sqlite_allowlist() {
    local db=$1 dir
    dir=$(dirname "$db")
    if [ ! -d "$dir" ]; then
        safe_file mkdir "$dir" 750 root "$AST_USER"
        changed "allowlist: created $dir (mode 750, root:$AST_USER)"
    fi
    if [ -e "$db" ] && [ "$(mode_of "$db")" != "$SQLITE_MODE root:$AST_USER" ]; then
        safe_file chmod "$db" "$SQLITE_MODE" root "$AST_USER"
        changed "allowlist: $db is mode $SQLITE_MODE, root:$AST_USER (the asterisk group reads and writes it)"
    fi
    if sqlite_has_table "$db" "$TABLE"; then
        ok "allowlist: $db has table $TABLE"
        upgrade_sqlite_table "$db"
    else
        add_sqlite_tables "$db"
        changed "allowlist: created table $TABLE in $db from sql/sqlite.sql"
    fi
    M_SQLITE_DB=$db
}

# add_sqlite_tables DB: sql/sqlite.sql applied to a copy of DB (or to a new
# file), which then replaces DB.
add_sqlite_tables() {
    local db=$1 copy=$WORK/allowlist.sqlite
    sqlite_as_asterisk create "$db" "$SRC/sql/sqlite.sql" "$copy" >/dev/null ||
        die "allowlist: could not create table $TABLE for $db"
    safe_file write "$db" "$SQLITE_MODE" root "$AST_USER" <"$copy"
}

# upgrade_sqlite_table DB: the columns of later versions added to an
# existing table, so that a re-run brings an old allowlist up to date (the
# AGI reads a table without them, but cannot use what they hold): the
# ALTER TABLE ... ADD COLUMN lines of sql/upgrade_sqlite.sql (the DBA's
# by-hand upgrade too) whose column the table lacks; SQLite has no ADD
# COLUMN IF NOT EXISTS. Like add_sqlite_tables it works on a copy, and
# writes DB back only when a column was added: a current table is left
# untouched.
upgrade_sqlite_table() {
    local db=$1 copy=$WORK/allowlist.sqlite added
    added=$(sqlite_as_asterisk upgrade "$db" "$SRC/sql/upgrade_sqlite.sql" "$copy") ||
        die "allowlist: could not add the new columns of $TABLE to a copy of $db (it is left as it was)"
    [ -n "$added" ] || return 0
    safe_file write "$db" "$SQLITE_MODE" root "$AST_USER" <"$copy"
    changed "allowlist: added column(s) ${added// /, } to table $TABLE in $db (sql/upgrade_sqlite.sql)"
}

# install_sqlite_dsn NAME DB: the DSN in /etc/odbc.ini, added when missing.
install_sqlite_dsn() {
    local name=$1 db=$2
    if dsn_defined "$name"; then
        ok "allowlist: DSN $name in $ODBC_INI"
        return
    fi
    safe_file append "$ODBC_INI" <<EOF
[$name]
Description = $DSN_DESCRIPTION
Driver = SQLite3
Database = $db
NoCreat = 1
Timeout = 2000
EOF
    M_DSN_ADDED=$name
    changed "allowlist: added DSN $name (SQLite3, $db) to $ODBC_INI"
}

# The dialplan file and exactly one #include line; sets DIALPLAN_CHANGED.
install_dialplan() {
    local before=$CHANGES
    install_file "$SRC/agi/$DIALPLAN" "$ASTETC/$DIALPLAN" 644 "root:root" "dialplan"
    install_include_line
    DIALPLAN_CHANGED=$(( CHANGES > before ))
}

# Sets INCLUDE_FILE: where the line is, or the file it is added to.
install_include_line() {
    INCLUDE_FILE=$(include_target)
    if [ -n "$(files_with_include)" ]; then
        ok "include: $INCLUDE_FILE has '$INCLUDE_LINE'"
    else
        safe_file append "$INCLUDE_FILE" <<<"$INCLUDE_LINE"
        changed "include: added '$INCLUDE_LINE' to $INCLUDE_FILE"
    fi
}

# ---------------------------------------------------- the manager account
# `qmt` reads queue members and removes them through AMI, as its own account
# with only the rights that needs (agent), from 127.0.0.1 only. Its secret
# lives in the config (mode 640). Where the account goes: Debian's
# manager.conf reads manager.d/*.conf, FreePBX's reads manager_custom.conf;
# anywhere else manager.conf gets one #include line for a file of ours.
ami_account_file() {
    local text
    text=$(safe_file read "$MANAGER_CONF")
    if grep -qE '^[[:space:]]*#(try)?include[[:space:]]+"?manager\.d/\*\.conf"?' <<<"$text"; then
        echo "$ASTETC/manager.d/queue_mobile_toggle.conf"
    elif grep -qE '^[[:space:]]*#(try)?include[[:space:]]+"?manager_custom\.conf"?' <<<"$text"; then
        echo "$ASTETC/manager_custom.conf"
    else
        echo "$ASTETC/$AMI_OWN_FILE"
    fi
}

has_line() {   # has_line FILE LINE: FILE has exactly this line
    local text
    text=$(safe_file read "$1")
    grep -qxF -- "$2" <<<"$text"
}

ami_section() {   # ami_section SECRET
    printf '; queue-mobile-toggle: the account of the qmt command (install.sh)\n[%s]\nsecret = %s\n' "$AMI_USER" "$1"
    printf 'deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = agent\nwrite = agent\n'
}

manager_enabled() { [[ $(ini_value "$MANAGER_CONF" general enabled) =~ ^([Yy]es|[Tt]rue|1|[Oo]n)$ ]]; }

install_ami_account() {
    if [ ! -f "$MANAGER_CONF" ]; then
        note "ami: no $MANAGER_CONF; qmt check/status/sweep need Asterisk's manager interface"
        return
    fi
    install_ami_secret_in_config
    local file before=$CHANGES
    file=$(ami_account_file)
    if [ "$file" = "$ASTETC/manager_custom.conf" ] && [ -f "$file" ]; then
        safe_file read "$file" | ini_without_section "$AMI_USER" >"$WORK/ami"
    else
        : >"$WORK/ami"
    fi
    ami_section "$(ini_value "$CONFIG" ami secret)" >>"$WORK/ami"
    safe_file mkdir "${file%/*}"
    install_file "$WORK/ami" "$file" 640 "root:$AST_USER" "ami"
    M_AMI_FILE=$file
    if [ "$file" = "$ASTETC/$AMI_OWN_FILE" ] && ! has_line "$MANAGER_CONF" "$AMI_INCLUDE_LINE"; then
        safe_file append "$MANAGER_CONF" <<<"$AMI_INCLUDE_LINE"
        changed "ami: added '$AMI_INCLUDE_LINE' to $MANAGER_CONF"
    fi
    install_ami_enabled
    AMI_CHANGED=$(( CHANGES > before ))
}

# The [ami] section of the config, added once with a new random secret.
install_ami_secret_in_config() {
    local port secret as_installed=0
    port=$(ini_value "$MANAGER_CONF" general port)
    if [ -n "$(ini_value "$CONFIG" ami secret)" ]; then
        ok "ami: $CONFIG has the manager account's secret"
        if [ "$(ini_value "$CONFIG" ami port)" != "${port:-5038}" ]; then
            rewrite_file "$CONFIG" ini_set ami port "${port:-5038}"
            changed "ami: port ${port:-5038} in $CONFIG, as in $MANAGER_CONF"
        fi
        return
    fi
    secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    if [ "$(installed_sha "$CONFIG")" = "$M_CONFIG_SHA" ]; then as_installed=1; fi
    printf '\n[ami]\n; the manager account install.sh made for the qmt command\nhost = 127.0.0.1\nport = %s\nusername = %s\nsecret = %s\n' \
        "${port:-5038}" "$AMI_USER" "$secret" | safe_file append "$CONFIG"
    # a config never edited by the admin stays one that --uninstall may remove
    if [ "$as_installed" = 1 ]; then M_CONFIG_SHA=$(installed_sha "$CONFIG"); fi
    changed "ami: added [ami] (account $AMI_USER, port ${port:-5038}) to $CONFIG"
}

install_ami_enabled() {
    if manager_enabled; then
        ok "ami: the manager interface is on in $MANAGER_CONF"
    elif [ "$ENABLE_AMI" = 1 ]; then
        rewrite_file "$MANAGER_CONF" ini_set general enabled yes
        [ -n "$(ini_value "$MANAGER_CONF" general bindaddr)" ] ||
            rewrite_file "$MANAGER_CONF" ini_set general bindaddr 127.0.0.1
        changed "ami: turned the manager interface on in $MANAGER_CONF (--enable-ami)"
    else
        note "ami: the manager interface is off in $MANAGER_CONF: qmt check/status/sweep cannot work; run $PROG --enable-ami to turn it on (127.0.0.1 only)"
    fi
}

# When Asterisk runs and the account changed: reload the manager.
reload_manager() {
    [ "${AMI_CHANGED:-0}" = 1 ] || return 0
    if asterisk_running; then
        ast_cli 'manager reload' >/dev/null
        changed "asterisk: manager reloaded (account $AMI_USER)"
    fi
}

# ------------------------------------------------------------ the sweep
# qmt sweep --apply every 5 minutes as the asterisk user: a systemd timer
# where systemd runs, else a cron file.
install_sweep_timer() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        install_sweep_units
        return
    fi
    printf '%s\n' "# queue-mobile-toggle (install.sh): remove mobile queue members whose permission is gone" \
        "SHELL=/bin/sh" "PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "*/5 * * * * $AST_USER $SWEEP_COMMAND >/dev/null" >"$WORK/cron"
    safe_file mkdir "${SWEEP_CRON%/*}"
    install_file "$WORK/cron" "$SWEEP_CRON" 644 root:root "sweep"
    M_SWEEP=$SWEEP_CRON
    command -v cron >/dev/null 2>&1 || [ -x /usr/sbin/cron ] ||
        note "sweep: cron is not installed, so $SWEEP_CRON does not run (apt-get install cron)"
}

install_sweep_units() {
    printf '%s\n' "[Unit]" "Description=queue-mobile-toggle: remove mobile queue members whose permission is gone" \
        "After=asterisk.service" "" "[Service]" "Type=oneshot" "User=$AST_USER" "ExecStart=$SWEEP_COMMAND" \
        >"$WORK/service"
    printf '%s\n' "[Unit]" "Description=queue-mobile-toggle sweep every 5 minutes" "" "[Timer]" "OnBootSec=5min" \
        "OnUnitActiveSec=5min" "" "[Install]" "WantedBy=timers.target" >"$WORK/timer"
    install_file "$WORK/service" "$SWEEP_UNITS.service" 644 root:root "sweep"
    install_file "$WORK/timer" "$SWEEP_UNITS.timer" 644 root:root "sweep"
    M_SWEEP="$SWEEP_UNITS.timer"
    if ! systemctl is-enabled --quiet qmt-sweep.timer 2>/dev/null || ! systemctl is-active --quiet qmt-sweep.timer; then
        { systemctl daemon-reload && systemctl enable --now qmt-sweep.timer; } >/dev/null 2>&1 ||
            die "sweep: systemctl enable --now qmt-sweep.timer failed"
        changed "sweep: qmt-sweep.timer enabled"
    fi
}

# What --uninstall removes; rewritten only when different.
write_manifest() {
    local new=$WORK/manifest
    {
        echo "# queue-mobile-toggle install.sh manifest: what --uninstall removes"
        agi_dirs_used | sed 's/^/agi_dir=/'
        echo "include_file=$INCLUDE_FILE"
        echo "dsn_added=$M_DSN_ADDED"
        echo "sqlite_db=$M_SQLITE_DB"
        echo "config_sha256=$M_CONFIG_SHA"
        echo "backend=$BACKEND"
        echo "ami_file=${M_AMI_FILE:-}"
        echo "sweep=${M_SWEEP:-}"
    } >"$new"
    if [ ! -f "$MANIFEST" ] || ! cmp -s "$new" "$MANIFEST"; then
        safe_file write "$MANIFEST" 644 root root <"$new"
    fi
}

# When Asterisk runs: reload the dialplan if it changed or our context is not loaded.
reload_dialplan() {
    if ! asterisk_running; then
        note "asterisk: not running; the dialplan loads when it starts"
        return
    fi
    if [ "$DIALPLAN_CHANGED" = 1 ] || ! context_loaded; then
        ast_cli 'dialplan reload' >/dev/null
        context_loaded ||
            die "asterisk: dialplan reloaded but context $CONTEXT is not loaded (check the Asterisk log)"
        changed "asterisk: dialplan reloaded, context $CONTEXT loaded"
    else
        ok "asterisk: context $CONTEXT loaded"
    fi
    local running_dir
    running_dir=$(running_agi_dir)
    if [ -n "$running_dir" ] && [ "$running_dir" != "$AGI_DIR" ]; then
        note "asterisk: it looks for AGI scripts in $running_dir, not $AGI_DIR"
    fi
}

report_install() {
    if [ "$CHANGES" = 0 ]; then
        echo "queue-mobile-toggle: already installed, nothing changed."
    else
        echo "queue-mobile-toggle: installed ($CHANGES changes). Add numbers to $TABLE; check with: ./$PROG --check"
    fi
}

# -------------------------------------------------------------------- check
do_check() {
    id "$AST_USER" >/dev/null 2>&1 || { fail "user: no '$AST_USER' user"; report_check; }
    installed_agi_dir
    refuse_unsafe_check_targets
    check_agi_script
    check_venv
    if check_config; then
        check_dsn
        check_with_doctor
    fi
    check_psqlodbc_commlog
    check_dialplan
    check_asterisk
    report_check
}

# Before anything is checked: the files --check reads, and those qmt doctor
# reads as the asterisk user (a FIFO would stall it), refused as by an
# install, so that --check never blocks.
refuse_unsafe_check_targets() {
    refuse_unsafe "${READ_FILES[@]}"
    refuse_unsafe "$AGI_DIR/$SCRIPT" "$ASTETC/$DIALPLAN" "$(manifest_get sqlite_db)"
}

# The script and its virtual environment, as the asterisk user sees them.
check_agi_script() {
    local script=$AGI_DIR/$SCRIPT shebang
    if [ ! -f "$script" ]; then
        fail "script: $script is missing"
        return
    fi
    shebang=$(safe_file read "$script")
    shebang=${shebang%%$'\n'*}
    if [ "$shebang" != "$SHEBANG" ]; then
        fail "script: $script starts with '$shebang', not $SHEBANG"
    elif ! as_asterisk test -x "$script"; then
        fail "script: $AST_USER cannot run $script ($(mode_of "$script"))"
    elif as_asterisk test -w "$script"; then
        fail "script: $AST_USER can change $script ($(mode_of "$script")); want 750 root:$AST_USER"
    elif ! as_asterisk timeout 30 "$VENV/bin/python3" -I -c 'import sys; compile(open(sys.argv[1], encoding="utf-8").read(), sys.argv[1], "exec"); import asterisk.agi, pyodbc, qmt.toggle' "$script" 2>/dev/null; then
        fail "script: $VENV/bin/python3 cannot compile it or import asterisk.agi/pyodbc/qmt as $AST_USER"
    else
        pass "script: $script runs under $VENV/bin/python3 ($(mode_of "$script"))"
    fi
}

check_venv() {
    if venv_ok; then pass "venv: ${PINS[*]}"; else fail "venv: $VENV lacks ${PINS[*]} (run $PROG again)"; fi
}

# The config, readable by asterisk and nobody else; sets CONN, fails (1) if unusable.
check_config() {
    if [ ! -f "$CONFIG" ]; then
        fail "config: $CONFIG is missing"
    elif ! as_asterisk test -r "$CONFIG"; then
        fail "config: $AST_USER cannot read $CONFIG ($(mode_of "$CONFIG"))"
    elif ! CONN=$(config_connection "$CONFIG"); then
        fail "config: $CONFIG does not parse"
    else
        if readable_by_others "$CONFIG"; then
            fail "config: $CONFIG is readable by others ($(stat -c %a "$CONFIG")); chmod o-rwx it"
        else
            pass "config: $CONFIG ($(mode_of "$CONFIG"))"
        fi
        return 0
    fi
    return 1
}

# The DSN the config names, if it names one, in /etc/odbc.ini.
check_dsn() {
    local dsn db
    dsn=$(any_dsn "$CONN")
    [ -n "$dsn" ] || return 0
    if dsn_defined "$dsn"; then
        db=$(dsn_value "$dsn" Database)
        pass "dsn: $dsn in $ODBC_INI, driver $(dsn_value "$dsn" Driver)${db:+, database $db}"
    else
        fail "dsn: $dsn is not defined in $ODBC_INI"
    fi
}

# qmt doctor, as the asterisk user: the config, the allowlist table read with
# the script's own code, the manager account, the ring path in the dialplan,
# the queues' ring timeouts, the sweep timer. Its lines are ours
# ([PASS]/[WARN]/[FAIL]); a failure to run it at all is one more.
check_with_doctor() {
    local out line
    out=$(QMT_CONFIG=$CONFIG as_asterisk timeout 30 "$VENV/bin/qmt" doctor 2>&1) || true   # its FAIL lines say why
    while IFS= read -r line; do
        case $line in
            "[PASS]"* | "[WARN]"*) echo "$line" ;;
            "[FAIL]"*) echo "$line"; FAILS=$((FAILS + 1)) ;;
            ?*) fail "doctor: $line" ;;
        esac
    done <<<"$out"
}

# PostgreSQL backend only: the driver must not log every call to /tmp.
check_psqlodbc_commlog() {
    find_backend
    if [ "$BACKEND" != postgresql ] || ! ini_has "$ODBCINST_INI" "$PG_DRIVER"; then return 0; fi
    if psqlodbc_commlog_on; then
        fail "odbcinst: CommLog=$(psqlodbc_commlog) in [$PG_DRIVER] of $ODBCINST_INI: a /tmp/psqlodbc_*.log file for every call (run $PROG again)"
    else
        pass "odbcinst: CommLog is off in [$PG_DRIVER] of $ODBCINST_INI"
    fi
}

check_dialplan() {
    local inc
    if [ -f "$ASTETC/$DIALPLAN" ]; then pass "dialplan: $ASTETC/$DIALPLAN"; else fail "dialplan: $ASTETC/$DIALPLAN is missing"; fi
    inc=$(files_with_include | tr '\n' ' ')
    if [ -n "$inc" ]; then pass "include: '$INCLUDE_LINE' in ${inc% }"; else fail "include: '$INCLUDE_LINE' is in neither extensions.conf nor extensions_custom.conf"; fi
}

check_asterisk() {
    if ! asterisk_running; then
        fail "asterisk: not running (or its control socket is not reachable); dialplan not checked"
        return
    fi
    if context_loaded; then pass "asterisk: context $CONTEXT loaded"; else fail "asterisk: context $CONTEXT is not loaded (dialplan reload?)"; fi
    if ast_has 'module show like res_agi.so' 'res_agi.so'; then pass "asterisk: res_agi loaded"; else fail "asterisk: res_agi is not loaded"; fi
    local running_dir
    running_dir=$(running_agi_dir)
    if [ "$running_dir" = "$AGI_DIR" ]; then pass "asterisk: looks for AGI scripts in $AGI_DIR"
    else fail "asterisk: looks for AGI scripts in ${running_dir:-?}, the script is in $AGI_DIR"; fi
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
    installed_agi_dir
    local dsn db sha dirs dir
    mapfile -t dirs < <(agi_dirs_used)
    dsn=$(manifest_get dsn_added) db=$(manifest_get sqlite_db) sha=$(manifest_get config_sha256)
    refuse_unsafe_uninstall_targets "${db:-$SQLITE_DB}" "${dirs[@]}"
    [ -f "$MANIFEST" ] || note "no $MANIFEST: removing what is found in the usual places"
    for dir in "${dirs[@]}"; do remove_agi_script "$dir"; done
    remove_sweep_timer
    remove_ami_account "$(manifest_get ami_file)"
    remove_qmt_command
    remove_include_lines
    remove_dialplan_file
    remove_sqlite_dsn "$dsn"
    remove_config "$sha"
    remove_sqlite_allowlist "${db:-$SQLITE_DB}"
    remove_venv              # and the manifest with it
    unload_dialplan
    remove_ring_leftovers
    report_uninstall
}

# Before any change: the files --uninstall may read, rewrite or remove (see
# refuse_unsafe_install_targets). refuse_unsafe_uninstall_targets DB AGI_DIR...
refuse_unsafe_uninstall_targets() {
    local db=$1 dir
    shift
    refuse_unsafe "${READ_FILES[@]}"
    refuse_unsafe "$ASTETC/$DIALPLAN" "$(manifest_get ami_file)" "$db" "$db-journal" "$db-wal" "$db-shm"
    for dir in "$@"; do refuse_unsafe "$dir/$SCRIPT"; done
}

remove_sweep_timer() {
    if [ -f "$SWEEP_UNITS.timer" ]; then
        systemctl disable --now qmt-sweep.timer >/dev/null 2>&1 || true
        rm -f "$SWEEP_UNITS.timer" "$SWEEP_UNITS.service"
        systemctl daemon-reload >/dev/null 2>&1 || true
        changed "sweep: removed qmt-sweep.timer"
    fi
    if [ -f "$SWEEP_CRON" ]; then rm -f "$SWEEP_CRON"; changed "sweep: removed $SWEEP_CRON"; fi
}

# remove_ami_account FILE: our section (FreePBX's shared file) or our file,
# and the #include line install.sh added for it.
remove_ami_account() {
    local file=$1
    if [ -n "$file" ] && [ -f "$file" ]; then
        if [ "$file" = "$ASTETC/manager_custom.conf" ]; then
            rewrite_file "$file" ini_without_section "$AMI_USER"
        else
            safe_file remove "$file"
        fi
        changed "ami: removed the account $AMI_USER ($file)"
        AMI_CHANGED=1
    fi
    if has_line "$MANAGER_CONF" "$AMI_INCLUDE_LINE"; then
        rewrite_file "$MANAGER_CONF" grep -vxF "$AMI_INCLUDE_LINE"
        changed "ami: removed '$AMI_INCLUDE_LINE' from $MANAGER_CONF"
    fi
    reload_manager
}

remove_qmt_command() {
    if [ "$(readlink "$QMT_LINK" 2>/dev/null)" = "$VENV/bin/qmt" ]; then
        rm -f "$QMT_LINK"; changed "command: removed $QMT_LINK"
    fi
}

remove_agi_script() {   # remove_agi_script DIR
    local script=$1/$SCRIPT first=""
    if [ -f "$script" ]; then first=$(safe_file read "$script"); first=${first%%$'\n'*}; fi
    # ours: this version's shebang, or an older one's without -I
    if [ -f "$script" ] && [[ $first == "#!$VENV/bin/python3"?(" -I") ]]; then
        safe_file remove "$script"; changed "script: removed $script"
    elif [ -f "$script" ]; then
        note "script: $script was not installed by $PROG (other shebang): left"
    else
        ok "script: none in $1"
    fi
}

remove_include_lines() {
    local incs inc
    mapfile -t incs < <(files_with_include)
    for inc in "${incs[@]}"; do
        rewrite_file "$inc" without_include_line
        changed "include: removed '$INCLUDE_LINE' from $inc"
    done
}

remove_dialplan_file() {
    if [ -f "$ASTETC/$DIALPLAN" ]; then safe_file remove "$ASTETC/$DIALPLAN"; changed "dialplan: removed $ASTETC/$DIALPLAN"
    else ok "dialplan: no $ASTETC/$DIALPLAN"; fi
}

# remove_sqlite_dsn NAME: the DSN install.sh added (NAME from the manifest;
# without one, the default DSN if its description says we added it).
remove_sqlite_dsn() {
    local dsn=$1
    if [ -z "$dsn" ] && dsn_defined "$DEFAULT_DSN" &&
        [ "$(dsn_value "$DEFAULT_DSN" Description)" = "$DSN_DESCRIPTION" ]; then
        dsn=$DEFAULT_DSN
    fi
    if [ -n "$dsn" ] && dsn_defined "$dsn"; then
        rewrite_file "$ODBC_INI" ini_without_section "$dsn"
        changed "dsn: removed $dsn from $ODBC_INI"
    else
        ok "dsn: nothing of ours in $ODBC_INI"
    fi
}

# remove_config SHA256: the config if --purge, or if it is as installed.
remove_config() {
    local sha=$1
    if [ ! -f "$CONFIG" ]; then
        ok "config: none"
    elif [ "$PURGE" = 1 ]; then
        safe_file remove "$CONFIG"; changed "config: removed $CONFIG (--purge)"
    elif [ -n "$sha" ] && [ "$(installed_sha "$CONFIG")" = "$sha" ]; then
        safe_file remove "$CONFIG"; changed "config: removed $CONFIG (as installed, never edited)"
    else
        note "config: $CONFIG kept (edited by you or not ours); --purge removes it"
    fi
}

# remove_sqlite_allowlist DB: only with --purge (it holds the admin's numbers).
remove_sqlite_allowlist() {
    local db=$1
    [ -f "$db" ] || return 0
    if [ "$PURGE" = 1 ]; then
        local f
        for f in "$db" "$db-journal" "$db-wal" "$db-shm"; do safe_file remove "$f"; done
        changed "allowlist: deleted $db (--purge)"
    else
        note "allowlist: $db kept with its numbers; --purge deletes it"
    fi
}

remove_venv() {
    if [ -d "$PREFIX" ]; then rm -rf "$PREFIX"; changed "venv: removed $PREFIX"
    else ok "venv: no $PREFIX"; fi
}

# When Asterisk runs and still has our context: reload the dialplan without it.
unload_dialplan() {
    asterisk_running || return 0
    if context_loaded; then
        ast_cli 'dialplan reload' >/dev/null
        changed "asterisk: dialplan reloaded"
    fi
    if context_loaded; then note "asterisk: context $CONTEXT is still loaded: it is defined elsewhere too"; fi
}

# ------------------------------------------- the ring path's leftovers
# A login adds the queue member Local/<number>@qmt-ring/n, in any queue; the
# ring path keeps its settings and missed calls in astdb family qmt-ring,
# the PIN lockouts in qmt-pin. They go when Asterisk runs; else a note.
remove_ring_leftovers() {
    if ! asterisk_running; then
        note "asterisk: not running, so its queues may still have ring path members (Local/<number>@qmt-ring/n) and its astdb the families qmt-ring and qmt-pin; once it runs, run $PROG --uninstall again, or: asterisk -rx 'queue show' to find them, asterisk -rx 'queue remove member Local/<number>@qmt-ring/n from <queue>' for each, asterisk -rx 'database deltree qmt-ring', asterisk -rx 'database deltree qmt-pin'"
        return
    fi
    local before=$CHANGES
    remove_ring_members
    remove_astdb_family qmt-ring
    remove_astdb_family qmt-pin
    [ "$CHANGES" != "$before" ] || ok "asterisk: no ring path member and no astdb family qmt-ring or qmt-pin"
}

# "QUEUE INTERFACE" of every ring path member, from `queue show` (each queue's
# first line: "<queue> has N calls ..."; its members indented below). Any
# other line, such as a warning before the answer, names no queue.
ring_members() {
    local o
    o=$(ast_cli 'queue show')
    awk '
        /^[^[:space:]]+ has [0-9]+ calls? / { queue = $1; next }
        queue != "" {
            s = $0
            while (match(tolower(s), /local\/[0-9]+@qmt-ring\/n/)) {
                print queue, substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
            }
        }' <<<"$o" | sort -u
}

remove_ring_members() {
    local members m out
    mapfile -t members < <(ring_members)
    for m in "${members[@]}"; do
        out=$(ast_cli "queue remove member ${m#* } from ${m%% *}")
        if [[ $out == *"Removed interface"* ]]; then
            changed "asterisk: removed the ring path's member ${m#* } from queue ${m%% *}"
        else
            note "asterisk: could not remove ${m#* } from queue ${m%% *}: ${out##*$'\n'}"
        fi
    done
}

remove_astdb_family() {   # remove_astdb_family FAMILY
    local out
    out=$(ast_cli "database deltree $1")
    if [[ $out =~ ([0-9]+)\ database\ entr ]] && [ "${BASH_REMATCH[1]}" != 0 ]; then
        changed "asterisk: removed astdb family $1 (${BASH_REMATCH[1]} keys)"
    fi
}

report_uninstall() {
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
