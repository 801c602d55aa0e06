"""Files root reads or writes where the asterisk user could plant something.

/etc/asterisk, /var/lib/asterisk and agi-bin belong to the asterisk user
(Debian, FreePBX): it can put a link, a hard link, a FIFO or a folder where
root is about to read or write. So root never reads, writes, chmods or
chowns by a file's name: every operation walks to the folder as given, one
name at a time without following links (a folder link is followed only when
only root could have made it), every folder owned by root or the trusted
owner and none writable by all; it refuses a target that is a link, has
other hard links, is not a regular file (opened non-blocking, so a FIFO
never stalls the run) or belongs to someone else; it changes mode and owner
through an open file, and replaces contents whole: a new file beside the old
one, renamed over it, so that a failure half-way leaves the old file as it
was.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .report import InstallError

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
MAX_LINKS = 40
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket",
         stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}


class Refused(Exception):
    """The path is one root must not touch; the text says why."""


@dataclass(frozen=True)
class Ownership:
    """Mode and owner a file gets; None keeps what the file has (a new one: 644 root:root)."""
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def mode_and_owner(st: os.stat_result) -> str:
    """As `stat -c '%a %U:%G'` prints it: "640 root:asterisk"."""
    return f"{stat.S_IMODE(st.st_mode):o} {user_name(st.st_uid)}:{group_name(st.st_gid)}"


def ownership(mode: int, user: str = "", group: str = "") -> Ownership:
    """Mode and owner by name ("" keeps the file's)."""
    return Ownership(mode, pwd.getpwnam(user).pw_uid if user else None, grp.getgrnam(group).gr_gid if group else None)


def path_names(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def made_by_root(link: os.stat_result, parent: os.stat_result) -> bool:
    """Only root could have made this link (Debian's /var/run -> /run, /lib -> usr/lib):
    it is root's, in a folder of root's that nobody else may write."""
    return link.st_uid == 0 and parent.st_uid == 0 and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class SafeFiles:
    """The file operations of the installer, for files of root or of one trusted owner.

    top is the folder every walk starts from and where absolute link targets
    lead ("/" on a PBX; a test's own folder in the unit tests)."""

    def __init__(self, owner_uid: int, owner_name: str, top: str = "/") -> None:
        self.trusted = (0, owner_uid)
        self.owner_name = owner_name
        self.top = top

    # -- the operations ------------------------------------------------------
    def check(self, path: str) -> None:
        """Refuse path now if it is unsafe; a missing file or folder is fine."""
        with self._guard("check", path):
            folder = self._folder_if_there(path)
            if folder is not None:
                with _closing(folder):
                    self._existing(folder, path)

    def status(self, path: str) -> os.stat_result | None:
        """path's stat (a vetted regular file), None when it or its folder is missing."""
        with self._guard("check", path):
            folder = self._folder_if_there(path)
            if folder is None:
                return None
            with _closing(folder):
                return self._existing(folder, path)

    def read(self, path: str) -> bytes:
        """path's bytes; a missing file reads as empty."""
        with self._guard("read", path):
            folder = self._folder_if_there(path)
            if folder is None:
                return b""
            with _closing(folder):
                if self._existing(folder, path) is None:
                    return b""
                fd, _ = self._open_existing(folder, path)
                with os.fdopen(fd, "rb") as handle:
                    return handle.read()

    def read_text(self, path: str) -> str:
        return self.read(path).decode("utf-8", "surrogateescape")

    def write(self, path: str, data: bytes, want: Ownership = Ownership()) -> None:
        """data becomes path's contents, keeping its mode and owner unless given."""
        with self._guard("write", path):
            folder = self._open_folder(os.path.dirname(path))
            with _closing(folder):
                self._replace(folder, path, data, self._wanted(self._existing(folder, path), want))

    def append(self, path: str, data: bytes, want: Ownership = Ownership()) -> None:
        """data added to path (its last line ended first); a missing file is made."""
        with self._guard("append", path):
            folder = self._open_folder(os.path.dirname(path))
            with _closing(folder):
                st = self._existing(folder, path)
                if st is not None:
                    fd, st = self._open_existing(folder, path)
                    with os.fdopen(fd, "rb") as handle:
                        data = with_line_ended(handle.read()) + data
                self._replace(folder, path, data, self._wanted(st, want))

    def chmod(self, path: str, want: Ownership) -> None:
        """Set path's mode and owner (those not given kept), through the open file."""
        with self._guard("chmod", path):
            folder = self._open_folder(os.path.dirname(path))
            with _closing(folder):
                fd, st = self._open_existing(folder, path)
                with _closing(fd):
                    mode, uid, gid = self._wanted(st, want)
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, mode)

    def remove(self, path: str) -> None:
        """Remove path, if there."""
        with self._guard("remove", path):
            folder = self._folder_if_there(path)
            if folder is not None:
                with _closing(folder):
                    if self._existing(folder, path) is not None:
                        os.unlink(os.path.basename(path), dir_fd=folder)

    def mkdir(self, path: str, want: Ownership = Ownership()) -> None:
        """The folder path and those on the way: new ones 755 root:root, path itself as given."""
        with self._guard("mkdir", path):
            mode = 0o755 if want.mode is None else want.mode
            last = (mode, want.uid or 0, want.gid or 0)
            os.close(self._open_folder(path, create=last))

    # -- the walk --------------------------------------------------------------
    @contextmanager
    def _guard(self, op: str, path: str) -> Iterator[None]:
        """Every failure becomes the run's one line, as install.sh words it."""
        try:
            yield
        except Refused as exc:
            raise InstallError(
                f"refusing to touch {path}: {exc}; install.sh reads and writes only regular files of root or"
                f" {self.owner_name},"
                " never through a link another user could have made") from None
        except OSError as exc:
            raise InstallError(f"could not {op} {path} ({exc.strerror or exc}): it is left as it was") from None
        except InstallError:
            raise
        except Exception as exc:
            raise InstallError(f"could not {op} {path}: {exc}") from None

    def _vet_folder(self, st: os.stat_result, where: str) -> None:
        if st.st_uid not in self.trusted:
            raise Refused(f"the folder {where} belongs to {user_name(st.st_uid)}")
        if st.st_mode & stat.S_IWOTH:
            raise Refused(f"the folder {where} is writable by anyone")

    def _folder_if_there(self, path: str) -> int | None:
        """path's folder, None when it is missing: nothing there to refuse, read or remove."""
        try:
            return self._open_folder(os.path.dirname(path))
        except FileNotFoundError:
            return None

    def _open_folder(self, where_to: str, create: tuple[int, int, int] | None = None) -> int:
        """The folder where_to, walked from the top as given (no realpath: it would
        follow a planted link). create=(mode, uid, gid): make what is missing, the
        folders on the way 755 root:root."""
        todo, links = path_names(where_to)[::-1], 0      # a stack: a followed link pushes its target
        fd, where = os.open(self.top, FOLDER_FLAGS), "/"
        try:
            self._vet_folder(os.fstat(fd), where)
            while todo:
                part = todo.pop()
                here = os.path.normpath(os.path.join(where, part))
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if create is None:
                        raise
                    _make_folder(fd, part, *(create if not todo else (0o755, 0, 0)))
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(part, dir_fd=fd)
                    if not made_by_root(st, os.fstat(fd)):
                        raise Refused(f"the folder {here} is a symbolic link to {target}")
                    links += 1
                    if links > MAX_LINKS:
                        raise Refused(f"the folder {here}: too many links")
                    todo.extend(path_names(target)[::-1])
                    if target.startswith("/"):
                        os.close(fd)
                        fd, where = os.open(self.top, FOLDER_FLAGS), "/"
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise Refused(f"{here} is not a folder")
                sub = os.open(part, FOLDER_FLAGS, dir_fd=fd)
                os.close(fd)
                fd, where = sub, here
                self._vet_folder(os.fstat(fd), where)
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- the file in its folder -------------------------------------------------
    def _vet(self, st: os.stat_result, folder: int, name: str) -> None:
        if stat.S_ISLNK(st.st_mode):
            raise Refused(f"it is a symbolic link to {os.readlink(name, dir_fd=folder)}")
        if not stat.S_ISREG(st.st_mode):
            raise Refused("it is not a regular file but " + KINDS.get(stat.S_IFMT(st.st_mode), "something else"))
        if st.st_nlink != 1:
            raise Refused(f"it has {st.st_nlink} hard links")
        if st.st_uid not in self.trusted:
            raise Refused(f"it belongs to {user_name(st.st_uid)}")

    def _existing(self, folder: int, path: str) -> os.stat_result | None:
        name = os.path.basename(path)
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return None
        self._vet(st, folder, name)
        return st

    def _open_existing(self, folder: int, path: str) -> tuple[int, os.stat_result]:
        """The file opened without following a link or blocking, checked again once open."""
        st = self._existing(folder, path)
        if st is None:
            raise Refused("it does not exist")
        name = os.path.basename(path)
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        try:
            now = os.fstat(fd)
            self._vet(now, folder, name)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise Refused("it was replaced while install.sh looked at it")
        except BaseException:
            os.close(fd)
            raise
        return fd, now

    @staticmethod
    def _wanted(st: os.stat_result | None, want: Ownership) -> tuple[int, int, int]:
        """What is given, the rest as the file is (a new one: 644 root:root)."""
        mode, uid, gid = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) if st else (0o644, 0, 0)
        return (mode if want.mode is None else want.mode, uid if want.uid is None else want.uid,
                gid if want.gid is None else want.gid)

    @staticmethod
    def _replace(folder: int, path: str, data: bytes, owned: tuple[int, int, int]) -> None:
        """A new file beside the old one, renamed over it: never a file cut short."""
        name = os.path.basename(path)
        while True:
            tmp = f".{name}.qmt-{os.urandom(4).hex()}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                mode, uid, gid = owned
                os.fchown(handle.fileno(), uid, gid)
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.rename(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            os.unlink(tmp, dir_fd=folder)
            raise
        os.fsync(folder)


def with_line_ended(text: bytes) -> bytes:
    """text with its last line ended, so that what is added starts a line."""
    return text + b"\n" if text and not text.endswith(b"\n") else text


def _make_folder(parent: int, name: str, mode: int, uid: int, gid: int) -> None:
    os.mkdir(name, 0o700, dir_fd=parent)
    sub = os.open(name, FOLDER_FLAGS, dir_fd=parent)
    with _closing(sub):
        os.fchown(sub, uid, gid)
        os.fchmod(sub, mode)


@contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)
