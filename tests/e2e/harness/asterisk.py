"""The Asterisk driver: a real Asterisk inside a Root, running as the
asterisk user with the test configuration (pbx_config), driven through AMI
and its CLI.

Test calls are "call slots": a slot's caller ID, name, target and the rest
are files in CALLS_DIR that the test dialplan (tests/e2e/pbx/extensions.conf)
reads with FILE(), so hostile values reach the toggle byte for byte. A call
is originated as Local/<slot>@qmt-caller; its hangup handler logs one
QMT_DONE line that result() waits for.
"""

import re
import secrets
import socket
import subprocess
import time

from harness.ami import AmiError, HarnessAmi
from harness.host import SetupError
from harness.logs import FullLog, channel_lines
from harness.pbx_config import ALL_QUEUES, CALLS_DIR, write_test_config
from harness.root import shq

FIRST_SLOT = 100       # call slots count up from here (customers' tags too)
CUSTOMER_CID = "74951110000"


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Asterisk:
    """A real Asterisk inside a Root, running as the asterisk user."""

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.ami = None
        self.port = free_port()
        self.secret = secrets.token_hex(12)
        self.slot = FIRST_SLOT
        self.sip_port = free_port(socket.SOCK_DGRAM)
        write_test_config(root, self.port, self.secret, self.sip_port)
        self.full_log = root.p("/var/log/asterisk/full")
        self.queue_log = root.p("/var/log/asterisk/queue_log")
        self._full = FullLog(self.full_log)

    # --------------------------------------------------------- lifecycle
    def start(self, timeout=60):
        out = open(self.root.tmp / "asterisk.stdout", "ab")
        self.proc = subprocess.Popen(
            ["chroot", str(self.root.path), "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             "LANG=C.UTF-8", "asterisk", "-f", "-U", "asterisk", "-G", "asterisk"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self._wait_fully_booted(timeout)
        self.ami = self._connect_ami()
        return self

    def _wait_fully_booted(self, timeout):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SetupError("start Asterisk in the chroot",
                                 f"exited {self.proc.returncode}: "
                                 + (self.root.tmp / "asterisk.stdout").read_text(errors="replace")[-2000:])
            p = self.root.sh("asterisk -rx 'core waitfullybooted'", timeout=30)
            if p.returncode == 0 and "fully booted" in p.stdout:
                return
            time.sleep(0.3)
        raise SetupError("start Asterisk in the chroot", f"not fully booted after {timeout} s")

    def _connect_ami(self):
        """The harness's AMI login; the manager may listen a moment after the boot."""
        for _ in range(50):
            try:
                return HarnessAmi(self.port, self.secret)
            except AmiError as e:
                if "refused login" in str(e):
                    raise SetupError("AMI login", str(e)) from None
                time.sleep(0.2)
        raise SetupError("AMI connect", f"127.0.0.1:{self.port}")

    def stop(self):
        if self.ami:
            self.ami.close()
            self.ami = None
        if self.proc and self.proc.poll() is None:
            self.root.sh("asterisk -rx 'core stop now'", timeout=30)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, cmd):
        p = self.root.sh(f"asterisk -rx {shq(cmd)}", timeout=60)
        return p.stdout

    # ------------------------------------------------------------- state
    def members(self, queue):
        """{interface: {'penalty': int, 'name': str, 'dynamic': bool}} from AMI QueueStatus."""
        res = {}
        for m in self.ami.queue_members(queue).get(queue, []):
            res[m["Location"]] = {"penalty": int(m.get("Penalty", 0)), "name": m.get("Name", ""),
                                  "dynamic": m.get("Membership") == "dynamic"}
        return res

    def getvar(self, expr):
        r = self.ami.action("Getvar", Variable=expr)
        return r[0].get("Value", "")

    def member_list(self, queue):
        """QUEUE_MEMBER_LIST(queue) as the dialplan sees it."""
        v = self.getvar(f"QUEUE_MEMBER_LIST({queue})")
        return [x for x in v.split(",") if x]

    def channels(self):
        """Names of the channels up now."""
        out = self.cli("core show channels concise").splitlines()
        return [line.split("!")[0] for line in out if "!" in line]

    def wait_idle(self, timeout=60):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            out = self.cli("core show channels count")
            m = re.search(r"(\d+) active channel", out)
            if m and m.group(1) == "0":
                return True
            time.sleep(0.2)
        return False

    def reset_members(self, queues=ALL_QUEUES):
        """Remove every dynamic member of these queues (and its astdb copy),
        as QueueStatus lists them (QUEUE_MEMBER_LIST stops at 4 KB)."""
        self.ami.actions_at_once([("QueueRemove", {"Queue": q, "Interface": iface}) for q in queues
                                  for iface, member in self.members(q).items() if member["dynamic"]])
        self.cli("database deltree Queue/PersistentMembers")

    # ------------------------------------------------------------- calls
    def prepare(self, cid, target="s", name="E2E", dnid=None, rdnis=None, keys=None):
        """A new call slot: its caller ID, name, target and (only if given)
        DNID, RDNIS and what the caller keys (SendDTMF's text: w is half a
        second's pause), as files FILE() reads."""
        self.slot += 1
        for ext, val in (("cid", cid), ("target", target), ("name", name), ("dnid", dnid), ("rdnis", rdnis),
                         ("keys", keys)):
            self._slot_file(self.slot, ext, val)
        return self.slot

    def _slot_file(self, slot, ext, value):
        """CALLS_DIR/<slot>.<ext> holding value's bytes; none when value is None
        (not set on the channel at all)."""
        f = self.root.p(CALLS_DIR) / f"{slot}.{ext}"
        if value is None:
            f.unlink(missing_ok=True)
            return
        f.write_bytes(value.encode("utf-8"))
        f.chmod(0o644)

    def originate(self, slots, context="qmt-caller"):
        """Start the calls of these slots at the same instant (one AMI write)."""
        answers = self.ami.actions_at_once([("Originate", {"Channel": f"Local/{slot}@{context}",
                                                           **self._caller_side(slot), "Async": "true",
                                                           "Timeout": "30000"})
                                            for slot in slots])
        for r in answers:
            if r.get("Response") != "Success":
                raise AssertionError(f"Originate refused: {r}")

    def _caller_side(self, slot):
        """What the caller's side of the Local call does once answered: key
        the slot's DTMF (context qmt-keypad) or just wait."""
        if self.root.p(CALLS_DIR).joinpath(f"{slot}.keys").exists():
            return {"Context": "qmt-keypad", "Exten": str(slot), "Priority": "1"}
        return {"Application": "Wait", "Data": "60"}

    def place(self, cid, target="s", context="qmt-caller", **fields):
        """Originate one call; returns its slot (no wait). fields: name, dnid, rdnis."""
        slot = self.prepare(cid, target, **fields)
        self.originate([slot], context)
        return slot

    def result(self, slot, timeout=60, tag="QMT_DONE"):
        """Wait for the call's hangup-handler line; return its fields and its log lines."""
        pat = re.compile(rf"{tag} slot={slot} (.*) END")
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            text = self.log_text()
            m = pat.search(text)
            if m:
                fields = dict(kv.split("=", 1) for kv in m.group(1).split(" ") if "=" in kv)
                fields["_log"] = (self.call_log(slot, text) if str(slot).isdigit()
                                  else channel_lines(text, fields["CHANNEL"]))
                return fields
            time.sleep(0.1)
        raise AssertionError(f"call slot {slot} did not finish in {timeout} s; log tail:\n"
                             + self.log_text()[-3000:])

    def call(self, cid, target="s", timeout=60, **fields):
        return self.result(self.place(cid, target, **fields), timeout)

    def mobile(self, number, mode):
        """What the simulated mobile `number` does when the ring path dials
        it: accept, reject, silent, busy, congestion, noanswer (None: the
        default mailbox-like answer)."""
        f = self.root.p(CALLS_DIR) / f"mobile-{number}"
        if mode is None:
            f.unlink(missing_ok=True)
        else:
            f.write_text(mode)
            f.chmod(0o644)

    def customer(self, queue, cid=CUSTOMER_CID, wait=20):
        """A customer calling into `queue` (as FreePBX's queue does, with
        __NODEST set to the queue's number); hangs up after `wait` seconds.
        Returns the customer's extension (its channels are Local/<it>@qmt-customer-stub-...)."""
        self.slot += 1
        tag = f"9{self.slot}"
        r = self.ami.action("Originate", Channel=f"Local/{tag}@qmt-customer-stub", Application="Queue",
                            Data=queue, CallerID=f"Customer <{cid}>", Variable=f"__NODEST={queue},QMT_WAIT={wait}",
                            Async="true")
        assert r[0].get("Response") == "Success", r
        return tag

    # -------------------------------------------------------------- logs
    def log_text(self):
        """The whole full log so far (read incrementally, whole lines only)."""
        return self._full.text()

    def call_log(self, slot, text=None):
        """The full-log lines of this call's dialplan channel (Local/<slot>@...;2)."""
        text = self.log_text() if text is None else text
        chan = re.compile(rf"Local/{slot}@qmt-\w+-[0-9a-f]+;2")
        return [line for line in text.splitlines() if chan.search(line)]

    def queue_log_lines(self):
        try:
            return self.queue_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
