"""The volume registry: every Docker request applied to the volumes, their host mounts and the state file.

Thread-safe (one lock serializes every request). The host's side effects
(mount, umount, directories) come in through a ``Mounter``, saving the
state document through a ``Saver`` (``host.py``); the document itself is
``state.py``'s.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Callable

from ecs_init.volume_plugin.drivers import (
    VolumeError,
    check_name,
    driver_for,
    mount_argv,
    mount_path,
    normalize_options,
    umount_argv,
)
from ecs_init.volume_plugin.state import Mounter, Saver, Volume, check_mount_id, state_document, utc_now

log = logging.getLogger(__name__)


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

    def save(self) -> None:
        """Persist the registry as it is; raises VolumeError."""
        with self._lock:
            try:
                self.saver(state_document(self._volumes))
            except Exception as err:  # noqa: BLE001 - any failure to persist is reported, not fatal
                log.error("saving volume plugin state failed: %s", err)
                raise VolumeError(f"cannot save state: {err}") from err

    def _save(self, before: dict[str, Volume]) -> None:
        """Persist; on failure restore ``before`` and raise VolumeError."""
        try:
            self.save()
        except VolumeError:
            self._volumes = before
            raise

    def _snapshot(self) -> dict[str, Volume]:
        return copy.deepcopy(self._volumes)

    def _find(self, name: object) -> Volume:
        checked = check_name(name)
        vol = self._volumes.get(checked)
        if vol is None:
            raise VolumeError(f"volume {checked} not found")
        return vol

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
            vol = Volume(
                name=checked, type=options.get("type", ""), path=path, options=options, created_at=self.clock()
            )
            self._volumes[checked] = vol
            try:
                self._save(before)
            except VolumeError:
                self.mounter.release(path)
                raise
            log.info("created volume %s (type %s) at %s", checked, driver_for(vol.type).name, path)
            return copy.deepcopy(vol)

    def remove(self, name: object) -> None:
        """Unmount if still mounted (SPEC §13), forget, remove the empty directory."""
        with self._lock:
            vol = self._find(name)
            if vol.mounted or self.mounter.is_mounted(vol.path):
                log.info("volume %s is still mounted at %s; unmounting it", vol.name, vol.path)
                self.mounter.run(umount_argv(vol.path))
            before = self._snapshot()
            del self._volumes[vol.name]
            self._save(before)
            self.mounter.release(vol.path)
            log.info("removed volume %s", vol.name)

    def mount(self, name: object, mount_id: object) -> str:
        with self._lock:
            vol = self._find(name)
            mid = check_mount_id(mount_id)
            # First user, or the mount vanished behind our back: (re)mount.
            need_mount = not vol.mounted or not self.mounter.is_mounted(vol.path)
            if need_mount:
                argv = mount_argv(vol.type, vol.options, vol.path)
                self.mounter.prepare(vol.path)
                self.mounter.run(argv)
            before = self._snapshot()
            current = self._volumes[vol.name]
            current.add_mount(mid)
            try:
                self._save(before)
            except VolumeError:
                if need_mount:
                    self._undo_mount(vol.path)
                raise
            log.info(
                "mounted volume %s for %s (count %d, %d mount(s) in all)",
                vol.name,
                mid,
                current.mounts[mid],
                current.users,
            )
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
            before = self._snapshot()
            current = self._volumes[vol.name]
            if not current.remove_mount(mid):
                log.warning("volume %s holds no mount for %s; nothing to do", vol.name, mid)
                return
            last = not current.mounted
            # Save first: if that fails nothing happened at all.
            self._save(before)
            if last:
                try:
                    self.mounter.run(umount_argv(vol.path))
                except VolumeError:
                    self._volumes = before
                    try:
                        self.save()
                    except VolumeError as err:
                        log.error("restoring state after a failed unmount: %s", err)
                    raise
            log.info("unmounted volume %s for %s (%d mount(s) left)", vol.name, mid, current.users)

    def reconcile(self) -> list[str]:
        """At start: forget the mount counts of volumes the kernel no longer has
        mounted (a reboot, or someone unmounted them). Returns the names changed."""
        with self._lock:
            stale = [v.name for v in self._volumes.values() if v.mounted and not self.mounter.is_mounted(v.path)]
            if not stale:
                return []
            before = self._snapshot()
            for name in stale:
                path = self._volumes[name].path
                log.warning("volume %s is no longer mounted at %s; clearing its mount counts", name, path)
                self._volumes[name].mounts.clear()
            try:
                self._save(before)
            except VolumeError:
                return []
            return stale
