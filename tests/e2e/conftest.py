"""Fixtures of the end-to-end tests: one real Asterisk 22 in a Debian sid
chroot per session, set up by the project's own install.sh.

In CI (CI=true) these tests never skip: a set-up step that fails (the
chroot cannot be built, the package index cannot be reached...) fails them,
naming the step. Elsewhere they skip, saying why, only when not run as root
or when QMT_E2E_SKIP=1 is set.
"""

import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.asterisk import Asterisk  # noqa: E402
from harness.chroot import chroot_python_version, ensure_chroot, fill_wheelhouse  # noqa: E402
from harness.host import SetupError, say, why_unavailable  # noqa: E402
from harness.logs import copy_logs  # noqa: E402
from harness.pbx_config import ALL_QUEUES  # noqa: E402
from harness.root import SQLITE_DB, WHEELS_IN_ROOT, Root  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOG_COPY = os.environ.get("QMT_E2E_LOGS", "/tmp/qmt-e2e-logs")
QMT_LOG = "/var/log/asterisk/queue_mobile_toggle.log"


def pytest_collection_modifyitems(items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.e2e)


def unavailable(reason):
    """Fail in CI, skip loudly elsewhere."""
    if IN_CI:
        pytest.fail("END-TO-END TESTS CANNOT RUN IN CI: " + reason, pytrace=False)
    say("SKIPPING the end-to-end tests: " + reason)
    pytest.skip("END-TO-END TESTS SKIPPED: " + reason)


def setup_or_fail(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except SetupError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def base_chroot():
    if os.environ.get("QMT_E2E_SKIP") == "1":
        unavailable("QMT_E2E_SKIP=1 is set")
    reason = why_unavailable()
    if reason:
        unavailable(reason)
    return setup_or_fail(ensure_chroot)


@pytest.fixture(scope="session")
def wheelhouse(base_chroot, tmp_path_factory):
    """Wheels for the chroot's Python, downloaded on the host (pip inside
    the chroot cannot reach the index), as docs/install.md tells an admin."""
    dest = tmp_path_factory.mktemp("wheelhouse")
    pyver = setup_or_fail(chroot_python_version, base_chroot)
    setup_or_fail(fill_wheelhouse, dest, pyver)
    return dest


class PBX:
    """The session's Asterisk with queue-mobile-toggle installed."""

    def __init__(self, root, ast, wheels):
        self.root, self.ast, self.wheels = root, ast, wheels
        self.first_install = None
        self.db = root.p(SQLITE_DB)

    # the allowlist, written the way an admin would (sqlite3 on the file)
    def sql(self, statement, params=()):
        with sqlite3.connect(self.db) as c:
            return c.execute(statement, params).fetchall()

    def allow(self, number, queue, penalty=0, name=None, enabled=1, valid_from=None, valid_until=None):
        self.sql("INSERT INTO queue_mobile_agents (number, queue, penalty, member_name, enabled, "
                 "valid_from, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (number, queue, penalty, name, enabled, valid_from, valid_until))

    def qmt_log(self):
        try:
            return self.root.p(QMT_LOG).read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []


@pytest.fixture(scope="session")
def pbx(base_chroot, wheelhouse):
    root = Root(base_chroot, tag="session")
    setup_or_fail(root.__enter__)
    ast = None
    try:
        ast = Asterisk(root)
        setup_or_fail(ast.start)
        root.copy_repo()
        root.put_wheels(wheelhouse)
        p = PBX(root, ast, wheelhouse)
        # The admin's step: sudo ./install.sh, Asterisk running.
        p.first_install = root.install("--wheelhouse", WHEELS_IN_ROOT)
        if p.first_install.returncode != 0:
            pytest.fail("install.sh failed inside the chroot:\n" + p.first_install.stdout
                        + p.first_install.stderr, pytrace=False)
        # An admin's edit of the config (must survive later runs of install.sh):
        # log the decisions to a file the tests read.
        conf = root.p("/etc/asterisk/queue_mobile_toggle.conf")
        text = conf.read_text()
        assert "\ntarget = syslog\n" in text
        conf.write_text(text.replace("\ntarget = syslog\n", f"\ntarget = {QMT_LOG}\n"))
        yield p
    finally:
        try:
            if ast:
                ast.stop()
            _keep_logs(root)
        finally:
            root.close()


def _keep_logs(root):
    """Copy the Asterisk logs out of the chroot before it goes."""
    try:
        copy_logs(root, LOG_COPY)
        say(f"Asterisk logs of this run copied to {LOG_COPY}")
    except OSError as e:
        say(f"could not copy the logs: {e}")


@pytest.fixture
def clean(pbx):
    """A known state before each call test: no call up, no member, empty
    allowlist, the DB in place, Asterisk running."""
    ast = pbx.ast
    if not ast.running():
        setup_or_fail(ast.start)
    moved = pbx.root.p(SQLITE_DB + ".moved")
    if moved.exists():
        moved.rename(pbx.db)
    assert ast.wait_idle(60), "a call from an earlier test is still up"
    ast.reset_members()
    pbx.sql("DELETE FROM queue_mobile_agents")
    for q in ALL_QUEUES:
        assert ast.member_list(q) == [], f"queue {q} still has members after the reset"
    pbx.queue_log_mark = len(ast.queue_log_lines())
    pbx.log_mark = len(ast.log_text())
    return pbx


@pytest.fixture
def throwaway_root(base_chroot, wheelhouse):
    """A fresh overlay of the cached chroot (no Asterisk, nothing installed)."""
    with Root(base_chroot, tag="throwaway") as root:
        root.copy_repo()
        root.put_wheels(wheelhouse)
        yield root
