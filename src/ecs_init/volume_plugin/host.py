"""Side effects on the host: mount directories, mount(8)/umount(8), the
kernel's mount table, and the JSON state file."""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import Any

from ecs_init.core.cmd import Runner
from ecs_init.core.errors import CommandError
from ecs_init.core.fsutil import NotRegularFile, atomic_write, fsync_dir, read_regular
from ecs_init.volume_plugin.drivers import VolumeError, not_mounted
from ecs_init.volume_plugin.state import encode_state

log = logging.getLogger(__name__)

MOUNT_TIMEOUT = 120.0
MOUNTINFO = "/proc/self/mountinfo"
# Thousands of volumes fit in far less; anything larger is not a state file
# we wrote, and parsing it could take unbounded memory.
MAX_STATE_BYTES = 4 * 1024 * 1024


def _unescape(field: str) -> str:
    """Undo the kernel's octal escapes (``\\040`` for a space, ...)."""
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo_text: str) -> set[str]:
    points = set()
    for line in mountinfo_text.splitlines():
        parts = line.split(" ")
        if len(parts) > 4:
            points.add(_unescape(parts[4]))
    return points


class HostMounter:
    def __init__(self, runner: Runner | None = None, mountinfo: str = MOUNTINFO) -> None:
        self.runner = runner or Runner()
        self.mountinfo = mountinfo

    def prepare(self, path: str) -> None:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as err:
            raise VolumeError(f"cannot create {path}: {err.strerror or err}") from err
        if not os.path.isdir(path):
            raise VolumeError(f"{path} is not a directory")

    def release(self, path: str) -> None:
        try:
            os.rmdir(path)
        except OSError as err:
            log.debug("leaving %s in place: %s", path, err)

    def run(self, argv: list[str]) -> None:
        try:
            proc = self.runner.run(argv, check=False, timeout=MOUNT_TIMEOUT)
        except CommandError as err:
            raise VolumeError(str(err)) from err
        if proc.returncode == 0:
            return
        out = (proc.stderr or proc.stdout or "").strip().replace("\n", " | ")
        if argv[0] == "umount" and not_mounted(out):
            log.info("%s was not mounted (%s)", argv[-1], out)
            return
        raise VolumeError(f"{' '.join(argv)}: exit {proc.returncode}: {out}")

    def is_mounted(self, path: str) -> bool:
        try:
            with open(self.mountinfo, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
        except OSError as err:
            log.warning("cannot read %s: %s", self.mountinfo, err)
            return os.path.ismount(path)
        return os.path.normpath(path) in mount_points(text)


class StateFileError(Exception):
    """The state file exists but cannot be used: a symlink, a FIFO or other
    special file, a directory, too large, unreadable."""


class JsonStateFile:
    """The state file at ``path``: read without following a symlink or
    blocking on a FIFO, size-capped; written atomically (temp file, rename,
    directory fsync; mode 0600)."""

    def __init__(self, path: str, max_bytes: int = MAX_STATE_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def save(self, doc: dict[str, Any]) -> None:
        atomic_write(self.path, encode_state(doc), 0o600)
        # The new state is in place; a failed directory sync only weakens
        # its durability across a crash, so it is logged, not undone.
        try:
            fsync_dir(os.path.dirname(self.path))
        except OSError as err:
            log.warning("cannot sync directory of %s: %s", self.path, err.strerror or err)

    def read(self) -> bytes | None:
        """The file's bytes, or None when there is none; StateFileError when
        it is there but unusable."""
        try:
            data = read_regular(self.path, self.max_bytes + 1, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except NotRegularFile as err:
            raise StateFileError(str(err).replace(self.path + " ", "", 1)) from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise StateFileError("is a symbolic link") from None
            raise StateFileError(f"cannot be read: {err.strerror or err}") from None
        if len(data) > self.max_bytes:
            raise StateFileError(f"is larger than {self.max_bytes} bytes")
        return data

    def quarantine(self, reason: str) -> str | None:
        """Move the file aside (``<path>.corrupt-<time>``; a symlink is moved,
        never followed) so the next save keeps the evidence; one log line.
        Returns the new name, or None when it could not be moved."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = f"{self.path}.corrupt-{stamp}"
        n = 1
        while os.path.lexists(aside):
            n += 1
            aside = f"{self.path}.corrupt-{stamp}.{n}"
        try:
            os.rename(self.path, aside)
        except OSError as err:
            log.error(
                "volume plugin state %s %s; cannot move it aside (%s); starting with no volumes",
                self.path,
                reason,
                err.strerror or err,
            )
            return None
        log.error("volume plugin state %s %s; moved it to %s; starting with no volumes", self.path, reason, aside)
        return aside
