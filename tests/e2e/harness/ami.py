"""The harness's manager connection: the package's own AMI client
(qmt.ami.Ami), logged in with the test PBX's account. The tests that race
calls against each other start them with Ami.actions_at_once (one write).
"""

import sys

from harness.chroot import REPO

if str(REPO / "agi") not in sys.path:      # the bench scripts run without the tests' conftest
    sys.path.insert(0, str(REPO / "agi"))

from qmt.ami import Ami, AmiError  # noqa: E402, F401  (AmiError: for the harness's callers)

USER = "qmt-e2e"            # the account of tests/e2e/pbx/manager.conf


class HarnessAmi(Ami):
    """qmt.ami.Ami logged in to the test PBX with the harness's account."""

    def __init__(self, port, secret, timeout=30):
        super().__init__("127.0.0.1", port, USER, secret, timeout=timeout)
