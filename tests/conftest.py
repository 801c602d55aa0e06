"""Shared fixtures: a real SQLite3 ODBC allowlist built from sql/, a config
file for the script, and the fake Asterisk that runs it over pipes. The
helpers behind them are in support.py, which the tests import."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agi"))
sys.path.insert(0, HERE)

import support  # noqa: E402
from fake_ami import FakeAmi  # noqa: E402
from fake_asterisk import FastAgiServers  # noqa: E402
from support import OdbcHome, Toggle, make_sqlite_allowlist  # noqa: E402

PIPE, FASTAGI = "pipe", "fastagi"
# The AGI-level tests, run twice: the classic script over pipes, and the
# same calls to `qmt serve` over FastAGI (issue 17: same decisions both ways).
BOTH_MODES = ("test_agi.py", "test_agi_start_block.py", "test_pin.py", "test_route.py", "test_db_faults.py")


def pytest_generate_tests(metafunc):
    if os.path.basename(str(metafunc.definition.fspath)) in BOTH_MODES and "agi_mode" in metafunc.fixturenames:
        metafunc.parametrize("agi_mode", [PIPE, FASTAGI], indirect=True)


@pytest.fixture(autouse=True)
def agi_mode(request):
    """How the Toggles of this test run the toggle (support.FASTAGI); in
    FastAGI mode every server started must stop with exit 0 on SIGTERM."""
    mode = getattr(request, "param", PIPE)
    servers = FastAgiServers() if mode == FASTAGI else None
    support.FASTAGI[0] = servers
    yield mode
    support.FASTAGI[0] = None
    if servers is not None:
        assert set(servers.stop_all()) <= {0}, "a qmt serve did not stop cleanly on SIGTERM"


@pytest.fixture
def odbc(tmp_path):
    return OdbcHome(tmp_path / "odbc")


@pytest.fixture
def fake_ami():
    ami = FakeAmi()
    yield ami
    ami.close()


@pytest.fixture
def toggle(tmp_path, odbc, fake_ami):
    """The script against a real SQLite3 ODBC allowlist (DSN qmt_test) and
    a fake manager interface that tells pause reasons."""
    allowlist = make_sqlite_allowlist(odbc, tmp_path / "allowlist.sqlite")
    return Toggle(tmp_path, odbc, allowlist, "DSN=qmt_test", fake_ami)
