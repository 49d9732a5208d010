"""Which log records go into a support bundle: the newest, and only those newer than ``--since``.

Pure except for ``read_tail`` and ``log_files``, which read files the safe
way: never through a symlink (``O_NOFOLLOW``), never blocking on a FIFO
(``O_NONBLOCK``), regular files only, and only the last ``limit`` bytes of
a file however large it is.

A record's time is the first RFC 3339 timestamp near the start of its line
(``level=info time=2026-11-27T21:36:33Z msg=...`` as this program and the
agent write, ``2026-11-27T21:36:33Z [INFO] ...`` as older agents do, or
``{"time":"..."}`` for JSON logs). A line without one (a continuation of a
multi-line record) goes with the record before it; lines before the first
timestamp count as new when the file was modified within the window.
"""

from __future__ import annotations

import calendar
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Optional

from ecs_init.core.fsutil import open_regular, read_fd

TIME_SEARCH_BYTES = 160  # a record's timestamp is looked for this far into its line
_TIME = re.compile(rb"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,]\d+)?(Z|[+-]\d\d:?\d\d)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> Optional[float]:
    """``24h``, ``90m``, ``1h30m``, ``2d``, ``45s`` as seconds; None when it is not such a duration or not > 0."""
    value = text.strip().lower()
    if not value or len(value) > 32:
        return None
    total = 0.0
    position = 0
    for match in _DURATION.finditer(value):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or total <= 0:
        return None
    return total


def line_time(line: bytes) -> Optional[float]:
    """Epoch seconds of the first timestamp near the start of ``line`` (UTC when it has no zone)."""
    match = _TIME.search(line, 0, TIME_SEARCH_BYTES)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    zone = match.group(7)
    if zone and zone not in (b"Z",):
        digits = zone[1:].replace(b":", b"")
        offset = int(digits[:2]) * 3600 + int(digits[2:4]) * 60
        epoch -= offset if zone[:1] == b"+" else -offset
    return float(epoch)


def select_since(data: bytes, cutoff: float, mtime: float) -> bytes:
    """The lines of ``data`` whose record is at or after ``cutoff`` (see the module docstring).

    UTC timestamps (``Z`` or no zone) are compared as text with the cutoff,
    which orders them the same way and costs a fraction of parsing each one.
    """
    cut = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cutoff)).encode("ascii")
    keep = mtime >= cutoff
    out: list[bytes] = []
    for line in data.splitlines(keepends=True):
        match = _TIME.search(line, 0, TIME_SEARCH_BYTES)
        if match is not None:
            if match.group(7) in (None, b"Z"):
                stamp = match.group(0)
                keep = stamp[:10] + b"T" + stamp[11:19] >= cut
            else:
                when = line_time(line)
                keep = when is not None and when >= cutoff
        if keep:
            out.append(line)
    return b"".join(out)


def newest_lines(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes from the end of ``data``, starting at a line boundary."""
    if len(data) <= limit:
        return data
    tail = data[len(data) - limit :]
    cut = tail.find(b"\n")
    return tail[cut + 1 :] if cut >= 0 else b""


@dataclass
class Tail:
    data: bytes
    size: int  # the whole file's size
    mtime: float
    truncated: bool  # older bytes were left out


def read_tail(path: str, limit: int) -> Tail:
    """The last ``limit`` bytes of a regular file (from a line boundary when cut).

    OSError for a missing file, a symlink (ELOOP) or anything that is not a
    regular file.
    """
    fd, info = open_regular(path, follow_symlinks=False)
    try:
        start = max(0, info.st_size - limit)
        if start:
            os.lseek(fd, start, os.SEEK_SET)
        data = read_fd(fd, limit)
    finally:
        os.close(fd)
    if start:
        cut = data.find(b"\n")
        data = data[cut + 1 :] if cut >= 0 else b""
    return Tail(data, info.st_size, info.st_mtime, bool(start))


def log_files(directory: str, base: str) -> list[tuple[str, float]]:
    """``base`` and its rotations (``base.*``) in ``directory``, newest first: (path, mtime).

    Symlinks and anything but regular files are listed too (with mtime 0):
    reading them fails, and the bundle's manifest says why.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found: list[tuple[str, float]] = []
    for name in names:
        if name != base and not name.startswith(base + "."):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        found.append((path, info.st_mtime if stat.S_ISREG(info.st_mode) else 0.0))
    found.sort(key=lambda item: (item[0] != os.path.join(directory, base), -item[1], item[0]))
    return found
