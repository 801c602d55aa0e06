"""The host's side of the set-up: whether the end-to-end tests can run
here, and running a set-up step so that its failure names the step."""

import os
import subprocess
import sys


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


def umount_below(path):
    """Unmount anything still mounted under path (debootstrap leftovers, a
    killed run's overlay), deepest first; lazily when a mount is busy."""
    path = str(os.path.realpath(path))
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f.read().splitlines()]
    except OSError:
        return
    for m in sorted((m for m in mounts if m == path or m.startswith(path + "/")), reverse=True):
        umount(m)


def umount(mountpoint):
    """Unmount; lazily when busy (a process still inside lets go later)."""
    if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
