#!/usr/bin/env bash
# queue-mobile-toggle installer for Asterisk / FreePBX on Debian.
# Run `./install.sh --help` as root; docs/install.md has the details.
set -euo pipefail
umask 022

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Bash bootstraps, Python configures: this script keeps only what must run
# before the venv exists (the options, apt, the venv, the package, the qmt
# link); every step that reads or edits a file of Asterisk, ODBC or the
# allowlist, and --check and --uninstall, are agi/qmt/install (run_steps).
# These paths are said again in agi/qmt/install/facts.py, which owns the rest.
PREFIX=/opt/queue-mobile-toggle
VENV=$PREFIX/venv
QMT_LINK=/usr/local/sbin/qmt                   # the admin command, on root's PATH
AST_USER=asterisk
REQUIREMENTS=$SRC/agi/requirements.txt     # the pinned run-time packages
DEFAULT_DSN=queue_mobile_toggle                # for --help
ODBC_INI=/etc/odbc.ini
FASTAGI_UNIT=qmt-fastagi.service   # for --help

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
  --fastagi         decide calls in one server process too (qmt serve, systemd
                    unit $FASTAGI_UNIT); the dialplan uses it once it
                    answers, the classic script stays the fallback. A later
                    run without this option keeps the mode as it is
  --no-fastagi      stop and remove that server: the classic script decides
  --purge           with --uninstall: also delete the allowlist database and the config
  -h, --help        this text
EOF
}

die_usage() { echo "$PROG: $*" >&2; echo "Try '$PROG --help'." >&2; exit 2; }

MODE=install DB="" DSN="" AGI_DIR_OPT="" WHEELHOUSE="" NO_APT=0 PURGE=0 ENABLE_AMI=0 FASTAGI=""
while [ $# -gt 0 ]; do
    case $1 in
        --check) MODE=check ;;
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        --no-apt) NO_APT=1 ;;
        --enable-ami) ENABLE_AMI=1 ;;
        --fastagi|--no-fastagi)
            want=on
            if [ "$1" = --no-fastagi ]; then want=off; fi
            if [ -n "$FASTAGI" ] && [ "$FASTAGI" != "$want" ]; then die_usage "--fastagi and --no-fastagi exclude each other"; fi
            FASTAGI=$want ;;
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
if [ "$MODE" != install ] && { [ -n "$DB$DSN$WHEELHOUSE$FASTAGI" ] || [ "$NO_APT$ENABLE_AMI" != 00 ]; }; then
    die_usage "--db, --dsn, --wheelhouse, --no-apt, --enable-ami and --(no-)fastagi go with an install, not --$MODE"
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
# The same one-line steps as agi/qmt/install/report.py prints.
CHANGES=0
PACKAGE_CHANGED=0
ok()      { printf '[ok]      %s\n' "$*"; }
changed() { printf '[changed] %s\n' "$*"; CHANGES=$((CHANGES + 1)); }
note()    { printf '[note]    %s\n' "$*"; }
die() {   # also from inside $(...) or a pipeline: the whole run stops, exit 1
    printf '[ERROR]   %s\n' "$*" >&2
    if [ "$BASHPID" != "$$" ]; then kill -s TERM "$$"; fi
    exit 1
}

# --------------------------------------------------------- the file steps
# run_steps MODE [ARG...]: agi/qmt/install (stdlib only) in one process for
# every file step of MODE. It runs from this source tree under the system's
# python3, not from the venv: the venv does not exist yet before the first
# install's venv step, and may be broken or hold an older qmt on a half
# install (--check, --uninstall), while the steps must be this version's.
# -I: no current folder on sys.path, no PYTHON* variables, no user site;
# -B: no __pycache__ written into the source tree as root.
run_steps() {
    local mode=$1
    shift
    python3 -I -B -c 'import sys; sys.path.insert(0, sys.argv[1]); from qmt.install.main import main; sys.exit(main(sys.argv[2:]))' \
        "$SRC/agi" "$mode" --src "$SRC" --prog "$PROG" "$@"
}

# ------------------------------------------------------------------ install
do_install() {
    require_install_prerequisites
    local file_opts=(--db "$DB" --dsn "$DSN" --agi-dir "$AGI_DIR_OPT") found
    if [ "$ENABLE_AMI" = 1 ]; then file_opts+=(--enable-ami); fi
    BACKEND=${DB:-sqlite}           # without python3 yet, no earlier install to ask
    if command -v python3 >/dev/null 2>&1; then BACKEND=$(run_steps backend "${file_opts[@]}") || exit 1; fi
    install_os_packages
    # Before any change but the OS packages: every file the run will touch is
    # refused now if unsafe (and psqlODBC's CommLog quieted). Captured to count
    # its changes; an [ERROR] goes to stderr as it happens.
    found=$(run_steps preflight "${file_opts[@]}") || exit 1
    if [ -n "$found" ]; then
        printf '%s\n' "$found"
        CHANGES=$((CHANGES + $(grep -c '^\[changed\]' <<<"$found" || true)))
    fi
    install_venv
    install_package
    install_qmt_command
    local after_venv=(--changes "$CHANGES" --fastagi "$FASTAGI")
    if [ "$PACKAGE_CHANGED" = 1 ]; then after_venv+=(--package-changed); fi
    run_steps install "${file_opts[@]}" "${after_venv[@]}" || exit 1
}

require_install_prerequisites() {
    local f
    for f in agi/queue_mobile_toggle.py agi/extensions_queue_mobile_toggle.conf agi/queue_mobile_toggle.conf.example \
             sql/sqlite.sql agi/qmt/install/main.py; do
        [ -f "$SRC/$f" ] || die "source file missing: $SRC/$f (run $PROG from the unpacked project)"
    done
    id "$AST_USER" >/dev/null 2>&1 || die "no '$AST_USER' user: install Asterisk first"
    command -v python3 >/dev/null 2>&1 || [ "$NO_APT" = 0 ] || die "python3 is missing (and --no-apt was given)"
}

driver_package() {
    case $1 in
        sqlite) echo libsqliteodbc ;;
        mariadb) echo odbc-mariadb ;;
        postgresql) echo odbc-postgresql ;;
    esac
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

venv_ok() {
    [ -x "$VENV/bin/python3" ] || return 1
    "$VENV/bin/python3" -I -c 'import asterisk.agi, pyodbc' >/dev/null 2>&1 || return 1
    local frozen pin
    frozen=$("$VENV/bin/python3" -I -m pip freeze --disable-pip-version-check 2>/dev/null | tr '[:upper:]' '[:lower:]') || return 1
    for pin in "${PINS[@]}"; do
        grep -qx "$pin" <<<"$frozen" || return 1
    done
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

# The project's package (agi/qmt: the toggle, the `qmt` command and its server) in the
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
    PACKAGE_CHANGED=1           # a running FastAGI server is restarted onto it
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

# -------------------------------------------------------- check, uninstall
# The venv is judged here (its pins are this script's); the rest in Python.
do_check() {
    local venv=()
    if ! id "$AST_USER" >/dev/null 2>&1; then
        printf '[FAIL]    %s\n' "user: no '$AST_USER' user"
        echo "queue-mobile-toggle: check FAILED (1 problems)."
        exit 1
    fi
    if venv_ok; then venv=(--venv-ok); fi
    run_steps check "${venv[@]}" --pins "${PINS[*]}"
}

case $MODE in
    install) do_install ;;
    check) do_check ;;
    uninstall) if [ "$PURGE" = 1 ]; then run_steps uninstall --purge; else run_steps uninstall; fi ;;
esac
