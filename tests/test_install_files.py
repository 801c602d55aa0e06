"""qmt.install.files: root reads and writes only regular files of root or the
trusted owner, never through something another user planted (run as root,
so that files of other owners can be made with os.chown)."""

import os
import stat

import pytest

from qmt.install.files import Ownership, SafeFiles
from qmt.install.report import InstallError

OWNER = 4242          # stands for the asterisk user
STRANGER = 12345


@pytest.fixture
def top(tmp_path):
    """A private top folder, root's, 755 (the real "/" of the walk)."""
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.fixture
def files(top):
    return SafeFiles(OWNER, "asterisk", top=str(top))


@pytest.fixture
def etc(top):
    """/etc/asterisk as Debian has it: the asterisk user's folder."""
    folder = top / "etc" / "asterisk"
    folder.mkdir(parents=True)
    os.chown(folder, OWNER, OWNER)
    return folder


def refused(action, *words):
    with pytest.raises(InstallError) as caught:
        action()
    text = str(caught.value)
    assert text.startswith("refusing to touch "), text
    for word in words:
        assert word in text, text
    return text


def test_a_missing_file_reads_as_empty_and_checks_fine(files):
    assert files.read("/etc/asterisk/none.conf") == b""
    files.check("/etc/asterisk/none.conf")
    assert files.status("/etc/asterisk/none.conf") is None


def test_write_then_read_round_trips_and_a_new_file_is_644_root(files, etc):
    files.write("/etc/asterisk/new.conf", b"[x]\nk = v\n")
    assert files.read("/etc/asterisk/new.conf") == b"[x]\nk = v\n"
    st = os.stat(etc / "new.conf")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 0, 0)


def test_write_keeps_the_files_owner_and_mode_and_replaces_it_whole(files, etc):
    target = etc / "extensions_custom.conf"
    target.write_text("; custom\n")
    os.chown(target, OWNER, OWNER)
    target.chmod(0o664)
    inode = target.stat().st_ino
    files.write("/etc/asterisk/extensions_custom.conf", b"; custom\n#include x\n")
    st = target.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink) == (0o664, OWNER, OWNER, 1)
    assert st.st_ino != inode                       # a new file renamed over the old one
    assert [p.name for p in etc.iterdir()] == ["extensions_custom.conf"]    # no scratch file left


def test_given_mode_and_owner_win(files, etc):
    files.write("/etc/asterisk/q.conf", b"x", Ownership(0o640, 0, OWNER))
    st = (etc / "q.conf").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, OWNER)


def test_append_ends_the_last_line_first(files, etc):
    (etc / "extensions.conf").write_bytes(b"[default]\nexten => 1,1,NoOp()")
    files.append("/etc/asterisk/extensions.conf", b"#include x\n")
    assert (etc / "extensions.conf").read_bytes() == b"[default]\nexten => 1,1,NoOp()\n#include x\n"


def test_append_to_a_missing_file_makes_it(files, etc):
    files.append("/etc/asterisk/manager.conf", b"#include y\n")
    assert (etc / "manager.conf").read_bytes() == b"#include y\n"


def test_a_symlink_planted_where_a_file_goes_is_refused_and_its_target_untouched(files, etc, top):
    secret = top / "shadow"
    secret.write_text("root:secret\n")
    os.symlink(secret, etc / "extensions_custom.conf")
    for action in (lambda: files.read("/etc/asterisk/extensions_custom.conf"),
                   lambda: files.write("/etc/asterisk/extensions_custom.conf", b"x"),
                   lambda: files.append("/etc/asterisk/extensions_custom.conf", b"x"),
                   lambda: files.chmod("/etc/asterisk/extensions_custom.conf", Ownership(0o666)),
                   lambda: files.check("/etc/asterisk/extensions_custom.conf")):
        refused(action, "it is a symbolic link to " + str(secret), "never through a link")
    assert secret.read_text() == "root:secret\n" and stat.S_IMODE(secret.stat().st_mode) != 0o666


def test_a_fifo_is_refused_without_blocking(files, etc):
    os.mkfifo(etc / "manager.conf", 0o600)
    refused(lambda: files.read("/etc/asterisk/manager.conf"), "it is not a regular file but a FIFO")


def test_a_folder_where_a_file_belongs_is_refused(files, etc):
    (etc / "queue_mobile_toggle.conf").mkdir()
    refused(lambda: files.check("/etc/asterisk/queue_mobile_toggle.conf"), "it is not a regular file but a folder")


def test_a_device_is_refused(files, etc):
    os.mknod(etc / "odbc.ini", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    refused(lambda: files.read("/etc/asterisk/odbc.ini"), "it is not a regular file but a device")


def test_a_file_of_another_user_is_refused(files, etc):
    (etc / "manager.conf").write_text("[general]\n")
    os.chown(etc / "manager.conf", STRANGER, STRANGER)
    refused(lambda: files.read("/etc/asterisk/manager.conf"), "it belongs to 12345")


def test_a_hard_link_is_refused(files, etc, top):
    (top / "elsewhere").write_text("x")
    os.link(top / "elsewhere", etc / "extensions.conf")
    refused(lambda: files.write("/etc/asterisk/extensions.conf", b"y"), "it has 2 hard links")
    assert (top / "elsewhere").read_text() == "x"


def test_a_folder_writable_by_anyone_is_refused(files, top):
    shared = top / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    refused(lambda: files.write("/tmp/x.conf", b"x"), "the folder /tmp is writable by anyone")
    assert not (shared / "x.conf").exists()


def test_a_folder_of_another_user_is_refused(files, top):
    theirs = top / "srv"
    theirs.mkdir()
    os.chown(theirs, STRANGER, STRANGER)
    refused(lambda: files.read("/srv/agi.py"), "the folder /srv belongs to 12345")


def test_a_folder_link_the_owner_could_plant_is_refused(files, etc, top):
    (top / "apt").mkdir()
    os.symlink(top / "apt", etc / "manager.d")
    refused(lambda: files.write("/etc/asterisk/manager.d/queue_mobile_toggle.conf", b"x"),
            "the folder /etc/asterisk/manager.d is a symbolic link to")
    assert list((top / "apt").iterdir()) == []


def test_a_folder_link_only_root_could_make_is_followed(files, top):
    (top / "usr" / "lib").mkdir(parents=True)
    os.symlink("usr/lib", top / "lib")          # as merged /usr has it: root's, in a root-only folder
    files.write("/lib/x.conf", b"x")
    assert (top / "usr" / "lib" / "x.conf").read_bytes() == b"x"


def test_an_absolute_folder_link_leads_from_the_top(files, top):
    (top / "run").mkdir()
    os.symlink("/run", top / "var_run")
    files.write("/var_run/x", b"y")
    assert (top / "run" / "x").read_bytes() == b"y"


def test_chmod_sets_mode_and_owner_through_the_open_file(files, etc):
    (etc / "q.conf").write_text("x")
    (etc / "q.conf").chmod(0o644)
    files.chmod("/etc/asterisk/q.conf", Ownership(0o640, 0, OWNER))
    st = (etc / "q.conf").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, OWNER)


def test_remove_removes_a_file_and_ignores_a_missing_one(files, etc):
    (etc / "gone.conf").write_text("x")
    files.remove("/etc/asterisk/gone.conf")
    files.remove("/etc/asterisk/gone.conf")
    files.remove("/nowhere/at/all")
    assert not (etc / "gone.conf").exists()


def test_remove_refuses_a_link_and_leaves_it(files, etc, top):
    (top / "keep").write_text("x")
    os.symlink(top / "keep", etc / "link.conf")
    refused(lambda: files.remove("/etc/asterisk/link.conf"), "symbolic link")
    assert (etc / "link.conf").is_symlink()


def test_mkdir_makes_the_way_755_root_and_the_last_as_given(files, top):
    files.mkdir("/var/lib/qmt", Ownership(0o750, 0, OWNER))
    way, last = (top / "var").stat(), (top / "var" / "lib" / "qmt").stat()
    assert (stat.S_IMODE(way.st_mode), way.st_uid) == (0o755, 0)
    assert (stat.S_IMODE(last.st_mode), last.st_uid, last.st_gid) == (0o750, 0, OWNER)


def test_a_write_into_a_missing_folder_fails_with_one_line(files):
    with pytest.raises(InstallError) as caught:
        files.write("/etc/nowhere/x.conf", b"x")
    assert str(caught.value).startswith("could not write /etc/nowhere/x.conf (No such file or directory)")
