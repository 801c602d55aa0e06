"""A run's root: a writable overlay of the cached chroot, with /proc.

Every run works on a throw-away overlay, so the cached chroot stays
pristine. Inside it the project's own install.sh runs as an admin would
run it, from a copy of the working tree and a wheelhouse filled on the host.
"""

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.chroot import CHROOT, REPO
from harness.host import run, say, umount, umount_below

SRC_IN_ROOT = "/root/queue-mobile-toggle"      # the repo copy inside the chroot
WHEELS_IN_ROOT = "/root/qmt-wheels"
SQLITE_DB = "/var/lib/asterisk/queue_mobile_toggle.sqlite"   # install.sh's embedded allowlist
# A root's folder: qmt-e2e-<tag>-<pid of the run>-<random>; the pid tells a killed run's.
ROOTS_IN = Path("/var/tmp")
ROOT_NAME = re.compile(r"qmt-e2e-\w+-(\d+)-")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _alive(pid):
    """pid runs (a zombie, e.g. a run just killed, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_processes_inside(folder):
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(proc / "root").startswith(str(folder)):
                    os.kill(int(proc.name), 9)


def clean_stale_roots():
    """Remove the roots left by a run that was killed (its pid is gone):
    stop what still runs inside them, unmount, delete."""
    for d in ROOTS_IN.glob("qmt-e2e-*-*-*"):
        m = ROOT_NAME.match(d.name)
        if not m or _alive(int(m.group(1))):
            continue
        say(f"cleaning up {d}, left by a run that was killed")
        _kill_processes_inside(d)
        time.sleep(0.5)
        umount_below(d)
        shutil.rmtree(d, ignore_errors=True)


def shq(s):
    """s quoted for /bin/sh."""
    return "'" + str(s).replace("'", "'\\''") + "'"


class Root:
    """A writable overlay of the cached chroot, with /proc mounted.

    Use as a context manager: everything is unmounted and removed at the end,
    even on failure.
    """

    def __init__(self, base=CHROOT, tag="run"):
        self.base = Path(base)
        clean_stale_roots()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"qmt-e2e-{tag}-{os.getpid()}-", dir=ROOTS_IN))
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
        self._mount_overlay()
        # Only /proc: the chroot's own /dev (made by debootstrap) has the few
        # nodes Asterisk and Python use, and binding the host's /dev would
        # hand the host's /dev/log (syslog) to the chroot.
        t = self.path / "proc"
        run(["mount", "-t", "proc", "proc", str(t)], "mount /proc in the chroot")
        self.mounts.append(t)

    def _mount_overlay(self):
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

    def close(self):
        for m in reversed(self.mounts):
            umount(m)
        self.mounts = []
        umount_below(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # helpers ---------------------------------------------------------------
    def p(self, inside):
        """Host path of a path inside the chroot."""
        return self.path / str(inside).lstrip("/")

    def sh(self, cmd, check=False, timeout=300, user=None, env=None):
        """Run a shell command inside the chroot, in a clean environment; returns CompletedProcess."""
        argv = ["chroot"]
        if user:
            argv.append(f"--userspec={user}")
        full_env = {"PATH": CHROOT_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
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

    def put_wheels(self, wheels):
        """The wheelhouse filled on the host, where install.sh --wheelhouse finds it."""
        dest = self.p(WHEELS_IN_ROOT)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(wheels, dest)
        return WHEELS_IN_ROOT

    def install(self, *args, timeout=600):
        """Run the project's install.sh inside the chroot, as root."""
        q = " ".join(shq(a) for a in args)
        return self.sh(f"cd {SRC_IN_ROOT} && ./install.sh {q}", timeout=timeout)
