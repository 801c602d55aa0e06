"""qmt started by root leaves root before it reads anything
(agi/qmt/privileges.py, README Security): the ownership rule of a machine
without an asterisk user, on real folders; the order of the id calls; and
the real drop, in a child process, to the unprivileged user `nobody` (the
command's own is `asterisk`; its end-to-end test is
tests/e2e/test_e2e_privilege.py)."""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

import pytest

from qmt import privileges
from qmt.privileges import PrivilegeError, first_unsafe_name, leave_root
from support import REPO

AGI = os.path.join(REPO, "agi")
NOBODY = pwd.getpwnam("nobody")
NO_SUCH_USER = "qmt-no-such-user"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the drop and the ownership rule are root's")


def config_in(folder, mode=0o755, file_mode=0o640):
    """folder/qmt.conf, root's, with the given modes."""
    folder.mkdir(exist_ok=True)
    folder.chmod(mode)
    conf = folder / "qmt.conf"
    conf.write_text("[database]\nconnection = DSN=x\n")
    conf.chmod(file_mode)
    return conf


# -- root without an asterisk user: the config must be root's alone -------------

@as_root
def test_a_config_that_only_root_can_change_passes(tmp_path):
    conf = config_in(tmp_path / "etc")
    assert first_unsafe_name(str(conf)) is None
    assert leave_root(str(conf), user=NO_SUCH_USER) == str(conf)
    assert os.geteuid() == 0                                  # no user to become: root stays root


def group_writable_file(conf):
    conf.chmod(0o660)
    return conf


def file_of_another_user(conf):
    os.chown(conf, NOBODY.pw_uid, -1)
    return conf


def folder_writable_by_others(conf):
    conf.parent.chmod(0o777)
    return conf.parent


def folder_of_another_user(conf):
    os.chown(conf.parent, NOBODY.pw_uid, -1)
    return conf.parent


@as_root
@pytest.mark.parametrize("change", [group_writable_file, file_of_another_user, folder_writable_by_others,
                                    folder_of_another_user])
def test_a_config_another_user_could_change_is_refused_naming_the_name(tmp_path, change):
    conf = config_in(tmp_path / "etc")
    unsafe = change(conf)
    assert first_unsafe_name(str(conf)) == str(unsafe)
    with pytest.raises(PrivilegeError) as refused:
        leave_root(str(conf), user=NO_SUCH_USER)
    assert str(refused.value) == "no user %s to run as, and %s is not root's alone (owned by root, not writable " \
        "by group or others): not running as root" % (NO_SUCH_USER, unsafe)


@as_root
@pytest.mark.parametrize("mode, safe", [(0o755, True), (0o777, False), (0o1777, False)])
def test_a_missing_config_is_safe_only_where_no_one_else_may_create_it(tmp_path, mode, safe):
    folder = tmp_path / "etc"
    folder.mkdir(mode=mode)
    folder.chmod(mode)
    assert first_unsafe_name(str(folder / "qmt.conf")) == (None if safe else str(folder))


@as_root
def test_a_sticky_folder_like_tmp_passes_only_for_a_name_of_roots(tmp_path):
    sticky = tmp_path / "tmp"
    conf = config_in(sticky, mode=0o1777)
    assert first_unsafe_name(str(conf)) is None               # only its owner may replace it
    os.chown(conf, NOBODY.pw_uid, -1)
    assert first_unsafe_name(str(conf)) == str(conf)


@as_root
def test_a_link_is_judged_and_read_by_its_real_path(tmp_path):
    conf = config_in(tmp_path / "etc")
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    (open_folder / "link.conf").symlink_to(conf)
    # Read by the real path: whoever may turn the link cannot turn it after the check.
    assert leave_root(str(open_folder / "link.conf"), user=NO_SUCH_USER) == str(conf)
    unsafe = config_in(open_folder, mode=0o777)
    (tmp_path / "etc" / "link.conf").symlink_to(unsafe)
    with pytest.raises(PrivilegeError, match="%s is not root's alone" % open_folder):
        leave_root(str(tmp_path / "etc" / "link.conf"), user=NO_SUCH_USER)


@as_root
def test_a_user_with_uid_0_is_refused_before_any_change(tmp_path):
    with pytest.raises(PrivilegeError, match="user root has uid 0: qmt would still run as root"):
        leave_root(str(tmp_path / "qmt.conf"), user="root")


# -- the drop: its order, its failures, its proof ---------------------------------

def test_groups_then_gid_then_uid_each_real_effective_and_saved(monkeypatch):
    calls = []
    for name in ("setgroups", "setresgid", "setresuid"):
        monkeypatch.setattr(privileges.os, name, lambda *ids, name=name: calls.append((name, ids)))
    privileges.change_ids(101, 102, [102, 20])
    assert calls == [("setgroups", ([102, 20],)), ("setresgid", (102, 102, 102)), ("setresuid", (101, 101, 101))]


def test_a_failed_drop_is_one_line_and_goes_no_further(monkeypatch):
    calls = []

    def refuse(groups):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(privileges.os, "setgroups", refuse)
    for name in ("setresgid", "setresuid"):
        monkeypatch.setattr(privileges.os, name, lambda *ids, name=name: calls.append(name))
    with pytest.raises(PrivilegeError) as failed:
        privileges.become(NOBODY)
    assert str(failed.value) == "cannot become user nobody: Operation not permitted" and calls == []


@as_root
def test_the_proof_fails_while_root_can_be_regained():
    with pytest.raises(PrivilegeError, match="root could be regained after the drop to user root"):
        privileges.prove_dropped(0, 0, os.getgroups(), "root")


def in_child(code, env=None):
    """`code` as root in a child process (a drop cannot be undone), with
    everything it needs imported first; its JSON answer."""
    prelude = "import json, os, sys\nsys.path.insert(0, %r)\nfrom qmt import privileges\n" % AGI
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd="/",
                          env=dict(os.environ, **(env or {})), timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


REAL_DROP = """
path = privileges.leave_root("/etc/qmt-test.conf", user="nobody")

def succeeds(step, *args):
    try:
        step(*args)
        return True
    except OSError:
        return False

umask = os.umask(0)
print(json.dumps({
    "path": path, "uids": os.getresuid(), "gids": os.getresgid(), "groups": sorted(os.getgroups()),
    "regained": [succeeds(os.setuid, 0), succeeds(os.seteuid, 0), succeeds(os.setgid, 0),
                 succeeds(os.setgroups, [0])],
    "wrote_a_root_file": succeeds(open, "/etc/qmt-privilege-test", "a"),
    "home": os.environ["HOME"], "user": os.environ["USER"], "umask": umask,
    "secret": os.environ.get("ROOTS_SECRET"), "path_var": os.environ.get("PATH"),
    "again": privileges.leave_root("relative.conf", user="nobody"),
}))
"""


@as_root
def test_the_real_drop_is_complete_and_cannot_be_undone():
    seen = in_child(REAL_DROP, env={"ROOTS_SECRET": "hunter2"})
    uid, gid = NOBODY.pw_uid, NOBODY.pw_gid
    assert seen["secret"] is None and seen["path_var"] == os.environ["PATH"]   # root's secrets stay behind
    assert seen["path"] == "/etc/qmt-test.conf"
    assert (seen["uids"], seen["gids"]) == ([uid] * 3, [gid] * 3)
    assert seen["groups"] == sorted(set(os.getgrouplist("nobody", gid)))     # initgroups' list, not root's
    assert seen["regained"] == [False] * 4 and not seen["wrote_a_root_file"]
    assert not os.path.exists("/etc/qmt-privilege-test")
    assert (seen["home"], seen["user"]) == (NOBODY.pw_dir, "nobody")
    assert seen["umask"] & 0o027 == 0o027
    assert seen["again"] == "relative.conf"                   # not root: nothing to do, as for any admin


DSN_DROP = """
try:
    privileges.leave_root("/etc/qmt-test.conf", user="nobody", dsn=sys.argv[1] if len(sys.argv) > 1 else "writer")
    refused = None
except privileges.PrivilegeError as error:
    refused = str(error)
print(json.dumps({"refused": refused, "uid": os.getuid()}))
"""


@as_root
def test_a_dsn_only_root_can_read_is_named_not_silently_missing(tmp_path):
    ini = tmp_path / "odbc.ini"
    ini.write_text("[Writer]\nDriver = SQLite3\nDatabase = /nonexistent\n")
    ini.chmod(0o600)
    seen = in_child(DSN_DROP, env={"ODBCINI": str(ini)})
    assert seen["uid"] == NOBODY.pw_uid                       # refused after the drop, never as root
    assert seen["refused"] == "--dsn writer is defined in %s, which qmt cannot read: as root it runs as nobody; " \
        "define the DSN where nobody may read it (README, Security)" % ini


@as_root
def test_a_dsn_the_user_can_read_too_is_used():
    folder = tempfile.mkdtemp(prefix="qmt-odbc-")
    try:
        os.chmod(folder, 0o755)
        ini = os.path.join(folder, "odbc.ini")
        with open(ini, "w") as handle:
            handle.write("[writer]\nDriver = SQLite3\n")
        os.chmod(ini, 0o644)
        assert in_child(DSN_DROP, env={"ODBCINI": ini})["refused"] is None
    finally:
        shutil.rmtree(folder)


# -- the command: root on a machine without an asterisk user ----------------------

PLANTED_C = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(getenv("QMT_PLANTED_RAN"), "a");
    if (f) { fprintf(f, "%d\n", (int)geteuid()); fclose(f); }
}
"""


@as_root
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the planted library")
def test_roots_qmt_refuses_a_config_others_could_write_and_loads_nothing(tmp_path):
    try:
        pwd.getpwnam(privileges.ASTERISK_USER)
        pytest.skip("this machine has an asterisk user: qmt would become it (tests/e2e/test_e2e_privilege.py)")
    except KeyError:
        pass
    (tmp_path / "x.c").write_text("#include <stdlib.h>\n" + PLANTED_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "x.so"), str(tmp_path / "x.c")], check=True)
    conf = config_in(tmp_path / "shared", mode=0o777)
    conf.write_text("[database]\nconnection = Driver=%s\n" % (tmp_path / "x.so"))
    ran = tmp_path / "ran"
    done = subprocess.run([sys.executable, "-m", "qmt", "--config", str(conf), "list"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=AGI, QMT_PLANTED_RAN=str(ran)))
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr == "qmt: no user asterisk to run as, and %s is not root's alone (owned by root, not " \
        "writable by group or others): not running as root\n" % conf.parent
    assert not ran.exists(), "the library the config names ran as root"
