"""Real-Asterisk harness for the end-to-end tests and the benchmark.

A Debian sid chroot with Asterisk 22 is built once with debootstrap and
cached outside the repository (QMT_E2E_CHROOT, default
/var/cache/queue-mobile-toggle/e2e-chroot). It is built into a temporary
folder and renamed only when complete, so a half-built chroot is never
reused. Every run works on a throw-away overlay of it, so the cache stays
pristine. Inside the overlay the project's own install.sh runs as an admin
would run it, with a wheelhouse filled on the host, and a real Asterisk
(running as the asterisk user) answers calls placed through AMI.
"""

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROOT = Path(os.environ.get("QMT_E2E_CHROOT", "/var/cache/queue-mobile-toggle/e2e-chroot"))
MIRROR = os.environ.get("QMT_E2E_MIRROR", "http://deb.debian.org/debian")
SUITE = "sid"
# Everything install.sh would otherwise fetch with apt is put in up front:
# apt inside the chroot would need the network and sid's index is often
# stale. install.sh still runs its apt step and finds them installed.
PACKAGES = ["asterisk", "asterisk-core-sounds-en", "python3", "python3-venv",
            "unixodbc", "libsqliteodbc", "odbc-mariadb", "odbc-postgresql",
            "sqlite3", "procps"]
# Bump when the recipe changes: a cached chroot with another stamp is rebuilt.
RECIPE = "qmt-e2e-chroot v1 " + SUITE + " " + " ".join(PACKAGES)
STAMP = "etc/qmt-e2e-stamp"

REQUIREMENTS = REPO / "agi" / "requirements.txt"   # what install.sh puts in its venv
SRC_IN_ROOT = "/root/queue-mobile-toggle"      # the repo copy inside the chroot
WHEELS_IN_ROOT = "/root/qmt-wheels"
CALLS_DIR = "/var/tmp/qmt-calls"               # caller ID / target per call slot
AGI_DIR = "/var/lib/asterisk/agi-bin"          # astagidir of the test asterisk.conf
SQLITE_DB = "/var/lib/asterisk/queue_mobile_toggle.sqlite"   # install.sh's embedded allowlist
QUEUES = ("8008", "8010")               # the queues most tests log in to
ALL_QUEUES = QUEUES + ("8012",)         # 8012: linear, for the ring path tests
BENCH_FLOOR_SCRIPT = "qmt_bench_floor.py"      # written by the benchmark only


class SetupError(RuntimeError):
    """A named step of the environment set-up failed."""

    def __init__(self, step, detail=""):
        self.step = step
        super().__init__(f"e2e set-up step '{step}' failed" + (f": {detail}" if detail else ""))


def say(msg):
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


def run(cmd, step, timeout=900, **kw):
    """Run cmd; raise SetupError naming the step, with the output tail."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SetupError(step, str(e)) from None
    if p.returncode != 0:
        tail = (p.stdout + p.stderr).strip().splitlines()[-25:]
        raise SetupError(step, f"exit {p.returncode}\n" + "\n".join(tail))
    return p


def why_unavailable():
    """None when the e2e tests can run here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "the end-to-end tests need root (chroot, mounts); run them as root"
    if not sys.platform.startswith("linux"):
        return "the end-to-end tests need Linux"
    return None


# --------------------------------------------------------------- the chroot
def chroot_ready(path=CHROOT):
    stamp = path / STAMP
    return stamp.is_file() and stamp.read_text().strip() == RECIPE


def ensure_chroot(path=CHROOT):
    """Build the cached chroot unless a complete one with our stamp exists.
    A lock keeps two runs from building (or cleaning up) at the same time."""
    if chroot_ready(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / (path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if chroot_ready(path):          # another run built it meanwhile
            return path
        return _build_chroot(path)


def _build_chroot(path):
    if not shutil.which("debootstrap"):
        say("debootstrap missing on the host: installing it with apt-get")
        run(["apt-get", "update"], "apt-get update on the host (for debootstrap)")
        run(["apt-get", "install", "-y", "debootstrap"], "apt-get install debootstrap on the host")
    for stale in path.parent.glob(path.name + ".build-*"):
        say(f"removing a half-built chroot {stale}")
        _umount_below(stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".build-", dir=path.parent))
    tmp.chmod(0o755)          # it becomes the chroot's "/"
    say(f"building the chroot with debootstrap ({SUITE}, {MIRROR}) in {tmp}: about a minute")
    t0 = time.monotonic()
    try:
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
             SUITE, str(tmp), MIRROR],
            f"debootstrap {SUITE} from {MIRROR} (is Debian's package registry reachable?)",
            timeout=1800)
        p = run(["chroot", str(tmp), "asterisk", "-V"], "asterisk -V inside the new chroot")
        if not p.stdout.startswith("Asterisk 2"):
            raise SetupError("asterisk -V inside the new chroot", p.stdout)
        (tmp / STAMP).write_text(RECIPE + "\n")
        old = None
        if path.exists():          # a chroot of an older recipe
            old = path.with_name(path.name + ".old-" + str(os.getpid()))
            path.rename(old)
        tmp.rename(path)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        _umount_below(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"chroot ready at {path} in {time.monotonic() - t0:.0f} s ({p.stdout.strip()})")
    return path


def _umount_below(path):
    """Unmount anything still mounted under path (debootstrap leftovers)."""
    path = str(Path(path).resolve())
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for m in sorted((m for m in mounts if m == path or m.startswith(path + "/")), reverse=True):
        if subprocess.run(["umount", m], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", m], capture_output=True)


def chroot_python_version(base):
    p = run(["chroot", str(base), "python3", "-c",
             "import sys; print('%d.%d' % sys.version_info[:2])"], "python3 version inside the chroot")
    return p.stdout.strip()


def fill_wheelhouse(dest, pyver):
    """What the docs tell an admin to do on a machine with internet access."""
    dest.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
         "--only-binary=:all:", "--implementation", "cp", "--python-version", pyver,
         "--platform", "manylinux_2_28_x86_64", "-r", str(REQUIREMENTS), "setuptools>=61"],
        f"pip download -r agi/requirements.txt for Python {pyver} (is the package index reachable?)",
        timeout=600)
    return sorted(p.name for p in dest.iterdir())


# ------------------------------------------------------------- a run's root
def _alive(pid):
    """pid runs (a zombie, e.g. a run just killed, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def clean_stale_roots():
    """Remove the roots left by a run that was killed (its pid is gone):
    stop what still runs inside them, unmount, delete."""
    for d in Path("/var/tmp").glob("qmt-e2e-*-*-*"):
        m = re.match(r"qmt-e2e-\w+-(\d+)-", d.name)
        if not m or _alive(int(m.group(1))):
            continue
        say(f"cleaning up {d}, left by a run that was killed")
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(proc / "root").startswith(str(d)):
                        os.kill(int(proc.name), 9)
        time.sleep(0.5)
        _umount_below(d)
        shutil.rmtree(d, ignore_errors=True)


class Root:
    """A writable overlay of the cached chroot, with /proc mounted.

    Use as a context manager: everything is unmounted and removed at the end,
    even on failure.
    """

    def __init__(self, base=CHROOT, tag="run"):
        self.base = Path(base)
        clean_stale_roots()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"qmt-e2e-{tag}-{os.getpid()}-", dir="/var/tmp"))
        self.path = self.tmp / "root"
        self.mounts = []

    def __enter__(self):
        try:
            self._mount()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _mount(self):
        upper, work = self.tmp / "upper", self.tmp / "work"
        for d in (upper, work, self.path):
            d.mkdir()
        p = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir={self.base},upperdir={upper},workdir={work}", str(self.path)],
                           capture_output=True, text=True)
        if p.returncode == 0:
            self.mounts.append(self.path)
        else:  # no overlayfs here: a full copy (slower, same result)
            say(f"overlayfs refused ({p.stderr.strip()}): copying the chroot instead")
            run(["cp", "-a", str(self.base) + "/.", str(self.path)], "copy of the cached chroot")
        # Only /proc: the chroot's own /dev (made by debootstrap) has the few
        # nodes Asterisk and Python use, and binding the host's /dev would
        # hand the host's /dev/log (syslog) to the chroot.
        t = self.path / "proc"
        run(["mount", "-t", "proc", "proc", str(t)], "mount /proc in the chroot")
        self.mounts.append(t)

    def close(self):
        for m in reversed(self.mounts):
            if subprocess.run(["umount", str(m)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(m)], capture_output=True)
        self.mounts = []
        _umount_below(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # helpers ---------------------------------------------------------------
    def p(self, inside):
        """Host path of a path inside the chroot."""
        return self.path / str(inside).lstrip("/")

    def sh(self, cmd, check=False, timeout=300, user=None, env=None):
        """Run a shell command inside the chroot; returns CompletedProcess."""
        argv = ["chroot"]
        if user:
            argv.append(f"--userspec={user}")
        full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        full_env.update(env or {})
        argv += [str(self.path), "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in full_env.items()],
                 "/bin/sh", "-c", cmd]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"`{cmd}` in the chroot exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    def write(self, inside, text, mode=0o644, owner=None):
        f = self.p(inside)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        f.chmod(mode)
        if owner:
            self.sh(f"chown {owner} '{inside}'", check=True)

    def copy_repo(self):
        """The project as an admin would unpack it (working tree, no .git)."""
        dest = self.p(SRC_IN_ROOT)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
            ".git", "__pycache__", ".pytest_cache", "*.pyc", ".venv", "venv", ".benchmarks"))
        return SRC_IN_ROOT

    def install(self, *args, timeout=600):
        """Run the project's install.sh inside the chroot, as root."""
        q = " ".join(_shq(a) for a in args)
        return self.sh(f"cd {SRC_IN_ROOT} && ./install.sh {q}", timeout=timeout)


def _shq(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


# ----------------------------------------------------------- Asterisk config
# What a SIP call over UDP needs (INVITE, SDP with PCMU, caller ID from
# From, RDNIS from Diversion, endpoint found by source IP): the attack
# tests call in the way an outside caller would.
SIP_MODULES = ("chan_pjsip", "res_pjproject", "res_pjsip", "res_pjsip_session", "res_pjsip_pubsub",
               "res_pjsip_sdp_rtp", "res_rtp_asterisk", "res_pjsip_endpoint_identifier_ip",
               "res_pjsip_caller_id", "res_pjsip_diversion")


def modules_noload(root):
    """noload lines for what the tests do not need (faster, quieter start)."""
    moddir = root.p("/usr/lib/x86_64-linux-gnu/asterisk/modules")
    drop = ("chan_", "res_pjsip", "res_pjproject", "res_hep", "res_ari", "res_stasis", "app_stasis",
            "res_http_websocket", "res_websocket", "res_calendar", "res_config_", "res_odbc", "func_odbc",
            "cdr_", "cel_", "res_xmpp", "res_snmp", "res_statsd", "res_prometheus", "res_phoneprov",
            "res_pjsip", "res_fax", "res_geolocation", "res_aeap", "res_speech_aeap", "res_stir_shaken",
            "res_resolver_unbound", "res_rtp_", "res_srtp", "res_smdi", "app_voicemail", "res_mwi",
            "app_minivm", "pbx_lua", "pbx_dundi", "pbx_realtime", "pbx_ael", "res_realtime",
            "res_sorcery_realtime", "app_jack", "app_festival", "res_http_media_cache", "res_curl",
            "func_curl", "app_sms", "res_parking", "app_confbridge", "bridge_softmix", "app_page",
            "res_corosync", "res_audiosocket", "app_audiosocket", "res_cdrel_custom", "res_tonedetect",
            "res_security_log", "res_convert", "func_pjsip", "res_crypto", "res_stun_monitor",
            "res_format_attr", "app_mp3", "app_externalivr", "res_clialiases", "func_enum",
            "res_manager_", "app_sla", "app_meetme", "pbx_spool")
    names = sorted(f.name for f in moddir.glob("*.so")
                   if f.name.startswith(drop) and f.name[:-3] not in SIP_MODULES)
    return "".join(f"noload => {n}\n" for n in names)


def base_config(root, ami_port, ami_secret, sip_port):
    """Write an Asterisk configuration for the tests inside the chroot.

    asterisk.conf: its [directories] section is NOT a template, and astagidir
    differs from Debian's compiled-in default, so the test can see that
    install.sh asks the running Asterisk.
    """
    etc = "/etc/asterisk"
    root.write(f"{etc}/asterisk.conf", f"""\
[directories]
astcachedir => /var/cache/asterisk
astetcdir => /etc/asterisk
astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules
astvarlibdir => /var/lib/asterisk
astdbdir => /var/lib/asterisk
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => {AGI_DIR}
astspooldir => /var/spool/asterisk
astrundir => /var/run/asterisk
astlogdir => /var/log/asterisk
astsbindir => /usr/sbin

[options]
verbose = 5
runuser = asterisk
rungroup = asterisk
""")
    root.write(f"{etc}/modules.conf", "[modules]\nautoload = yes\n" + modules_noload(root))
    root.write(f"{etc}/logger.conf", """\
[general]
dateformat = %F %T.%3q
queue_log = yes
queue_log_to_file = yes

[logfiles]
full => notice,warning,error,verbose(5)
messages.log => notice,warning,error
""")
    root.write(f"{etc}/queues.conf", """\
[general]
persistentmembers = yes
shared_lastcall = yes

; As the README asks for mobiles: ringinuse = no, so that a mobile on a
; queue call is not rung by another; a timeout above the ring path's 35 s
; (ring_seconds 20 + answer_wait 5 + 10). retry = 1: a customer's next ring
; round starts a second after the last.
[mobiles](!)
timeout = 40
ringinuse = no
retry = 1

[8008](mobiles)
strategy = ringall

[8010](mobiles)
strategy = ringall

; linear: the first member, then the next (members in the order added)
[8012](mobiles)
strategy = linear
""")
    root.write(f"{etc}/manager.conf", f"""\
[general]
enabled = yes
port = {ami_port}
bindaddr = 127.0.0.1

[qmt-e2e]
secret = {ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
""", mode=0o640, owner="root:asterisk")
    write_pjsip(root, sip_port)
    # The test contexts. A call slot N has its caller ID in CALLS_DIR/N.cid,
    # its caller name in N.name, its target (s = all queues, or a queue
    # number) in N.target, and, only when given, a DNID in N.dnid and an
    # RDNIS in N.rdnis: FILE() hands the bytes over untouched, so hostile
    # values reach the toggle exactly as written. The hangup handler logs the
    # outcome. qmt-sip-ivr is where SIP calls land, as an IVR would send them.
    root.write(f"{etc}/extensions.conf", f"""\
[general]
static = yes
writeprotect = yes
clearglobalvars = no

[globals]

; stand-in for FreePBX's outbound routes: the ring path dials the mobiles
; here. What a mobile does is in CALLS_DIR/mobile-<number> (a test writes
; it); without one it answers and stays silent for 3 s, like a mailbox. As a
; real route does, it Dial()s the mobile (here a Local channel into
; qmt-mobile-<mode>) and passes a failure on; "pbx-answers" is a route that
; answers itself (FreePBX's "all circuits busy" after a carrier's 403) and
; "no-trunk" (no such context) one whose trunk is unavailable, and
; "trunk-disabled" one that ends without dialing (FreePBX 17 on a disabled
; or full trunk).
[outbound-allroutes]
exten => _X!,1,Set(QMT_MOBILE=${{FILE({CALLS_DIR}/mobile-${{EXTEN}})}})
 same => n,Verbose(0,QMT_MOBILE_RUNG number=${{EXTEN}} mode=${{QMT_MOBILE}} cid=${{CALLERID(num)}} END)
 same => n,ExecIf($["${{QMT_MOBILE}}" = ""]?Set(QMT_MOBILE=mailbox))
 same => n,GotoIf($["${{QMT_MOBILE}}" = "pbx-answers"]?pbx)
 same => n,GotoIf($["${{QMT_MOBILE}}" = "trunk-disabled"]?end)
 same => n,Dial(Local/${{EXTEN}}@qmt-mobile-${{QMT_MOBILE}}/n)
 same => n,GotoIf($["${{DIALSTATUS}}" = "ANSWER"]?end)
 same => n,ExecIf($["${{DIALSTATUS}}" = "BUSY"]?Busy(5))
 same => n,Congestion(5)
 same => n(pbx),Playback(all-circuits-busy-now&please-try-call-later)
 same => n(end),Hangup()

; the simulated mobiles: the keys go to the ring path's confirmation
[qmt-mobile-mailbox]
exten => _X!,1,Answer()
 same => n,Wait(3)
 same => n,Hangup()

[qmt-mobile-accept]
exten => _X!,1,Answer()
 same => n,SendDTMF(wwww1)
 same => n,Verbose(0,QMT_MOBILE_PRESSED key=1 END)
 same => n,Wait(30)
 same => n,Hangup()

[qmt-mobile-reject]
exten => _X!,1,Answer()
 same => n,SendDTMF(wwww2)
 same => n,Wait(30)
 same => n,Hangup()

[qmt-mobile-silent]
exten => _X!,1,Answer()
 same => n,Wait(30)
 same => n,Hangup()

; answers and is gone at once: the leg may end before the confirmation runs
[qmt-mobile-answer-hangup]
exten => _X!,1,Answer()
 same => n,Hangup()

[qmt-mobile-busy]
exten => _X!,1,Busy(5)

[qmt-mobile-congestion]
exten => _X!,1,Congestion(5)

[qmt-mobile-noanswer]
exten => _X!,1,Ringing()
 same => n,Wait(60)
 same => n,Hangup()

; the caller's keypad: once the toggle answers, the caller's side of the
; Local call keys the slot's DTMF, then stays on the line
[qmt-keypad]
exten => _X!,1,SendDTMF(${{FILE({CALLS_DIR}/${{EXTEN}}.keys)}})
 same => n,Wait(60)

; a waiting customer: the far end of an originated Queue() call; it hangs
; up after QMT_WAIT seconds (default 20)
[qmt-customer-stub]
exten => _X!,1,Answer()
 same => n,Wait(${{IF($["${{QMT_WAIT}}" = ""]?20:${{QMT_WAIT}})}})
 same => n,Hangup()

[qmt-caller]
exten => _X!,1,Set(CHANNEL(hangup_handler_push)=qmt-caller-done,s,1(${{EXTEN}}))
 same => n,Set(CALLERID(num)=${{FILE({CALLS_DIR}/${{EXTEN}}.cid)}})
 same => n,Set(CALLERID(name)=${{FILE({CALLS_DIR}/${{EXTEN}}.name)}})
 same => n,GotoIf($[${{STAT(e,{CALLS_DIR}/${{EXTEN}}.dnid)}}]?:rdnis)
 same => n,Set(CALLERID(dnid)=${{FILE({CALLS_DIR}/${{EXTEN}}.dnid)}})
 same => n(rdnis),GotoIf($[${{STAT(e,{CALLS_DIR}/${{EXTEN}}.rdnis)}}]?:go)
 same => n,Set(CALLERID(rdnis)=${{FILE({CALLS_DIR}/${{EXTEN}}.rdnis)}})
 same => n(go),Goto(app-queue-toggle-mob,${{FILE({CALLS_DIR}/${{EXTEN}}.target)}},1)

[qmt-sip-ivr]
exten => _X!,1,Set(CHANNEL(hangup_handler_push)=qmt-caller-done,s,1(${{CHANNEL(pjsip,call-id)}}))
 same => n,Answer()
 same => n,Goto(app-queue-toggle-mob,s,1)

[qmt-caller-done]
exten => s,1,Verbose(0,QMT_DONE slot=${{ARG1}} {_fields(DONE_VARS)} END)
 same => n,Return()

; benchmark: only the AGI step, timed in the dialplan around AGI();
; qmt-bench-floor runs a script that only reads the AGI environment
""" + "".join(f"""
[{ctx}]
exten => _X!,1,Set(CALLERID(num)=${{FILE({CALLS_DIR}/${{EXTEN}}.cid)}})
 same => n,Set(T0=${{STRFTIME(,,%s.%6q)}})
 same => n,AGI({script})
 same => n,Set(T1=${{STRFTIME(,,%s.%6q)}})
 same => n,Verbose(0,QMT_BENCH slot=${{EXTEN}} {_fields(BENCH_VARS)} END)
 same => n,Hangup()
""" for ctx, script in BENCH_CONTEXTS))
    shorten_prompts(root)
    root.sh(f"mkdir -p {CALLS_DIR} /var/run/asterisk {AGI_DIR} && "
            f"chown asterisk:asterisk /var/run/asterisk {CALLS_DIR} && chmod 755 {CALLS_DIR} && "
            "chown -R asterisk:asterisk /var/log/asterisk /var/lib/asterisk /var/spool/asterisk "
            "/var/cache/asterisk 2>/dev/null; true", check=True)


SIP_ENDPOINT = "e2e-trunk"     # the calling channel is PJSIP/e2e-trunk-<n>


def write_pjsip(root, sip_port):
    """One UDP transport on loopback and one endpoint found by source IP,
    like a SIP trunk without registration: anything from 127.0.0.1 on that
    port is a call from the trunk, landing in qmt-sip-ivr."""
    root.write("/etc/asterisk/pjsip.conf", f"""\
[e2e-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{sip_port}

[{SIP_ENDPOINT}]
type = endpoint
transport = e2e-udp
context = qmt-sip-ivr
disallow = all
allow = ulaw
direct_media = no

[{SIP_ENDPOINT}-ip]
type = identify
endpoint = {SIP_ENDPOINT}
match = 127.0.0.1
""")


# channel variables logged at the end of a test call / a benchmark call
DONE_VARS = ("CHANNEL", "QUEUESTAT", "QUEUEUSER", "QMT_REASON", "QMT_COUNT", "AGISTATUS", "AQMSTATUS",
             "RQMSTATUS", "QAGENT_UNAUTHORIZED")
BENCH_VARS = ("T0", "T1", "AGISTATUS", "QUEUESTAT", "QMT_REASON")
BENCH_CONTEXTS = (("qmt-bench", "queue_mobile_toggle.py"), ("qmt-bench-floor", BENCH_FLOOR_SCRIPT))


def _fields(names):
    return " ".join(f"{n}=${{{n}}}" for n in names)


PROMPTS = ["agent-loginok", "agent-loggedoff", "pbx-invalid", "sorry-youre-having-problems", "agent-pass",
           "agent-incorrect", "followme/call-from", "followme/options"] + \
    [f"digits/{d}" for d in range(10)]


def shorten_prompts(root, frames=5):
    """Cut the toggle's prompts to their first 100 ms (5 GSM frames of 33
    bytes: still valid GSM) in this run's overlay, so that a login, which
    says 11 digits, takes 3 s instead of 11. Asterisk still plays each file;
    the log names them as before. The cached chroot keeps the originals."""
    sounds = root.sh("readlink -f /usr/share/asterisk/sounds/en", check=True).stdout.strip()
    for name in PROMPTS:
        f = root.p(f"{sounds}/{name}.gsm")
        data = f.read_bytes()                       # missing file: fail loudly
        f.write_bytes(data[:33 * frames])


# ------------------------------------------------------------------- AMI
class AMI:
    """A minimal Asterisk Manager Interface client (loopback only)."""

    def __init__(self, port, user, secret, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.seq = 0
        self._readline()                        # banner
        r = self.action("Login", Username=user, Secret=secret, Events="off")
        if r[0].get("Response") != "Success":
            raise SetupError("AMI login", str(r))

    def _readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("AMI closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def _message(self):
        msg = {}
        while True:
            line = self._readline()
            if line == "":
                if msg:
                    return msg
                continue
            k, _, v = line.partition(":")
            msg.setdefault(k.strip(), v.strip())
            if k.strip() == "Output":               # Command output lines
                msg.setdefault("_output", []).append(v[1:] if v.startswith(" ") else v)

    def _format(self, name, fields):
        self.seq += 1
        aid = f"qmt{self.seq}"
        lines = [f"Action: {name}", f"ActionID: {aid}"]
        for k, v in fields.items():
            for item in (v if isinstance(v, list) else [v]):
                lines.append(f"{k}: {item}")
        return aid, ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, name, **fields):
        aid, data = self._format(name, fields)
        self.sock.sendall(data)
        return aid

    def send_batch(self, actions):
        """Several actions in one write; returns their ActionIDs."""
        packed = [self._format(name, fields) for name, fields in actions]
        self.sock.sendall(b"".join(data for _aid, data in packed))
        return [aid for aid, _data in packed]

    def responses(self, ids):
        """The single-message responses of these ActionIDs."""
        want, got = set(ids), {}
        while want:
            m = self._message()
            if m.get("ActionID") in want:
                got[m["ActionID"]] = m
                want.discard(m["ActionID"])
        return [got[i] for i in ids]

    def action(self, name, **fields):
        """Send an action, return its messages (events of a list included)."""
        aid = self.send(name, **fields)
        out = []
        while True:
            m = self._message()
            if m.get("ActionID") != aid:
                continue
            out.append(m)
            first = out[0]
            if first.get("Response") in ("Error",):
                return out
            if first.get("EventList", "").lower() != "start" or m.get("EventList", "").lower() == "complete":
                return out

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------- Asterisk
class Asterisk:
    """A real Asterisk inside a Root, running as the asterisk user."""

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.ami = None
        self.port = free_port()
        self.secret = secrets.token_hex(12)
        self.slot = 100
        self.sip_port = free_port(socket.SOCK_DGRAM)
        base_config(root, self.port, self.secret, self.sip_port)
        self.full_log = root.p("/var/log/asterisk/full")
        self.queue_log = root.p("/var/log/asterisk/queue_log")
        self._log, self._log_pos = "", 0

    def start(self, timeout=60):
        out = open(self.root.tmp / "asterisk.stdout", "ab")
        self.proc = subprocess.Popen(
            ["chroot", str(self.root.path), "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             "LANG=C.UTF-8", "asterisk", "-f", "-U", "asterisk", "-G", "asterisk"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SetupError("start Asterisk in the chroot",
                                 f"exited {self.proc.returncode}: "
                                 + (self.root.tmp / "asterisk.stdout").read_text(errors="replace")[-2000:])
            p = self.root.sh("asterisk -rx 'core waitfullybooted'", timeout=30)
            if p.returncode == 0 and "fully booted" in p.stdout:
                break
            time.sleep(0.3)
        else:
            raise SetupError("start Asterisk in the chroot", f"not fully booted after {timeout} s")
        for _ in range(50):
            try:
                self.ami = AMI(self.port, "qmt-e2e", self.secret)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SetupError("AMI connect", f"127.0.0.1:{self.port}")
        return self

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
        p = self.root.sh(f"asterisk -rx {_shq(cmd)}", timeout=60)
        return p.stdout

    # ------------------------------------------------------------- state
    def members(self, queue):
        """{interface: {'penalty': int, 'name': str, 'dynamic': bool}} from AMI QueueStatus."""
        res = {}
        for m in self.ami.action("QueueStatus", Queue=queue):
            if m.get("Event") == "QueueMember" and m.get("Queue") == queue:
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

    def reset_members(self):
        """Remove every dynamic member of the test queues (and its astdb copy)."""
        for q in ALL_QUEUES:
            for iface in self.member_list(q):
                self.ami.action("QueueRemove", Queue=q, Interface=iface)
        self.cli("database deltree Queue/PersistentMembers")

    # ------------------------------------------------------------- calls
    def prepare(self, cid, target="s", name="E2E", dnid=None, rdnis=None, keys=None):
        """A new call slot: its caller ID, name, target and (only if given)
        DNID, RDNIS and what the caller keys (SendDTMF's text: w is half a
        second's pause), as files FILE() reads."""
        self.slot += 1
        d = self.root.p(CALLS_DIR)
        for ext, val in (("cid", cid), ("target", target), ("name", name), ("dnid", dnid), ("rdnis", rdnis),
                         ("keys", keys)):
            f = d / f"{self.slot}.{ext}"
            if val is None:                 # not set on the channel at all
                f.unlink(missing_ok=True)
                continue
            f.write_bytes(val.encode("utf-8"))
            f.chmod(0o644)
        return self.slot

    def originate(self, slots, context="qmt-caller"):
        """Start the calls of these slots at the same instant (one AMI write)."""
        ids = self.ami.send_batch([("Originate", {"Channel": f"Local/{slot}@{context}", **self._caller_side(slot),
                                                  "Async": "true", "Timeout": "30000"})
                                   for slot in slots])
        for r in self.ami.responses(ids):
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

    def customer(self, queue, cid="74951110000", wait=20):
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

    def call(self, cid, target="s", timeout=60, **fields):
        return self.result(self.place(cid, target, **fields), timeout)

    def log_text(self):
        """The whole full log so far (read incrementally, whole lines only)."""
        try:
            with open(self.full_log, "rb") as f:
                f.seek(self._log_pos)
                new = f.read()
        except FileNotFoundError:
            return self._log
        end = new.rfind(b"\n") + 1
        if end:
            self._log += new[:end].decode("utf-8", "replace")
            self._log_pos += end
        return self._log

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


def wait_for(predicate, timeout=30, what="the condition"):
    """predicate()'s first true value, polled every 0.2 s; AssertionError
    naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not seen in {timeout} s")


def channel_lines(text, channel):
    """The log lines naming this channel (e.g. PJSIP/e2e-trunk-00000003)."""
    return [line for line in text.splitlines() if channel and channel in line]


# ------------------------------------------------------------------- SIP
class SipCall:
    """One call from the test's SIP trunk to Asterisk over UDP, the way a
    carrier places it: INVITE with a PCMU offer, ACK the 200 OK, answer the
    BYE Asterisk sends when the dialplan hangs up, or send one at the end.
    ruri_user goes on the wire as given (percent escapes included)."""

    def __init__(self, port, ruri_user, from_user, headers=(), timeout=60):
        self.dest = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(1)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # Asterisk's audio lands here
        self.rtp.bind(("127.0.0.1", 0))
        self.me = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.ruri = f"sip:{ruri_user}@127.0.0.1:{port}"
        self.from_hdr = f"<sip:{from_user}@127.0.0.1>;tag={secrets.token_hex(4)}"
        self.to_hdr = f"<{self.ruri}>"
        self.contact = f"<sip:{from_user}@{self.me}>"
        self.call_id = "qmt" + secrets.token_hex(8)
        self.headers, self.timeout = list(headers), timeout
        self.remote = self.ruri            # Asterisk's Contact, once answered
        self.up = self.ended = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, first_line, cseq, extra=(), body="", branch=None):
        branch = branch or "z9hG4bK" + secrets.token_hex(8)
        lines = [first_line, f"Via: SIP/2.0/UDP {self.me};branch={branch};rport",
                 "Max-Forwards: 70", f"From: {self.from_hdr}", f"To: {self.to_hdr}",
                 f"Call-ID: {self.call_id}", f"CSeq: {cseq}", f"Contact: {self.contact}", *extra,
                 f"Content-Length: {len(body)}"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.dest)

    def _receive(self, deadline):
        """The next SIP message as (first line, {lower-case header: value}); None at the deadline."""
        while time.monotonic() < deadline:
            try:
                data, _addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs.setdefault(k.strip().lower(), v.strip())
            return head[0], hdrs
        return None

    def _sdp(self):
        port = self.rtp.getsockname()[1]
        return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    def _ack(self, branch=None):
        self._send(f"ACK {self.remote} SIP/2.0", "1 ACK", branch=branch)

    def invite(self):
        """Send the INVITE; return the final status code (200 once answered)."""
        branch = "z9hG4bK" + secrets.token_hex(8)
        self._send(f"INVITE {self.ruri} SIP/2.0", "1 INVITE",
                   self.headers + ["Content-Type: application/sdp"], self._sdp(), branch)
        deadline = time.monotonic() + self.timeout
        while (msg := self._receive(deadline)) is not None:
            first, hdrs = msg
            code = int(first.split()[1]) if first.startswith("SIP/2.0 ") else 0
            if code >= 200 and hdrs.get("cseq", "").endswith("INVITE"):
                self.to_hdr = hdrs.get("to", self.to_hdr)
                self.remote = hdrs.get("contact", self.remote).strip("<>").split(">")[0]
                self.up = code < 300
                self._ack(None if self.up else branch)     # a refusal's ACK reuses the INVITE's branch
                return code
        raise AssertionError(f"no final answer to the INVITE in {self.timeout} s")

    def wait_bye(self, timeout=None):
        """Answer Asterisk's BYE with 200 OK; True when it came in time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self.up and (msg := self._receive(deadline)) is not None:
            first, hdrs = msg
            if first.startswith("SIP/2.0 200") and hdrs.get("cseq", "").endswith("INVITE"):
                self._ack()                 # our ACK got lost: Asterisk repeats its 200
            elif first.startswith("BYE "):
                self._reply_ok(hdrs)
                self.up, self.ended = False, True
        return self.ended

    def _reply_ok(self, hdrs):
        lines = ["SIP/2.0 200 OK"] + [f"{name}: {hdrs[name.lower()]}" for name in
                                      ("Via", "From", "To", "Call-ID", "CSeq")] + ["Content-Length: 0"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), self.dest)

    def close(self):
        """Hang up if the call is still up, then free the sockets."""
        try:
            if self.up:
                self._send(f"BYE {self.remote} SIP/2.0", "2 BYE")
                self.up = False
        finally:
            self.sock.close()
            self.rtp.close()


def prompts(lines):
    """Sound files played, in order, from a call's log lines."""
    out = []
    for line in lines:
        # file.c's line, or res_agi's for STREAM FILE (escape digits and offset first)
        m = re.search(r"Playing '([^']+?)(?:\.\w+)?' (?:\(escape_digits=[^)]*\) \(sample_offset \d+\) )?\(language",
                      line)
        if m:
            out.append(m.group(1))
    return out


@contextlib.contextmanager
def installed_pbx(tag):
    """For the benchmarks: a fresh overlay root with Asterisk running and
    the project installed by install.sh (wheels filled on the host).
    Yields (root, asterisk, chroot Python version); SetupError names a
    failed step."""
    base = ensure_chroot()
    pyver = chroot_python_version(base)
    with Root(base, tag=tag) as root:
        ast = Asterisk(root)
        try:
            ast.start()
            root.copy_repo()
            fill_wheelhouse(root.p(WHEELS_IN_ROOT), pyver)
            p = root.install("--wheelhouse", WHEELS_IN_ROOT)
            if p.returncode != 0:
                raise SetupError("install.sh", p.stdout + p.stderr)
            yield root, ast, pyver
        finally:
            ast.stop()


def bench_on_installed_pbx(name, tag, body):
    """A benchmark's main: body(root, asterisk, python version) on an
    installed PBX, its exit code; 2, with one line, when it cannot run."""
    why = why_unavailable()
    if why:
        print(f"{name}: cannot run: {why}", file=sys.stderr)
        return 2
    try:
        with installed_pbx(tag) as (root, ast, pyver):
            return body(root, ast, pyver)
    except SetupError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
