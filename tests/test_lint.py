"""Lint is part of the test command: ruff on the Python code, mypy on the
package's type hints, shellcheck on the shell scripts. A finding fails the
run. Each tool's settings are in pyproject.toml, not in the arguments here."""

import os
import shutil
import subprocess
import sys

import pytest

from support import REPO

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# What ruff checks and how is in pyproject.toml ([tool.ruff]): only the paths here.
RUFF = ["check", "agi", "tests"]
SHELL_SCRIPTS = ["install.sh", "tests/run.sh", ".ci/run", ".ci/db-servers.sh"]


def tool(name, path):
    if path and os.path.exists(path):
        return path
    message = "%s is not installed (tests/run.sh installs it)" % name
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip("LINT SKIPPED: " + message)


def test_ruff_finds_nothing():
    ruff = tool("ruff", os.path.join(os.path.dirname(sys.executable), "ruff"))
    result = subprocess.run([ruff] + RUFF, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    """The package is fully hinted and checked ([tool.mypy]: its files and strictness)."""
    mypy = tool("mypy", os.path.join(os.path.dirname(sys.executable), "mypy"))
    result = subprocess.run([mypy], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_nothing():
    shellcheck = tool("shellcheck", shutil.which("shellcheck"))
    scripts = [path for path in SHELL_SCRIPTS if os.path.exists(os.path.join(REPO, path))]
    assert len(scripts) == len(SHELL_SCRIPTS), "a script moved: update SHELL_SCRIPTS"
    result = subprocess.run([shellcheck, "--severity=style"] + scripts, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linters_really_look(tmp_path):
    """A known finding in a copy must be reported, so a silent linter cannot pass."""
    ruff = tool("ruff", os.path.join(os.path.dirname(sys.executable), "ruff"))
    (tmp_path / "bad.py").write_text("import os\n")
    assert subprocess.run([ruff, "check", "--isolated", "--select", "F", "bad.py"], cwd=tmp_path,
                          capture_output=True).returncode == 1
    mypy = tool("mypy", os.path.join(os.path.dirname(sys.executable), "mypy"))
    (tmp_path / "bad_types.py").write_text("def half(number: int) -> int:\n    return number / 2\n")
    assert subprocess.run([mypy, "--no-incremental", "bad_types.py"], cwd=tmp_path,
                          capture_output=True).returncode == 1
    shellcheck = tool("shellcheck", shutil.which("shellcheck"))
    (tmp_path / "bad.sh").write_text("#!/bin/bash\necho $1\n")
    assert subprocess.run([shellcheck, "bad.sh"], cwd=tmp_path, capture_output=True).returncode == 1

