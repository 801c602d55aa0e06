"""Shared fixtures: a real SQLite3 ODBC allowlist built from sql/, a config
file for the script, and the fake Asterisk that runs it over pipes. The
helpers behind them are in support.py, which the tests import."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agi"))
sys.path.insert(0, HERE)

from fake_ami import FakeAmi  # noqa: E402
from support import OdbcHome, Toggle, make_sqlite_allowlist  # noqa: E402


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
