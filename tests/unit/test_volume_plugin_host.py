"""Drivers (argv building) and host helpers (mountinfo parsing, state file, dirs)."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading

import pytest

from ecs_init.volume_plugin.drivers import VolumeError, mount_argv, mount_path, not_mounted, umount_argv
from ecs_init.volume_plugin.host import MAX_STATE_BYTES, HostMounter, JsonStateFile, StateFileError, mount_points


def test_mount_argv() -> None:
    assert mount_argv("efs", {"type": "efs", "device": "fs-1:/", "o": "tls"}, "/p") == [
        "mount", "-t", "efs", "-o", "tls", "fs-1:/", "/p",
    ]  # fmt: skip
    assert mount_argv("s3files", {"type": "s3files", "device": "b", "o": ""}, "/p") == [
        "mount", "-t", "s3files", "b", "/p",
    ]  # fmt: skip
    assert mount_argv("", {"device": "b"}, "/p") == ["mount", "b", "/p"]  # no type: no -t (Go)
    with pytest.raises(VolumeError, match="missing option 'device'"):
        mount_argv("efs", {"type": "efs"}, "/p")
    with pytest.raises(VolumeError, match="missing mount target"):
        mount_argv("efs", {"type": "efs", "device": "d"}, "")
    with pytest.raises(VolumeError, match="unknown volume type"):
        mount_argv("efs", {"type": "ext4", "device": "d"}, "/p")
    with pytest.raises(VolumeError, match="unknown volume type"):
        mount_argv("ext4", {"type": "efs", "device": "d"}, "/p")
    with pytest.raises(VolumeError, match="invalid device"):
        mount_argv("efs", {"device": "--bind"}, "/p")
    assert umount_argv("/p") == ["umount", "-l", "/p"]


@pytest.mark.parametrize("o", ["bind", "rbind", "remount", "move", "loop", "ro,bind", "Bind", '"bind"', " rbind=1"])
def test_mount_argv_refuses_options_that_change_the_mount_type(o: str) -> None:
    with pytest.raises(VolumeError, match="not allowed: they change the mount type"):
        mount_argv("efs", {"type": "efs", "device": "/", "o": o}, "/p")


@pytest.mark.parametrize("o", ["", "tls", "tls,iam,accesspoint=fsap-1", "ro,noatime", "binder=1", "rebind", "nolock"])
def test_ordinary_mount_options_pass(o: str) -> None:
    assert mount_argv("efs", {"type": "efs", "device": "d", "o": o}, "/p")[-2:] == ["d", "/p"]


def test_not_mounted_recognises_umount_messages() -> None:
    assert not_mounted("umount: /var/lib/ecs/volumes/v: not mounted.")
    assert not_mounted("umount: abc: no mount point specified.")
    assert not not_mounted("umount: /p: target is busy.")


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


def test_real_umount_of_a_path_not_mounted_succeeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """umount(8)'s "not mounted" / "no mount point specified" count as success
    (SPEC §13); the same words from another command do not."""
    if os.geteuid() != 0:
        pytest.skip("umount(8) says 'must be superuser' otherwise")
    HostMounter().run(umount_argv(str(tmp_path)))
    HostMounter().run(umount_argv(str(tmp_path / "missing")))
    with pytest.raises(VolumeError, match="exit 32: not mounted"):
        HostMounter().run(["sh", "-c", "echo not mounted >&2; exit 32"])


def _read_with_deadline(sf: JsonStateFile, seconds: float = 10.0) -> tuple[str, object]:
    """sf.read() in a thread, so a regression that hangs fails instead of hanging."""
    result: list[tuple[str, object]] = []

    def work() -> None:
        try:
            result.append(("ok", sf.read()))
        except StateFileError as err:
            result.append(("error", str(err)))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"reading {sf.path} did not finish within {seconds}s"
    return result[0]


def test_state_file_round_trip_mode_and_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "data" / "ecs_volume_plugin.json")
    sf = JsonStateFile(path)
    assert sf.read() is None
    sf.save({"volumes": {"v": {"path": "/p"}}})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as fh:
        assert fh.read() == '{\n\t"volumes": {\n\t\t"v": {\n\t\t\t"path": "/p"\n\t\t}\n\t}\n}'
    assert json.loads(sf.read() or b"") == {"volumes": {"v": {"path": "/p"}}}
    assert os.listdir(tmp_path / "data") == ["ecs_volume_plugin.json"]  # no temp file left


def test_state_file_save_renames_and_syncs_the_directory(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    synced: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    JsonStateFile(str(tmp_path / "s.json")).save({})
    assert synced == [False, True]  # the temp file, then the directory after the rename


@pytest.mark.parametrize("kind", ["symlink-dev-zero", "symlink-file", "fifo", "directory", "huge", "dev-null"])
def test_hostile_state_files_are_refused_without_hanging(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "ecs_volume_plugin.json")
    if kind == "symlink-dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "symlink-file":
        (tmp_path / "real.json").write_text("{}")
        os.symlink(str(tmp_path / "real.json"), path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "huge":
        with open(path, "wb") as fh:
            fh.truncate(MAX_STATE_BYTES + 1)  # sparse: no disk used
    elif kind == "dev-null":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3)) if os.geteuid() == 0 else pytest.skip("mknod")
    outcome, message = _read_with_deadline(JsonStateFile(path))
    assert outcome == "error", message
    want = {"symlink-dev-zero": "symbolic link", "symlink-file": "symbolic link", "fifo": "not a regular file",
            "directory": "a directory", "huge": "larger than", "dev-null": "not a regular file"}[kind]  # fmt: skip
    assert want in str(message)


def test_quarantine_moves_the_file_or_link_aside(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "ecs_volume_plugin.json")
    os.symlink("/dev/zero", path)
    sf = JsonStateFile(path)
    with caplog.at_level(logging.ERROR):
        aside = sf.quarantine("is a symbolic link")
    assert aside and os.path.islink(aside) and os.readlink(aside) == "/dev/zero"  # the link, not its target
    assert not os.path.lexists(path)
    [record] = caplog.records
    message = record.getMessage()
    assert "is a symbolic link; moved it to" in message and "starting with no volumes" in message
    os.mkfifo(path)
    second = sf.quarantine("is not a regular file")
    assert second and second != aside and stat.S_ISFIFO(os.lstat(second).st_mode)
    assert sf.quarantine("gone") is None  # nothing there: one line, no exception
