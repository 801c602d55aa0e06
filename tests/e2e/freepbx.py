"""A FreePBX-17-shaped PBX on the real Asterisk 22 of the e2e chroot, with
real SIP on loopback (issue 15).

One Asterisk holds two things:

* the PBX: FreePBX 17's dialplan as its generator writes it (the files in
  freepbx_pbx/, each saying which FreePBX source it follows), a PJSIP trunk
  "carrier" on 127.0.0.2, and queue-mobile-toggle installed by its own
  install.sh in FreePBX mode (/etc/freepbx.conf present: the #include goes to
  extensions_custom.conf, the qmt manager account to manager_custom.conf);
* the far side (freepbx_pbx/far_side.conf), "the carrier and the mobiles" on
  127.0.0.3: it answers the PBX's INVITEs as a mobile would (accept with a 1
  sent as RFC 4733, reject, silent, busy, forbidden, no answer: one file per
  number in the harness's CALLS_DIR), logs the caller number every INVITE carries,
  and places the customers' calls (and a mobile's call to the toggle code) to
  the PBX's DIDs over the trunk.

Prompts are NOT shortened here (the harness shortens them; they are put
back): timings are those of Asterisk's real recordings.
"""

import re
import shutil
import socket
import sqlite3
import time
from pathlib import Path

from harness.asterisk import Asterisk
from harness.host import SetupError, say
from harness.logs import copy_logs, route_leg_prompts
from harness.pbx_config import CALLS_DIR, PROMPTS, render, sounds_dir, write_modules_noload
from harness.root import SQLITE_DB, WHEELS_IN_ROOT, Root

CONF_DIR = Path(__file__).resolve().parent / "freepbx_pbx"
ETC = "/etc/asterisk"

TRUNK_CID = "74950000000"          # OUTCID_1, the trunk's Outbound CallerID
DID_QUEUE = {"8010": "74951230000", "8008": "74951230008", "8009": "74951230009"}
DID_TOGGLE = "74951234580"          # Custom Destination -> app-queue-toggle-mob,s,1
QUEUES = ("8008", "8009", "8010")
QMT_LOG = "/var/log/asterisk/queue_mobile_toggle.log"
CONF = "/etc/asterisk/queue_mobile_toggle.conf"
# FreePBX ships these two in its own sound packages; stand-ins with their names
FREEPBX_SOUNDS = {"incoming-call-1-accept-2-decline": "if-correct-press",
                  "incoming-call-no-longer-avail": "im-sorry"}
# Modules this PBX needs on top of the harness's SIP_MODULES: PJSIP_HEADER() for
# the far side's log and FreePBX's func-apply-sipheaders; the SIP logger.
EXTRA_MODULES = ("res_pjsip_header_funcs", "res_pjsip_logger")
TRUNK_DEFAULTS = {"OUTKEEPCID_1": "off", "FORCEDOUTCID_1": "", "OUTDISABLE_1": "off", "OUTMAXCHANS_1": ""}

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]")


def free_udp_port(address):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def stamp(line):
    """The full log line's time, in seconds (the log's dateformat has ms)."""
    m = STAMP.match(line)
    if not m:
        return None
    return time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S")) + int(m.group(1)[20:]) / 1000


class FreePBX:
    """The PBX and its far side; use start() / stop() (the test's fixture)."""

    def __init__(self, base_chroot, wheels):
        self.base, self.wheels = Path(base_chroot), Path(wheels)
        self.root = Root(self.base, tag="freepbx")
        self.ast = None
        self.install_result = None
        self.tag = 500
        self.pbx_port = free_udp_port("127.0.0.2")
        self.far_port = free_udp_port("127.0.0.3")
        self.db = self.root.p(SQLITE_DB)

    # ------------------------------------------------------------ set-up
    def start(self):
        self.root.__enter__()
        self.ast = Asterisk(self.root)        # writes the harness's base config
        self._configure()
        self.ast.start()
        self.ast.cli("pjsip set logger on")     # every SIP message in the full log
        self.root.copy_repo()
        self.root.put_wheels(self.wheels)
        self.install_result = self.root.install("--wheelhouse", WHEELS_IN_ROOT)
        if self.install_result.returncode != 0:
            raise SetupError("install.sh on the FreePBX-shaped PBX",
                             self.install_result.stdout + self.install_result.stderr)
        # The admin's edits (install.sh keeps them): decisions to a file the
        # tests read; a shorter wait for the 1 after the prompt.
        self.set_config(target=QMT_LOG, answer_wait="3")
        return self

    def _configure(self):
        root = self.root
        values = {"@PBX_SIP_PORT@": str(self.pbx_port), "@FAR_SIP_PORT@": str(self.far_port),
                  "@AMI_PORT@": str(self.ast.port), "@AMI_SECRET@": self.ast.secret,
                  "@CALLS_DIR@": CALLS_DIR}
        for src in sorted(CONF_DIR.glob("*.conf")):
            text = render(src.read_text(), values, f"FreePBX config {src.name}")
            if src.name == "freepbx.conf":       # FreePBX's marker, in /etc
                root.write("/etc/freepbx.conf", text, mode=0o640, owner="root:asterisk")
                continue
            secret = src.name == "manager.conf"
            root.write(f"{ETC}/{src.name}", text, mode=0o640 if secret else 0o664)
        # modules: the harness's noload list, less what this PBX needs
        write_modules_noload(root, keep=EXTRA_MODULES)
        # FreePBX keeps /etc/asterisk the asterisk user's (fwconsole chown)
        root.sh(f"chown -R asterisk:asterisk {ETC}", check=True)
        self._real_prompts()

    def _real_prompts(self):
        """Undo the harness's shortened prompts (the timing tests need the
        real lengths) and add FreePBX's two confirmation prompts."""
        sounds = sounds_dir(self.root)
        for name in PROMPTS:
            shutil.copyfile(self.base / sounds.lstrip("/") / f"{name}.gsm", self.root.p(f"{sounds}/{name}.gsm"))
        for name, standin in FREEPBX_SOUNDS.items():
            shutil.copyfile(self.base / sounds.lstrip("/") / f"{standin}.gsm", self.root.p(f"{sounds}/{name}.gsm"))

    def stop(self, keep_logs_in=None):
        try:
            if self.ast:
                self.ast.stop()
            if keep_logs_in:
                copy_logs(self.root, keep_logs_in)
                say(f"logs of the FreePBX-shaped PBX copied to {keep_logs_in}")
        finally:
            self.root.close()

    # --------------------------------------------------------- the config
    def set_config(self, **values):
        """Set keys of the installed queue_mobile_toggle.conf (an admin's edit)."""
        conf = self.root.p(CONF)
        text = conf.read_text()
        for key, value in values.items():
            text, found = re.subn(rf"(?m)^{key} *=.*$", f"{key} = {value}", text)
            assert found == 1, f"{key} not in the installed config"
        conf.write_text(text)

    def config_value(self, key):
        m = re.search(rf"(?m)^{key} *= *(.*)$", self.root.p(CONF).read_text())
        return m.group(1).strip() if m else None

    def set_trunk(self, keepcid="off", disabled="off", maxchans=""):
        """Trunk 1's settings, as FreePBX's Apply Config would regenerate its
        globals (FORCEDOUTCID_1 is the trunk's CID only with keepcid=all)."""
        values = {"OUTKEEPCID_1": keepcid, "FORCEDOUTCID_1": TRUNK_CID if keepcid == "all" else "",
                  "OUTDISABLE_1": disabled, "OUTMAXCHANS_1": maxchans}
        for var, value in values.items():
            r = self.ast.ami.action("Setvar", Variable=var, Value=value)
            assert r[0].get("Response") == "Success", r
            assert self.ast.getvar(f"GLOBAL({var})") == value

    # ------------------------------------------------------- the allowlist
    def sql(self, statement, params=()):
        with sqlite3.connect(self.db) as c:
            return c.execute(statement, params).fetchall()

    def allow(self, number, queue, pin_hash=None):
        self.sql("INSERT INTO queue_mobile_agents (number, queue, pin_hash) VALUES (?, ?, ?)",
                 (number, queue, pin_hash))

    # ------------------------------------------------------------ calls
    def mobile(self, number, mode):
        """What the far side does when the PBX dials `number` (see far_side.conf)."""
        self.ast.mobile(number, mode)

    def far_call(self, did, cid, wait=60, keys=None, pres=None):
        """A call from the far side over the trunk to the PBX's DID with this
        caller ID (pres=prohib: withheld). It waits `wait` seconds once
        answered, or keys `keys` (SendDTMF's text) as RFC 4733. Returns its tag."""
        self.tag += 1
        tag = str(self.tag)
        fields = {"Channel": f"Local/{tag}@far-caller", "Async": "true", "Timeout": "30000",
                  # Originate splits Variable at commas (one header for all three)
                  "Variable": f"FAR_DID={did},FAR_CID={cid},FAR_PRES={pres or ''}"}
        if keys is not None:
            f = self.root.p(CALLS_DIR) / f"{tag}.keys"
            f.write_text(keys)
            f.chmod(0o644)
            fields.update(Context="far-keypad", Exten=tag, Priority="1")
        else:
            fields.update(Application="Wait", Data=str(wait))
        r = self.ast.ami.action("Originate", **fields)
        assert r[0].get("Response") == "Success", r
        return tag

    def customer(self, queue, cid="74951110000", wait=60, pres=None):
        """A customer calling the queue's DID (from-pstn -> ext-did -> ext-queues)."""
        return self.far_call(DID_QUEUE[queue], cid, wait=wait, pres=pres)

    def hang_up(self, tag):
        """The far caller `tag` hangs up."""
        for chan in self.ast.channels():
            if chan.startswith(f"Local/{tag}@far-caller-") and chan.endswith(";1"):
                self.ast.ami.action("Hangup", Channel=chan)

    def caller_gone(self, tag, timeout=30):
        """The log line of the far caller's end; its time."""
        line = self.wait_line(rf"app_verbose\.c: QMT_FAR_CALLER_GONE tag={tag} END", timeout)
        return stamp(line)

    # ------------------------------------------------------------- logs
    def log(self):
        return self.ast.log_text()

    def mark(self):
        self.log_mark = len(self.log())
        self.qlog_mark = len(self.ast.queue_log_lines())
        self.qmt_mark = len(self.qmt_log())

    def new_log(self):
        return self.log()[self.log_mark:]

    def wait_line(self, pattern, timeout=30, since_mark=True):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in (self.new_log() if since_mark else self.log()).splitlines():
                if rx.search(line):
                    return line
            time.sleep(0.1)
        raise AssertionError(f"no log line /{pattern}/ in {timeout} s; log tail:\n" + self.new_log()[-3000:])

    def invites(self, number=None):
        """The INVITEs the far side got since the mark: dicts of number, mode, cid, from, t."""
        out = []
        for line in self.new_log().splitlines():
            m = re.search(r"app_verbose\.c: QMT_FAR_INVITE number=(\S*) mode=(\S*) cid=(\S*) from=(.*) END", line)
            if m and (number is None or m.group(1) == number):
                out.append({"number": m.group(1), "mode": m.group(2), "cid": m.group(3), "from": m.group(4),
                            "t": stamp(line)})
        return out

    def far_hangups(self, number):
        return [stamp(line) for line in self.new_log().splitlines()
                if f"app_verbose.c: QMT_FAR_HANGUP number={number} " in line]

    def heard_by_mobile(self, number):
        """Sound files the PBX played on the mobile's route leg (where the
        ring path's confirmation runs) since the mark."""
        return route_leg_prompts(self.new_log(), number)

    def qlog(self):
        return self.ast.queue_log_lines()[self.qlog_mark:]

    def events(self, event, agent=None):
        found = []
        for line in self.qlog():
            fields = line.split("|")
            if len(fields) > 4 and fields[4] == event and (agent is None or fields[3] == agent):
                found.append(fields)
        return found

    def qmt_log(self):
        try:
            return self.root.p(QMT_LOG).read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def new_qmt_log(self):
        return self.qmt_log()[self.qmt_mark:]

    def decision(self, number, timeout=30):
        """The toggle's log line for a call from `number` since the mark, as a dict."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.new_qmt_log():
                if f"number={number} " in line or f"callerid={number} " in line:
                    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            time.sleep(0.2)
        raise AssertionError(f"no decision logged for {number} in {timeout} s: {self.new_qmt_log()}")

    # ------------------------------------------------------------ state
    def astdb(self, number, key):
        m = re.search(r"^Value: (.*)$", self.ast.cli(f"database get qmt-ring/{number} {key}"), re.M)
        return m.group(1).strip() if m else ""

    def member_state(self, queue, interface):
        for m in self.ast.ami.action("QueueStatus", Queue=queue):
            if m.get("Event") == "QueueMember" and m.get("Location") == interface:
                return m
        return None
