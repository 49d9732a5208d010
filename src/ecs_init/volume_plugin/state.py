"""The volume registry: volumes, reference counts per mount ID, JSON state.

Pure logic. Everything that touches the host -- creating directories,
mount(8)/umount(8), asking whether a path is mounted, writing the state
file -- goes through the injected ``Mounter`` and ``saver`` so unit tests
can pass fakes.

Consistency rule: a request either fully happens (host and saved state
agree) or returns ``VolumeError`` with the in-memory registry unchanged.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ecs_init.volume_plugin.drivers import (
    VolumeError,
    check_name,
    mount_argv,
    mount_path,
    normalize_options,
    umount_argv,
)

log = logging.getLogger(__name__)

STATE_VERSION = 1

Saver = Callable[[dict[str, Any]], None]


class Mounter(Protocol):
    def prepare(self, path: str) -> None:
        """Create the mount directory (mode 0700) if it is missing."""

    def release(self, path: str) -> None:
        """Best effort: remove the mount directory if it is empty."""

    def run(self, argv: list[str]) -> None:
        """Run mount/umount; raise ``VolumeError`` on failure."""

    def is_mounted(self, path: str) -> bool:
        """Whether ``path`` is a mount point now."""


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Volume:
    name: str
    options: dict[str, str]
    path: str
    created_at: str
    mounts: list[str] = field(default_factory=list)

    @property
    def mounted(self) -> bool:
        return bool(self.mounts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "options": dict(sorted(self.options.items())),
            "path": self.path,
            "created_at": self.created_at,
            "mounts": list(self.mounts),
        }

    @classmethod
    def from_json(cls, raw: Any) -> Volume:
        if not isinstance(raw, dict):
            raise VolumeError("volume entry is not an object")
        name = check_name(raw.get("name"))
        options = normalize_options(raw.get("options"))
        path = raw.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise VolumeError(f"volume {name}: bad path {path!r}")
        created = raw.get("created_at")
        mounts = raw.get("mounts") or []
        if not isinstance(mounts, list) or not all(isinstance(m, str) and m for m in mounts):
            raise VolumeError(f"volume {name}: bad mounts {mounts!r}")
        return cls(
            name=name,
            options=options,
            path=path,
            created_at=created if isinstance(created, str) else "",
            mounts=list(dict.fromkeys(mounts)),
        )


def state_document(volumes: dict[str, Volume]) -> dict[str, Any]:
    return {"version": STATE_VERSION, "volumes": [volumes[n].to_json() for n in sorted(volumes)]}


def volumes_from_document(doc: Any) -> tuple[dict[str, Volume], list[str]]:
    """Parse a state document; bad entries are skipped and reported."""
    problems: list[str] = []
    volumes: dict[str, Volume] = {}
    if doc is None:
        return volumes, problems
    if not isinstance(doc, dict) or not isinstance(doc.get("volumes", []), list):
        return volumes, ["state is not an object with a volumes list"]
    for raw in doc.get("volumes", []):
        try:
            vol = Volume.from_json(raw)
        except VolumeError as err:
            problems.append(f"skipping volume entry: {err}")
            continue
        if vol.name in volumes:
            problems.append(f"skipping duplicate volume entry {vol.name!r}")
            continue
        volumes[vol.name] = vol
    return volumes, problems


def check_mount_id(mount_id: object) -> str:
    if not isinstance(mount_id, str) or not mount_id:
        raise VolumeError("missing mount ID")
    return mount_id


class Registry:
    """Thread-safe: one lock serializes every request (mounts included)."""

    def __init__(
        self,
        volumes_dir: str,
        mounter: Mounter,
        saver: Saver,
        volumes: dict[str, Volume] | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.volumes_dir = volumes_dir
        self.mounter = mounter
        self.saver = saver
        self.clock = clock
        self._volumes: dict[str, Volume] = dict(volumes or {})
        self._lock = threading.RLock()

    # ------------------------------------------------------------ helpers

    def _save(self, before: dict[str, Volume]) -> None:
        """Persist; on failure restore ``before`` and raise VolumeError."""
        try:
            self.saver(state_document(self._volumes))
        except Exception as err:  # noqa: BLE001 - any failure to persist is reported, not fatal
            self._volumes = before
            log.error("saving volume plugin state failed: %s", err)
            raise VolumeError(f"cannot save state: {err}") from err

    def _snapshot(self) -> dict[str, Volume]:
        return copy.deepcopy(self._volumes)

    def _find(self, name: object) -> Volume:
        checked = check_name(name)
        vol = self._volumes.get(checked)
        if vol is None:
            raise VolumeError(f"volume {checked} not found")
        return vol

    def _default_path(self, path: str) -> bool:
        return os.path.dirname(path) == os.path.normpath(self.volumes_dir)

    # ------------------------------------------------------------ queries

    def get(self, name: object) -> Volume:
        with self._lock:
            return copy.deepcopy(self._find(name))

    def volumes(self) -> list[Volume]:
        with self._lock:
            return [copy.deepcopy(self._volumes[n]) for n in sorted(self._volumes)]

    def path(self, name: object) -> str:
        with self._lock:
            return self._find(name).path

    # ------------------------------------------------------------ changes

    def create(self, name: object, opts: object) -> Volume:
        with self._lock:
            checked = check_name(name)
            if checked in self._volumes:
                raise VolumeError(f"volume {checked} already exists")
            options = normalize_options(opts)
            path = mount_path(checked, options, self.volumes_dir)
            for other in self._volumes.values():
                if other.path == path:
                    raise VolumeError(f"mount path {path} is already used by volume {other.name}")
            self.mounter.prepare(path)
            before = self._snapshot()
            vol = Volume(name=checked, options=options, path=path, created_at=self.clock())
            self._volumes[checked] = vol
            try:
                self._save(before)
            except VolumeError:
                if self._default_path(path):
                    self.mounter.release(path)
                raise
            log.info("created volume %s (type %s) at %s", checked, options["type"], path)
            return copy.deepcopy(vol)

    def remove(self, name: object) -> None:
        with self._lock:
            vol = self._find(name)
            if vol.mounted:
                raise VolumeError(f"volume {vol.name} is in use ({len(vol.mounts)} mount(s))")
            before = self._snapshot()
            del self._volumes[vol.name]
            self._save(before)
            if self._default_path(vol.path):
                self.mounter.release(vol.path)
            log.info("removed volume %s", vol.name)

    def mount(self, name: object, mount_id: object) -> str:
        with self._lock:
            vol = self._find(name)
            mid = check_mount_id(mount_id)
            if mid in vol.mounts:
                return vol.path
            # First user, or the mount vanished behind our back: (re)mount.
            need_mount = not vol.mounts or not self.mounter.is_mounted(vol.path)
            if need_mount:
                argv = mount_argv(vol.options, vol.path)
                self.mounter.prepare(vol.path)
                self.mounter.run(argv)
            before = self._snapshot()
            self._volumes[vol.name].mounts.append(mid)
            try:
                self._save(before)
            except VolumeError:
                if need_mount:
                    self._undo_mount(vol.path)
                raise
            log.info("mounted volume %s for %s (%d user(s))", vol.name, mid, len(self._volumes[vol.name].mounts))
            return vol.path

    def _undo_mount(self, path: str) -> None:
        try:
            self.mounter.run(umount_argv(path))
        except VolumeError as err:
            log.error("undoing mount of %s failed: %s", path, err)

    def unmount(self, name: object, mount_id: object) -> None:
        with self._lock:
            vol = self._find(name)
            mid = check_mount_id(mount_id)
            if mid not in vol.mounts:
                raise VolumeError(f"volume {vol.name} is not mounted by {mid}")
            before = self._snapshot()
            current = self._volumes[vol.name]
            current.mounts.remove(mid)
            last = not current.mounts
            # Save first: if that fails nothing happened at all.
            self._save(before)
            if last and self.mounter.is_mounted(vol.path):
                try:
                    self.mounter.run(umount_argv(vol.path))
                except VolumeError:
                    self._volumes = before
                    try:
                        self.saver(state_document(self._volumes))
                    except Exception as err:  # noqa: BLE001
                        log.error("restoring state after a failed unmount: %s", err)
                    raise
            log.info("unmounted volume %s for %s (%d user(s) left)", vol.name, mid, len(current.mounts))

    def reconcile(self) -> list[str]:
        """At start: forget mount IDs of volumes the kernel no longer has mounted
        (a reboot, or someone unmounted them). Returns the names changed."""
        with self._lock:
            stale = [v.name for v in self._volumes.values() if v.mounts and not self.mounter.is_mounted(v.path)]
            if not stale:
                return []
            before = self._snapshot()
            for name in stale:
                path = self._volumes[name].path
                log.warning("volume %s is no longer mounted at %s; clearing its mount IDs", name, path)
                self._volumes[name].mounts.clear()
            try:
                self._save(before)
            except VolumeError:
                return []
            return stale
