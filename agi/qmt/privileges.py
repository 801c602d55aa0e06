"""`qmt` started by root runs as the asterisk user, before it reads anything.

Why: on Debian and FreePBX the asterisk user owns /etc/asterisk and can
replace the config. Its connection string names libraries for ODBC to load
(Driver=, SQLite's LoadExt=) and its [log] target a file to append to, so
root reading it would run that user's code as root.

The rule, first thing in every command (--help needs none):
- not root: nothing changes (an admin's account; the sweep timer, already asterisk);
- root, and user `asterisk` exists: become it for good (supplementary groups,
  gid, uid, in that order, then prove root cannot be regained), HOME and
  umask to match; everything after (ODBC, the log file, `asterisk -rx`,
  queues.conf) runs with the rights that user has anyway;
- root, and no such user (a DBA's machine that only hashes PINs): stay root
  only if the config and every folder above it are root's alone.
Any failure is a PrivilegeError: one line, and qmt exits 3.
"""

from __future__ import annotations

import configparser
import os
import pwd
import stat

ASTERISK_USER = "asterisk"
# Files qmt creates as that user (a log, an SQLite journal): never writable
# by group or others, never readable by others.
UMASK_BITS = 0o027


class PrivilegeError(Exception):
    """qmt cannot run safely as root: one line, exit 3."""


def leave_root(config_path: str, user: str = ASTERISK_USER, dsn: str | None = None) -> str:
    """Run as `user` from now on when started as root. Returns the config
    path to read: as given, or, when root stays root, the real path that was
    checked (a link could be turned elsewhere after the check)."""
    if os.geteuid() != 0:
        return config_path
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return roots_own_config(config_path, user)
    if account.pw_uid == 0:
        raise PrivilegeError("user %s has uid 0: qmt would still run as root" % user)
    dsn_file = users_dsn_file(dsn)
    become(account)
    if dsn_file and users_dsn_file(dsn) != dsn_file:
        raise PrivilegeError("--dsn %s is defined in %s, which qmt cannot read: as root it runs as %s; define "
                             "the DSN where %s may read it (README, Security)" % (dsn, dsn_file, user, user))
    return config_path


def become(account: pwd.struct_passwd) -> None:
    """The irreversible drop to `account`, proven, with its HOME and a sane umask."""
    try:
        groups = os.getgrouplist(account.pw_name, account.pw_gid)
        change_ids(account.pw_uid, account.pw_gid, groups)
    except OSError as error:
        raise PrivilegeError("cannot become user %s: %s" % (account.pw_name, error.strerror or error)) from None
    prove_dropped(account.pw_uid, account.pw_gid, groups, account.pw_name)
    keep_only_plain_variables()
    os.environ.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    os.umask(os.umask(0) | UMASK_BITS)


# Root's environment may hold secrets (a token, a database password) that
# code the asterisk user planted must not read: only these pass the drop.
KEPT_VARIABLES = ("PATH", "LANG", "LANGUAGE", "TERM", "TZ", "ODBCINI", "ODBCSYSINI", "QMT_CONFIG")


def keep_only_plain_variables() -> None:
    for name in list(os.environ):
        if name not in KEPT_VARIABLES and not name.startswith("LC_"):
            del os.environ[name]


def change_ids(uid: int, gid: int, groups: list[int]) -> None:
    """Groups first and uid last: once the uid is not 0 the rest could not
    be changed. All three of real, effective and saved, so none keeps 0."""
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def prove_dropped(uid: int, gid: int, groups: list[int], name: str) -> None:
    """Every id is the user's, and root cannot be had back."""
    if (os.getresuid(), os.getresgid(), set(os.getgroups())) != ((uid,) * 3, (gid,) * 3, set(groups)):
        raise PrivilegeError("the drop to user %s left other ids: not running" % name)
    try:
        os.setuid(0)
    except OSError:
        return
    raise PrivilegeError("root could be regained after the drop to user %s: not running" % name)


def users_dsn_file(dsn: str | None) -> str | None:
    """The running user's own odbc.ini, as unixODBC finds it ($ODBCINI, else
    ~/.odbc.ini of the real uid), when it defines DSN `dsn`; else None."""
    if not dsn:
        return None
    path = os.environ.get("ODBCINI") or os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".odbc.ini")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="utf-8")          # a file it cannot open reads as empty
    except (configparser.Error, UnicodeDecodeError):
        return None
    return path if dsn.lower() in (section.lower() for section in parser.sections()) else None


# -- root without an asterisk user ----------------------------------------------

def roots_own_config(config_path: str, user: str) -> str:
    real = os.path.realpath(config_path)
    unsafe = first_unsafe_name(real)
    if unsafe:
        raise PrivilegeError("no user %s to run as, and %s is not root's alone (owned by root, not writable "
                             "by group or others): not running as root" % (user, unsafe))
    return real


def first_unsafe_name(real_path: str) -> str | None:
    """The first name on the way to `real_path` (no links in it) that a user
    other than root could change, or None. A name that does not exist is
    safe only where no one but root may create it."""
    names = names_on_the_way(real_path)
    for name, below in zip(names, names[1:] + [None]):
        try:
            status = os.lstat(name)
        except FileNotFoundError:
            return None                      # its folder passed: only root could create it
        except OSError:
            return name
        if not roots_alone(status, below is not None and os.path.lexists(below)):
            return name
    return None


def names_on_the_way(real_path: str) -> list[str]:
    """'/etc/asterisk/x.conf' -> ['/', '/etc', '/etc/asterisk', '/etc/asterisk/x.conf']"""
    parts = [part for part in real_path.split("/") if part]
    return ["/"] + ["/" + "/".join(parts[:count]) for count in range(1, len(parts) + 1)]


def roots_alone(status: os.stat_result, below_exists: bool) -> bool:
    """Only root can change this name: owned by root, not writable by group
    or others. A sticky folder of root's (/tmp) passes when the name below
    it exists: only that name's owner, checked next, may replace it."""
    if status.st_uid != 0:
        return False
    if not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return True
    return stat.S_ISDIR(status.st_mode) and bool(status.st_mode & stat.S_ISVTX) and below_exists
