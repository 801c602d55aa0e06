"""The cached Debian sid chroot with Asterisk 22, and wheels for its Python.

It is built once with debootstrap and cached outside the repository
(QMT_E2E_CHROOT, default /var/cache/queue-mobile-toggle/e2e-chroot). It is
built into a temporary folder and renamed only when complete, so a
half-built chroot is never reused; a stamp naming the recipe makes a chroot
of an older recipe be rebuilt. Runs never write into it (see root.py).
"""

import fcntl
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness.host import SetupError, run, say, umount_below

REPO = Path(__file__).resolve().parents[3]
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


def _ensure_debootstrap():
    if not shutil.which("debootstrap"):
        say("debootstrap missing on the host: installing it with apt-get")
        run(["apt-get", "update"], "apt-get update on the host (for debootstrap)")
        run(["apt-get", "install", "-y", "debootstrap"], "apt-get install debootstrap on the host")


def _remove_half_built(path):
    for stale in path.parent.glob(path.name + ".build-*"):
        say(f"removing a half-built chroot {stale}")
        umount_below(stale)
        shutil.rmtree(stale, ignore_errors=True)


def _build_chroot(path):
    _ensure_debootstrap()
    _remove_half_built(path)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".build-", dir=path.parent))
    tmp.chmod(0o755)          # it becomes the chroot's "/"
    say(f"building the chroot with debootstrap ({SUITE}, {MIRROR}) in {tmp}: about a minute")
    t0 = time.monotonic()
    try:
        version = _debootstrap(tmp)
        (tmp / STAMP).write_text(RECIPE + "\n")
        _replace(path, tmp)
    except BaseException:
        umount_below(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"chroot ready at {path} in {time.monotonic() - t0:.0f} s ({version})")
    return path


def _debootstrap(tmp):
    """debootstrap into tmp; the Asterisk version it holds."""
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(tmp), MIRROR],
        f"debootstrap {SUITE} from {MIRROR} (is Debian's package registry reachable?)", timeout=1800)
    p = run(["chroot", str(tmp), "asterisk", "-V"], "asterisk -V inside the new chroot")
    if not p.stdout.startswith("Asterisk 2"):
        raise SetupError("asterisk -V inside the new chroot", p.stdout)
    return p.stdout.strip()


def _replace(path, new):
    """Put the complete chroot `new` in place of `path` (a chroot of an older recipe, or nothing)."""
    old = None
    if path.exists():
        old = path.with_name(path.name + ".old-" + str(os.getpid()))
        path.rename(old)
    new.rename(path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


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
