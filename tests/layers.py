"""The test layers, as pytest markers, so that one layer runs alone
(Makefile: `make rules`, `make agi`, ...). Each test file belongs to
exactly one layer; a new file that is in none fails the collection, so the
table cannot fall behind.

    rules    pure rules and the files of the installation: no Asterisk, no
             database, no process of ours; seconds
    agi      the AGI script over a fake Asterisk that speaks res_agi's
             protocol, and the `qmt` command, on the real SQLite3 ODBC driver
    servers  the same against real MariaDB and PostgreSQL servers: a file of
             its own, and the `servers` cases of files parametrised by backend
             (`make agi` leaves those out)
    lint     ruff, mypy and shellcheck
    e2e      a real Asterisk in a Debian sid chroot (tests/e2e/, its conftest)
"""

import fnmatch
import os

import pytest

LAYERS = {
    "rules": ("test_normalise.py", "test_decision.py", "test_dialplan.py", "test_dialplan_contract.py",
              "test_queues_conf.py", "test_pin.py", "test_asterisk_cli.py", "test_install_*.py",
              "test_report.py", "test_shifts.py", "test_break.py"),
    "agi": ("test_agi.py", "test_agi_start_block.py", "test_properties.py", "test_route.py", "test_cli.py",
            "test_big_queues.py", "test_db_faults.py", "test_privileges.py", "test_backends.py",
            "test_table_upgrade.py", "test_report_cli.py", "test_agi_shifts.py", "test_fastagi.py",
            "test_shared_ami.py"),
    "servers": ("test_grants.py",),
    "lint": ("test_lint.py",),
}
HERE = os.path.dirname(os.path.abspath(__file__))


def layer_of(path):
    """The layer of a test file directly under tests/, or None."""
    name = os.path.basename(path)
    found = [layer for layer, patterns in LAYERS.items() if any(fnmatch.fnmatch(name, p) for p in patterns)]
    if len(found) > 1:
        raise pytest.UsageError("%s is in two layers (tests/layers.py): %s" % (name, ", ".join(found)))
    return found[0] if found else None


def pytest_collection_modifyitems(items):
    for item in items:
        path = str(item.fspath)
        if os.path.dirname(path) != HERE:
            continue                                 # tests/e2e marks its own
        layer = layer_of(path)
        if layer is None:
            raise pytest.UsageError("%s is in no test layer: add it to LAYERS in tests/layers.py"
                                    % os.path.basename(path))
        item.add_marker(getattr(pytest.mark, layer))
