"""Files the agent container could have planted something at: atomic writes (a temp file beside the
target, fsync, rename); reads and appends that never block on a FIFO, never open a device, never
follow a symlink unless asked, and read at most a given number of bytes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Optional


def atomic_write(path: str, data: bytes | str, mode: int = 0o644, durable: bool = True) -> None:
    """Replace ``path`` with ``data``; on any failure the old file is intact.

    ``durable=False`` skips the fsync, for state that means nothing after a
    crash anyway (the supervisor's status under /var/run, rewritten at each change).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def temp_beside(path: str, attempts: int = 100) -> tuple[int, str]:
    """Create ``.NAME.<random>.tmp`` beside ``path`` (mode 0600, never through a symlink, never an
    existing file): (fd, its path). What ``tempfile.mkstemp`` does, without loading ``tempfile``
    (and with it ``shutil``, ``random``, ``bz2`` and ``lzma``) on the start path."""
    directory, base = os.path.split(path)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(attempts):
        name = os.path.join(directory or ".", f".{base}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.path.join(directory or ".", f".{base}.*.tmp"))


def fsync_dir(directory: str) -> None:
    """fsync a directory, so a rename done in it survives a crash."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_name(mode: int) -> str:
    """What a stat mode is, for people: "a regular file", "a FIFO", "a symlink"..."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def path_kind(path: str) -> Optional[str]:
    """``kind_name`` of ``path`` itself (a symlink is not followed); None when nothing is there.
    Other errors (EACCES…) are raised."""
    try:
        return kind_name(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


class NotRegularFile(OSError):
    """The path exists but is a directory, FIFO, device or socket (``kind`` says which)."""

    def __init__(self, path: str, kind: str):
        text = f"{path} is a directory" if kind == "a directory" else f"{path} is not a regular file ({kind})"
        super().__init__(text)
        self.path = path
        self.kind = kind


def _symlink_error(path: str) -> OSError:
    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def refusal(err: OSError) -> str:
    """Why a path was refused or could not be read, as a phrase after its name: "is a symlink (not
    followed)", "is a FIFO, not a regular file", "cannot be read: Permission denied"."""
    if isinstance(err, NotRegularFile):
        return f"is {err.kind}, not a regular file"
    if err.errno == errno.ELOOP:
        return "is a symlink (not followed)"
    if isinstance(err, FileNotFoundError):
        return "does not exist"
    return f"cannot be read: {err.strerror or err}"


def is_refusal(err: OSError) -> bool:
    """Whether ``err`` is a refused path (a symlink not followed, not a regular file), not an I/O error."""
    return isinstance(err, NotRegularFile) or err.errno == errno.ELOOP


def _precheck(path: str, follow_symlinks: bool) -> None:
    """Refuse a non-regular file before opening it: opening a device can act, a FIFO can block."""
    info = os.stat(path) if follow_symlinks else os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise _symlink_error(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(path, kind_name(info.st_mode))


def _checked(fd: int, path: str) -> os.stat_result:
    """fstat of an opened fd; closes it and raises NotRegularFile unless it is a regular file (the
    path may have been swapped between the first look and the open)."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, kind_name(info.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return info


def open_regular(path: str, *, follow_symlinks: bool = True) -> tuple[int, os.stat_result]:
    """Open a regular file for reading, never blocking: (fd, its stat); the caller closes the fd.

    Anything but a regular file raises NotRegularFile, before it is opened
    (a device is never opened) and again after (the open is non-blocking,
    so a FIFO swapped in meanwhile cannot hang the caller). With
    ``follow_symlinks=False`` a symlink at ``path`` (its last component)
    raises OSError ELOOP. Other errors are the usual OSError
    (FileNotFoundError…).
    """
    _precheck(path, follow_symlinks)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    return fd, _checked(fd, path)


def open_append(path: str, mode: int = 0o644) -> int:
    """Open (or create, with ``mode``) a regular file for appending: never through a symlink, never
    blocking on a FIFO, never a device. Raises OSError ELOOP for a symlink, NotRegularFile for
    anything else that is not a regular file."""
    try:
        _precheck(path, follow_symlinks=False)
    except FileNotFoundError:
        pass  # created below (O_EXCL is not used: another writer may create it first)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as err:
        if err.errno == errno.ENXIO:  # a FIFO with no reader, swapped in after the first look
            raise NotRegularFile(path, "a FIFO") from err
        raise
    _checked(fd, path)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from ``fd``'s current offset."""
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular(path: str, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """Read at most ``limit`` bytes of a regular file, never blocking (see ``open_regular``)."""
    fd, _ = open_regular(path, follow_symlinks=follow_symlinks)
    try:
        return read_fd(fd, limit)
    finally:
        os.close(fd)
