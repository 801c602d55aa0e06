#!/usr/bin/env bash
# The test command: sets up everything the tests need on a fresh Debian 12
# machine, then runs the whole suite (unit, AGI-level, three database
# backends, end-to-end on a real Asterisk 22 in a Debian sid chroot).
#
#   tests/run.sh [pytest arguments]      (as root; a non-root admin: sudo tests/run.sh)
#
# Steps: Debian packages (unixODBC and its three drivers, debootstrap, GNU
# time, python3-venv; MariaDB and PostgreSQL servers when none runs), the
# database servers started, a virtual environment in .venv with the pinned
# Python packages, then pytest. Exit status is pytest's; "no tests ran" fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
say() { echo "tests/run.sh: $*"; }

PACKAGES=(unixodbc libsqliteodbc odbc-mariadb odbc-postgresql debootstrap time
          python3-venv sqlite3 ca-certificates shellcheck chromium)

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

install_packages() {
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    if [ -z "${missing// }" ]; then
        say "debian packages: all present"
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        say "missing Debian packages: $missing -- run as root (sudo tests/run.sh) to install them" >&2
        exit 1
    fi
    say "installing Debian packages: $missing"
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
}

make_venv() {
    local python=${QMT_TEST_PYTHON:-python3}
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
        say "creating .venv with $($python --version 2>&1)"
        rm -rf .venv
        "$python" -m venv .venv
    fi
    say "installing Python packages into .venv (tests/requirements.txt)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
}

install_packages
if [ "$(id -u)" = 0 ]; then
    say "database servers"
    bash .ci/db-servers.sh
else
    say "not root: database servers are used only if already running; end-to-end tests will skip" >&2
fi
make_venv

say "running pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    say "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
