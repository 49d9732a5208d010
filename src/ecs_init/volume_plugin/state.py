"""The volume registry: volumes, mount counts per mount ID, the state document.

Pure logic. Everything that touches the host -- creating directories,
mount(8)/umount(8), asking whether a path is mounted, writing the state
file -- goes through the injected ``Mounter`` and ``saver`` so unit tests
can pass fakes.

The state document is the Go plugin's on-disk format (SPEC §13), so either
plugin can take over from the other::

    {"volumes": {"<name>": {"type": "efs", "path": "/var/lib/ecs/volumes/<name>",
                            "options": {"type": "efs", "device": "fs-1:/", "o": "tls"},
                            "createdAt": "2026-01-02T03:04:05.123456789Z",
                            "mounts": {"<mount ID>": 2}}}}

Empty fields are left out (Go's ``omitempty``). ``mounts`` counts how many
times Docker mounted the volume for each ID; a count of 0 (or null) read
back is taken as 1, as the Go plugin does. The format this plugin wrote
before (``{"version": 1, "volumes": [...]}``) is still read, once, and the
caller rewrites it in the Go format.

Consistency rule: a request either fully happens (host and saved state
agree) or returns ``VolumeError`` with the in-memory registry unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ecs_init.volume_plugin.drivers import (
    VolumeError,
    check_name,
    driver_for,
    mount_argv,
)

log = logging.getLogger(__name__)

Saver = Callable[[dict[str, Any]], None]

# Counts above this are not counts (a 64-bit Go int would overflow first).
MAX_MOUNT_COUNT = 2**31 - 1


class Mounter(Protocol):
    def prepare(self, path: str) -> None:
        """Create the mount directory (mode 0700) if it is missing."""

    def release(self, path: str) -> None:
        """Best effort: remove the mount directory if it is empty."""

    def run(self, argv: list[str]) -> None:
        """Run mount/umount; raise ``VolumeError`` on failure. An umount of a
        path that is not mounted succeeds."""

    def is_mounted(self, path: str) -> bool:
        """Whether ``path`` is a mount point now."""


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: nanoseconds, trailing zeros dropped."""
    secs, frac = divmod(ns, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def utc_now() -> str:
    return rfc3339_nano(time.time_ns())


@dataclass
class Volume:
    name: str
    type: str
    path: str
    options: dict[str, str]
    created_at: str
    mounts: dict[str, int] = field(default_factory=dict)

    @property
    def mounted(self) -> bool:
        """Mounted on the host while any mount ID holds it."""
        return bool(self.mounts)

    @property
    def users(self) -> int:
        return sum(self.mounts.values())

    def add_mount(self, mount_id: str) -> None:
        self.mounts[mount_id] = self.mounts.get(mount_id, 0) + 1

    def remove_mount(self, mount_id: str) -> bool:
        """One unmount for ``mount_id``; False when it holds no mount."""
        count = self.mounts.get(mount_id)
        if count is None:
            return False
        if count <= 1:
            del self.mounts[mount_id]
        else:
            self.mounts[mount_id] = count - 1
        return True

    def to_json(self) -> dict[str, Any]:
        """The Go plugin's ``VolumeInfo``: fields in its order, empty ones left out."""
        out: dict[str, Any] = {}
        if self.type:
            out["type"] = self.type
        if self.path:
            out["path"] = self.path
        if self.options:
            out["options"] = dict(sorted(self.options.items()))
        if self.created_at:
            out["createdAt"] = self.created_at
        if self.mounts:
            out["mounts"] = dict(sorted(self.mounts.items()))
        return out


def state_document(volumes: dict[str, Volume]) -> dict[str, Any]:
    if not volumes:
        return {}
    return {"volumes": {name: volumes[name].to_json() for name in sorted(volumes)}}


def encode_state(doc: dict[str, Any]) -> str:
    """The file text, laid out as Go's ``json.MarshalIndent(v, "", "\\t")``."""
    return json.dumps(doc, indent="\t")


# ---------------------------------------------------------------- reading


class StateFormatError(Exception):
    """The document as a whole is unusable (not JSON, too deep, wrong shape)."""


@dataclass
class LoadedState:
    volumes: dict[str, Volume] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    legacy: bool = False  # in this plugin's old format: rewrite it


def parse_state(raw: bytes | None, volumes_dir: str) -> LoadedState:
    """Parse the state file's bytes (None: there is no file)."""
    if raw is None:
        return LoadedState()
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise StateFormatError(f"is not valid JSON ({str(err)[:200] or 'nested too deeply'})") from None
    except MemoryError:
        raise StateFormatError("is too large to parse") from None
    return volumes_from_document(doc, volumes_dir)


def volumes_from_document(doc: Any, volumes_dir: str) -> LoadedState:
    """The volumes of a parsed document, Go format or this plugin's old one.
    Bad entries are skipped and reported; a document of the wrong shape
    raises StateFormatError."""
    if not isinstance(doc, dict):
        raise StateFormatError("is not a JSON object")
    raw_volumes = doc.get("volumes")
    if raw_volumes is None:
        return LoadedState()
    if isinstance(raw_volumes, dict):
        loaded = LoadedState()
        for name, entry in raw_volumes.items():
            try:
                loaded.volumes[name] = _go_volume(name, entry, volumes_dir, loaded.problems)
            except VolumeError as err:
                loaded.problems.append(f"skipping volume entry {str(name)[:100]!r}: {err}")
        return loaded
    if isinstance(raw_volumes, list) and "version" in doc:
        return _legacy_volumes(raw_volumes)
    raise StateFormatError("has a 'volumes' that is not an object of volumes")


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise VolumeError(f"{what} is not a string")
    return value


def _path(value: Any, name: str, volumes_dir: str) -> str:
    path = _string(value, "path")
    if not path:
        return os.path.join(volumes_dir, name)
    if not os.path.isabs(path) or ".." in path.split("/") or "\x00" in path:
        raise VolumeError(f"bad path {path[:200]!r}")
    return path


def _options(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise VolumeError("options is not an object of strings")
    return dict(value)


def _go_volume(name: Any, entry: Any, volumes_dir: str, problems: list[str]) -> Volume:
    checked = check_name(name)
    if not isinstance(entry, dict):
        raise VolumeError("not an object")
    volume_type = _string(entry.get("type"), "type")
    driver_for(volume_type)
    options = _options(entry.get("options"))
    path = _path(entry.get("path"), checked, volumes_dir)
    try:
        mount_argv(volume_type, options, "/")
    except VolumeError as err:
        problems.append(f"volume {checked} cannot be mounted as recorded ({err}); Remove still works")
    created = entry.get("createdAt")
    if created is not None and not isinstance(created, str):
        problems.append(f"volume {checked}: ignoring createdAt {str(created)[:50]!r}")
        created = None
    mounts: dict[str, int] = {}
    raw_mounts = entry.get("mounts")
    if raw_mounts is not None and not isinstance(raw_mounts, dict):
        raise VolumeError("mounts is not an object of counts")
    for mount_id, count in (raw_mounts or {}).items():
        if not mount_id:
            problems.append(f"volume {checked}: ignoring an empty mount ID")
        elif count is None or (isinstance(count, int) and not isinstance(count, bool) and count <= 0):
            mounts[mount_id] = 1  # Go: a count of 0 read back is taken as 1
        elif isinstance(count, int) and not isinstance(count, bool) and count <= MAX_MOUNT_COUNT:
            mounts[mount_id] = count
        else:
            problems.append(f"volume {checked}: ignoring mount {mount_id[:100]!r} with count {str(count)[:50]!r}")
    return Volume(
        name=checked,
        type=volume_type,
        path=path,
        options=options,
        created_at=created or "",
        mounts=mounts,
    )


def _legacy_volumes(entries: list[Any]) -> LoadedState:
    """This plugin's old format: ``{"version": 1, "volumes": [{"name", "options",
    "path", "created_at", "mounts": [IDs]}]}``."""
    loaded = LoadedState(legacy=True)
    for raw in entries:
        try:
            if not isinstance(raw, dict):
                raise VolumeError("not an object")
            name = check_name(raw.get("name"))
            if name in loaded.volumes:
                raise VolumeError(f"duplicate volume {name!r}")
            options = _options(raw.get("options"))
            path = _string(raw.get("path"), "path")
            if not path:
                raise VolumeError(f"volume {name}: no path")
            ids = raw.get("mounts") or []
            if not isinstance(ids, list) or not all(isinstance(m, str) and m for m in ids):
                raise VolumeError(f"volume {name}: bad mounts")
            created = raw.get("created_at")
            volume_type = options.get("type", "")
            driver_for(volume_type)
            loaded.volumes[name] = Volume(
                name=name,
                type=volume_type,
                path=_path(path, name, ""),
                options=options,
                created_at=created if isinstance(created, str) else "",
                mounts=dict.fromkeys(ids, 1),
            )
        except VolumeError as err:
            loaded.problems.append(f"skipping volume entry: {err}")
    return loaded


def check_mount_id(mount_id: object) -> str:
    if not isinstance(mount_id, str) or not mount_id:
        raise VolumeError("missing mount ID")
    return mount_id
