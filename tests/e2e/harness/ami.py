"""The harness's manager connection: the package's own AMI client
(qmt.ami.Ami), with the one thing only the tests need added.

Ami sends one action and waits for its answer. The tests that race calls
against each other must start several calls at the same instant: send_batch
writes several actions in one write and responses() collects their answers.
They use Ami's framing (its sequence, socket and message reader), so they
stay as small as possible and live here, not in the package, which never
needs them.
"""

import sys

from harness.chroot import REPO

if str(REPO / "agi") not in sys.path:      # the bench scripts run without the tests' conftest
    sys.path.insert(0, str(REPO / "agi"))

from qmt.ami import Ami, AmiError  # noqa: E402, F401  (AmiError: for the harness's callers)

USER = "qmt-e2e"            # the account of tests/e2e/pbx/manager.conf


class HarnessAmi(Ami):
    """qmt.ami.Ami logged in to the test PBX with the harness's account,
    plus send_batch and responses for actions that must leave together."""

    def __init__(self, port, secret, timeout=30):
        super().__init__("127.0.0.1", port, USER, secret, timeout=timeout)

    def _frame(self, name, fields):
        self._sequence += 1
        action_id = f"qmt-{self._sequence}"
        lines = ["Action: " + name, "ActionID: " + action_id]
        lines += [f"{key}: {value}" for key, value in fields.items()]
        return action_id, ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def send_batch(self, actions):
        """Several (name, fields) actions in one write; returns their ActionIDs."""
        framed = [self._frame(name, fields) for name, fields in actions]
        self._socket.sendall(b"".join(data for _id, data in framed))
        return [action_id for action_id, _data in framed]

    def responses(self, ids):
        """The single-message responses of these ActionIDs, in their order."""
        want, got = set(ids), {}
        while want:
            message = self._read_message()
            if message.get("ActionID") in want:
                got[message["ActionID"]] = message
                want.discard(message["ActionID"])
        return [got[i] for i in ids]
