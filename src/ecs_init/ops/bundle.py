"""A ``.tar.gz`` written so that it never exceeds its size limit and is never seen half-written.

The archive is written to a temporary file (mode 0600) beside its final
name and renamed over it only when complete, so a crash, a full disk or an
interrupt leaves no partial bundle behind. Before each member the gzip
stream is flushed and the compressed size so far is known exactly; a member
gets at most the room left (less a reserve for the manifest and the end of
the archive), counted as *uncompressed* bytes, which compressed data never
exceeds by more than the reserve covers. So the finished file is at most
``limit`` bytes, whatever the members compress to.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
import time
from typing import Optional

from ecs_init.core.fsutil import fsync_dir
from ecs_init.ops.logsel import newest_lines

MB = 1000 * 1000
DEFAULT_LIMIT = 50 * MB
RESERVE = 2 * 1024 * 1024  # bytes kept for the manifest, tar headers and the gzip trailer
MIN_MEMBER = 4096  # a member that would get less room than this is left out, not cut to nothing


class Bundle:
    """``with Bundle(path, "ecs-support-host-time") as b: b.add(...); b.commit(manifest)``."""

    def __init__(self, path: str, root: str, limit: int = DEFAULT_LIMIT, now: Optional[float] = None) -> None:
        self.path = path
        self.root = root
        self.limit = limit
        self.now = time.time() if now is None else now
        directory = os.path.dirname(os.path.abspath(path))
        fd, self.temp = tempfile.mkstemp(prefix=".ecs-support-", suffix=".tmp", dir=directory)  # mode 0600
        self._raw = os.fdopen(fd, "wb")
        self._gzip = gzip.GzipFile(filename="", fileobj=self._raw, mode="wb", compresslevel=6, mtime=int(self.now))
        self._tar = tarfile.open(fileobj=self._gzip, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - see commit
        self._done = False

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()

    def room(self) -> int:
        """Uncompressed bytes the next member may have (the limit, less what is written and the reserve)."""
        self._gzip.flush()
        return max(0, self.limit - self._raw.tell() - RESERVE)

    def add(self, name: str, data: bytes, keep_newest: bool = True) -> tuple[int, str]:
        """Add ``data`` as ``<root>/<name>``; return (bytes stored, "" or why it was cut or left out).

        When ``data`` does not fit, the newest lines are kept (``keep_newest``)
        or the first bytes; a member that would get under MIN_MEMBER bytes is
        left out (0 bytes).
        """
        room = self.room()
        note = ""
        if len(data) > room:
            if room < MIN_MEMBER:
                return 0, f"left out: the bundle reached its {self.limit // MB} MB limit"
            data = newest_lines(data, room) if keep_newest else data[:room]
            note = f"cut to {len(data)} bytes to keep the bundle under {self.limit // MB} MB"
        self._member(name, data)
        return len(data), note

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"{self.root}/{name}")
        info.size = len(data)
        info.mtime = int(self.now)
        info.mode = 0o600
        info.uname = info.gname = "root"
        self._tar.addfile(info, io.BytesIO(data))

    def commit(self, manifest: bytes) -> int:
        """Add the manifest, finish the archive, move it into place; return its size."""
        self._member("manifest.json", manifest)
        self._tar.close()
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        size = self._raw.tell()
        self._raw.close()
        os.chmod(self.temp, 0o600)
        os.replace(self.temp, self.path)
        self._done = True
        try:
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            pass
        return size

    def abort(self) -> None:
        """Drop the partial archive."""
        self._done = True
        for closer in (self._tar.close, self._gzip.close, self._raw.close):
            try:
                closer()
            except (OSError, ValueError, EOFError):
                pass
        try:
            os.unlink(self.temp)
        except OSError:
            pass
