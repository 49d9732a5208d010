"""Side effects on the host: mount directories, mount(8)/umount(8), the
kernel's mount table, and the JSON state file."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from ecs_init.cmd import Runner
from ecs_init.errors import CommandError
from ecs_init.fsutil import atomic_write
from ecs_init.volume_plugin.drivers import VolumeError

log = logging.getLogger(__name__)

MOUNT_TIMEOUT = 120.0
MOUNTINFO = "/proc/self/mountinfo"
MAX_STATE_BYTES = 16 * 1024 * 1024


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
            self.runner.run(argv, timeout=MOUNT_TIMEOUT)
        except CommandError as err:
            raise VolumeError(str(err)) from err

    def is_mounted(self, path: str) -> bool:
        try:
            with open(self.mountinfo, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
        except OSError as err:
            log.warning("cannot read %s: %s", self.mountinfo, err)
            return os.path.ismount(path)
        return os.path.normpath(path) in mount_points(text)


class JsonStateFile:
    """The state document at ``path``, written atomically (mode 0600)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def save(self, doc: dict[str, Any]) -> None:
        atomic_write(self.path, json.dumps(doc, indent=2, sort_keys=True) + "\n", 0o600)

    def load(self) -> Any:
        """The parsed document, or None when there is none. An unreadable or
        corrupt file is moved aside (``<path>.corrupt-<time>``) so the next
        save does not destroy the evidence."""
        try:
            size = os.path.getsize(self.path)
            if size > MAX_STATE_BYTES:
                raise ValueError(f"{size} bytes is too large")
            with open(self.path, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            log.error("volume plugin state %s is unreadable (%s); moving it to %s", self.path, err, aside)
            try:
                os.replace(self.path, aside)
            except OSError as move_err:
                log.error("cannot move %s aside: %s", self.path, move_err)
            return None
