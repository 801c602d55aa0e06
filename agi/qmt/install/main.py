"""The command line install.sh calls: one mode, the options it checked.

    backend    print the allowlist backend (for the OS packages)
    preflight  before the venv: refuse unsafe files, psqlODBC's CommLog
    install    after the venv: every other file step, the final line
    check      --check
    uninstall  --uninstall

Exit status: 0, or 1 with one `[ERROR]` line on stderr when the run must stop
(--check: 1 when a check failed).
"""

from __future__ import annotations

import argparse
import sys

from .check import Check
from .install import Install
from .report import InstallError
from .steps import Options, Run
from .uninstall import Uninstall


def parse(argv: list[str]) -> tuple[str, Options]:
    parser = argparse.ArgumentParser(prog="qmt.install")
    parser.add_argument("mode", choices=("backend", "preflight", "install", "check", "uninstall"))
    parser.add_argument("--src", default=".")
    parser.add_argument("--prog", default="install.sh")
    parser.add_argument("--db", default="")
    parser.add_argument("--dsn", default="")
    parser.add_argument("--agi-dir", default="")
    parser.add_argument("--enable-ami", action="store_true")
    parser.add_argument("--purge", action="store_true")
    parser.add_argument("--changes", type=int, default=0)
    parser.add_argument("--venv-ok", action="store_true")
    parser.add_argument("--pins", default="")
    parser.add_argument("--fastagi", choices=("on", "off", ""), default="")
    parser.add_argument("--package-changed", action="store_true")
    args = parser.parse_args(argv)
    mode = args.mode
    del args.mode
    return mode, Options(**vars(args))


def run(mode: str, options: Options) -> int:
    if mode == "backend":
        print(Run(options).backend())
    elif mode == "preflight":
        Install(options).preflight()
    elif mode == "install":
        Install(options).install()
    elif mode == "check":
        return Check(options).check()
    elif mode == "uninstall":
        return Uninstall(options).uninstall()
    return 0


def main(argv: list[str]) -> int:
    mode, options = parse(argv)
    try:
        return run(mode, options)
    except InstallError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"[ERROR]   {exc}\n")
        return 1
