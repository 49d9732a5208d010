"""Atomic file writes: write to a temp file beside the target, fsync, rename."""

from __future__ import annotations

import os
import stat


def atomic_write(path: str, data: bytes | str, mode: int = 0o644, durable: bool = True) -> None:
    """Replace ``path`` with ``data``; on any failure the old file is intact.

    ``durable=False`` skips the fsync, for state that means nothing after a
    crash anyway (the supervisor's status under /var/run, rewritten at each change).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    import tempfile  # here, not at the top: actions that never write (stop) need not load it

    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
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


def fsync_dir(directory: str) -> None:
    """fsync a directory, so a rename done in it survives a crash."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NotRegularFile(OSError):
    """The path exists but is a directory, FIFO, device or socket."""


def open_regular(path: str, *, follow_symlinks: bool = True) -> tuple[int, os.stat_result]:
    """Open a regular file for reading, never blocking: (fd, its stat); the caller closes the fd.

    The open is non-blocking, so a FIFO planted where a file is expected
    cannot hang the caller; anything but a regular file raises
    NotRegularFile. With ``follow_symlinks=False`` a symlink at ``path``
    (its last component) raises OSError ELOOP. Other errors are the usual
    OSError (FileNotFoundError…).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise NotRegularFile(f"{path} is {kind}")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


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
