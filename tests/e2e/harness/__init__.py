"""The end-to-end tests' harness: a real Asterisk 22 in a Debian sid chroot.

One concern per module:

  host        the host's side: may the tests run here, set-up steps that fail by name
  chroot      the cached Debian sid chroot (debootstrap) and the wheels for its Python
  root        a run's throw-away overlay of that chroot, and the project copied into it
  pbx_config  Asterisk's test configuration: the .conf files in tests/e2e/pbx/, their
              run-time values filled in
  ami         the package's AMI client (qmt.ami.Ami), plus what only the tests need
  asterisk    the Asterisk driver: start, stop, state, test calls, its logs
  sip         a SIP call over UDP, as a carrier places it
  bench       an installed PBX for the benchmark scripts (bench_*.py), what they share
  rss         the peak memory of our processes in a root, sampled from /proc

The tests import from these modules directly (tests/e2e is on sys.path).
"""

# The install tests (test_e2e_install*.py) still say L.NAME, as they did
# with the old single-module harness: these are the names they use.
from harness.asterisk import Asterisk  # noqa: E402
from harness.chroot import REPO  # noqa: E402
from harness.pbx_config import AGI_DIR  # noqa: E402
from harness.root import SQLITE_DB, SRC_IN_ROOT, WHEELS_IN_ROOT  # noqa: E402

__all__ = ["AGI_DIR", "REPO", "SQLITE_DB", "SRC_IN_ROOT", "WHEELS_IN_ROOT", "Asterisk"]
