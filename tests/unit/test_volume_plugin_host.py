"""Drivers (argv building) and host helpers (mountinfo parsing, state file, dirs)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ecs_init.volume_plugin.drivers import VolumeError, mount_argv, mount_path, umount_argv
from ecs_init.volume_plugin.host import HostMounter, JsonStateFile, mount_points


def test_mount_argv() -> None:
    assert mount_argv({"type": "efs", "device": "fs-1:/", "o": "tls"}, "/p") == [
        "mount", "-t", "efs", "-o", "tls", "fs-1:/", "/p",
    ]  # fmt: skip
    assert mount_argv({"type": "s3files", "device": "b", "o": ""}, "/p") == ["mount", "-t", "s3files", "b", "/p"]
    assert mount_argv({"device": "b"}, "/p")[:3] == ["mount", "-t", "efs"]
    with pytest.raises(VolumeError, match="missing option 'device'"):
        mount_argv({"type": "efs"}, "/p")
    with pytest.raises(VolumeError, match="missing mount target"):
        mount_argv({"type": "efs", "device": "d"}, "")
    with pytest.raises(VolumeError, match="unknown volume type"):
        mount_argv({"type": "ext4", "device": "d"}, "/p")
    assert umount_argv("/p") == ["umount", "-l", "/p"]


def test_mount_path() -> None:
    assert mount_path("v", {}, "/var/lib/ecs/volumes") == "/var/lib/ecs/volumes/v"
    assert mount_path("v", {"target": "/mnt//x/"}, "/vols") == "/mnt/x"


def test_mount_points_unescapes() -> None:
    text = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "44 27 0:39 / /tmp/with\\040space rw,relatime - tmpfs fs-1:/ rw\n"
        "short line\n"
    )
    assert mount_points(text) == {"/", "/tmp/with space"}


def test_host_mounter_is_mounted_reads_real_mountinfo(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = HostMounter()
    assert m.is_mounted("/proc")
    assert not m.is_mounted(str(tmp_path))
    fake = tmp_path / "mountinfo"
    fake.write_text(f"1 1 0:1 / {tmp_path}/x rw - tmpfs t rw\n")
    assert HostMounter(mountinfo=str(fake)).is_mounted(f"{tmp_path}/x/")


def test_prepare_creates_0700_and_release_only_empty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = HostMounter()
    path = str(tmp_path / "vols" / "v")
    m.prepare(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    m.prepare(path)  # exists: fine
    (tmp_path / "vols" / "v" / "keep").write_text("x")
    m.release(path)
    assert os.path.isdir(path)
    os.unlink(os.path.join(path, "keep"))
    m.release(path)
    assert not os.path.exists(path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(VolumeError, match="cannot create"):
        m.prepare(str(tmp_path / "file" / "v"))


def test_host_mounter_run_maps_command_errors() -> None:
    with pytest.raises(VolumeError, match="exit 1"):
        HostMounter().run(["false"])
    with pytest.raises(VolumeError, match="command not found"):
        HostMounter().run(["/nonexistent/mount-helper"])


def test_state_file_round_trip_mode_and_corrupt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "data" / "ecs_volume_plugin.json")
    sf = JsonStateFile(path)
    assert sf.load() is None
    sf.save({"version": 1, "volumes": []})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sf.load() == {"version": 1, "volumes": []}
    with open(path, "w") as fh:
        fh.write('{"version": 1, "volu')
    assert sf.load() is None
    aside = [n for n in os.listdir(tmp_path / "data") if n.startswith("ecs_volume_plugin.json.corrupt-")]
    assert len(aside) == 1 and not os.path.exists(path)
    with open(tmp_path / "data" / aside[0]) as fh:
        assert fh.read().startswith('{"version": 1')
    assert json.loads(json.dumps(sf.load())) is None
