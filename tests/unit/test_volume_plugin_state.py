"""The pure volume registry: refcounts, duplicates, remove-while-mounted, rollback."""

from __future__ import annotations

import pytest
from volplugin_helpers import FakeMounter, FakeSaver

from ecs_init.volume_plugin.drivers import VolumeError
from ecs_init.volume_plugin.state import Registry, Volume, state_document, volumes_from_document

VOLS = "/var/lib/ecs/volumes"


def make(volumes: dict[str, Volume] | None = None) -> tuple[Registry, FakeMounter, FakeSaver]:
    mounter, saver = FakeMounter(), FakeSaver()
    reg = Registry(VOLS, mounter, saver, volumes, clock=lambda: "2026-01-02T03:04:05Z")
    return reg, mounter, saver


def test_create_records_options_default_path_and_time() -> None:
    reg, mounter, saver = make()
    vol = reg.create("data", {"device": "fs-1:/", "o": "tls"})
    assert vol.path == f"{VOLS}/data"
    assert vol.options == {"device": "fs-1:/", "o": "tls", "type": "efs"}
    assert vol.created_at == "2026-01-02T03:04:05Z"
    assert mounter.prepared == [f"{VOLS}/data"]
    assert saver.last == {
        "version": 1,
        "volumes": [
            {
                "name": "data",
                "options": {"device": "fs-1:/", "o": "tls", "type": "efs"},
                "path": f"{VOLS}/data",
                "created_at": "2026-01-02T03:04:05Z",
                "mounts": [],
            }
        ],
    }


def test_create_with_target_and_s3files() -> None:
    reg, _, _ = make()
    vol = reg.create("s3", {"type": "s3files", "device": "bucket", "target": "/mnt/s3/"})
    assert vol.path == "/mnt/s3"
    assert vol.options["type"] == "s3files"


@pytest.mark.parametrize(
    "name,opts,needle",
    [
        ("", {"device": "d"}, "missing volume Name"),
        (None, {"device": "d"}, "missing volume Name"),
        ("../etc", {"device": "d"}, "invalid volume name"),
        ("a/b", {"device": "d"}, "invalid volume name"),
        ("v", {"device": "d", "type": "nfs"}, "unknown volume type 'nfs'"),
        ("v", {}, "missing option 'device'"),
        ("v", None, "missing option 'device'"),
        ("v", {"device": "-oremount"}, "invalid device"),
        ("v", {"device": "d", "target": "relative/x"}, "not an absolute path"),
        ("v", {"device": "d", "target": "/a/../b"}, "invalid target"),
        ("v", {"device": "d", "target": "/"}, "invalid target"),
        ("v", {"device": "d", "colour": "red"}, "unknown option 'colour'"),
        ("v", {"device": 7}, "must be a string"),
        ("v", ["device"], "Opts must be an object"),
    ],
)
def test_create_refuses_bad_input(name: object, opts: object, needle: str) -> None:
    reg, mounter, saver = make()
    with pytest.raises(VolumeError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        reg.create(name, opts)
    assert reg.volumes() == [] and saver.docs == [] and mounter.prepared == []


def test_duplicate_name_and_shared_path_refused() -> None:
    reg, _, saver = make()
    reg.create("v", {"device": "d"})
    with pytest.raises(VolumeError, match="already exists"):
        reg.create("v", {"device": "other"})
    with pytest.raises(VolumeError, match="already used by volume v"):
        reg.create("w", {"device": "d", "target": f"{VOLS}/v"})
    assert len(saver.docs) == 1


def test_refcounts_per_mount_id() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "fs-1:/", "o": "tls,iam"})
    path = f"{VOLS}/v"
    assert reg.mount("v", "c1") == path
    assert mounter.calls == [["mount", "-t", "efs", "-o", "tls,iam", "fs-1:/", path]]
    assert reg.mount("v", "c1") == path  # same ID again: idempotent
    assert reg.mount("v", "c2") == path  # second user: no second mount
    assert len(mounter.calls) == 1
    assert reg.get("v").mounts == ["c1", "c2"]
    assert saver.last["volumes"][0]["mounts"] == ["c1", "c2"]
    reg.unmount("v", "c1")
    assert len(mounter.calls) == 1 and path in mounter.mounted
    with pytest.raises(VolumeError, match="not mounted by c1"):
        reg.unmount("v", "c1")
    reg.unmount("v", "c2")
    assert mounter.calls[-1] == ["umount", "-l", path]
    assert path not in mounter.mounted
    assert saver.last["volumes"][0]["mounts"] == []


def test_mount_without_o_omits_dash_o() -> None:
    reg, mounter, _ = make()
    reg.create("v", {"type": "s3files", "device": "bucket"})
    reg.mount("v", "c1")
    assert mounter.calls == [["mount", "-t", "s3files", "bucket", f"{VOLS}/v"]]


def test_mount_refuses_missing_id_unknown_volume_and_missing_device() -> None:
    bad = Volume(name="old", options={"type": "efs"}, path=f"{VOLS}/old", created_at="")
    reg, mounter, _ = make({"old": bad})
    reg.create("v", {"device": "d"})
    for mid in (None, "", 5):
        with pytest.raises(VolumeError, match="missing mount ID"):
            reg.mount("v", mid)
    with pytest.raises(VolumeError, match="volume nope not found"):
        reg.mount("nope", "c1")
    with pytest.raises(VolumeError, match="missing option 'device'"):
        reg.mount("old", "c1")
    assert mounter.calls == []


def test_remount_when_mount_vanished() -> None:
    reg, mounter, _ = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    mounter.mounted.clear()  # someone unmounted it behind our back
    reg.mount("v", "c2")
    assert [c[0] for c in mounter.calls] == ["mount", "mount"]


def test_remove_refuses_mounted_then_removes() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    with pytest.raises(VolumeError, match="in use"):
        reg.remove("v")
    reg.unmount("v", "c1")
    reg.remove("v")
    assert reg.volumes() == [] and saver.last["volumes"] == []
    assert mounter.released == [f"{VOLS}/v"]
    with pytest.raises(VolumeError, match="not found"):
        reg.remove("v")


def test_remove_keeps_custom_target_dir() -> None:
    reg, mounter, _ = make()
    reg.create("v", {"device": "d", "target": "/mnt/mine"})
    reg.remove("v")
    assert mounter.released == []


def test_failed_mount_changes_nothing() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    mounter.fail_mount = True
    with pytest.raises(VolumeError, match="mount failed"):
        reg.mount("v", "c1")
    assert reg.get("v").mounts == [] and len(saver.docs) == 1


def test_failed_save_rolls_back_create() -> None:
    reg, mounter, saver = make()
    saver.fail = True
    with pytest.raises(VolumeError, match="cannot save state: .*No space"):
        reg.create("v", {"device": "d"})
    assert reg.volumes() == []
    assert mounter.released == [f"{VOLS}/v"]
    saver.fail = False
    reg.create("v", {"device": "d"})  # the name is free again
    assert [v.name for v in reg.volumes()] == ["v"]


def test_failed_save_rolls_back_mount_and_unmounts() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    saver.fail = True
    with pytest.raises(VolumeError, match="cannot save state"):
        reg.mount("v", "c1")
    assert reg.get("v").mounts == []
    assert [c[0] for c in mounter.calls] == ["mount", "umount"]
    assert mounter.mounted == set()


def test_failed_save_rolls_back_second_mount_without_unmounting() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    saver.fail = True
    with pytest.raises(VolumeError):
        reg.mount("v", "c2")
    assert reg.get("v").mounts == ["c1"]
    assert [c[0] for c in mounter.calls] == ["mount"] and mounter.mounted


def test_failed_save_rolls_back_unmount_and_keeps_mount() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    saver.fail = True
    with pytest.raises(VolumeError, match="cannot save state"):
        reg.unmount("v", "c1")
    assert reg.get("v").mounts == ["c1"]
    assert [c[0] for c in mounter.calls] == ["mount"]  # nothing unmounted
    assert f"{VOLS}/v" in mounter.mounted


def test_failed_umount_restores_mount_id() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    mounter.fail_umount = True
    with pytest.raises(VolumeError, match="umount failed"):
        reg.unmount("v", "c1")
    assert reg.get("v").mounts == ["c1"]
    assert saver.last["volumes"][0]["mounts"] == ["c1"]


def test_failed_save_rolls_back_remove() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    saver.fail = True
    with pytest.raises(VolumeError):
        reg.remove("v")
    assert [v.name for v in reg.volumes()] == ["v"] and mounter.released == []


def test_state_round_trip_and_reconcile() -> None:
    reg, mounter, saver = make()
    reg.create("a", {"device": "d1"})
    reg.create("b", {"device": "d2", "o": "ro", "type": "s3files"})
    reg.mount("a", "c1")
    reg.mount("b", "c2")
    volumes, problems = volumes_from_document(saver.last)
    assert problems == []
    assert state_document(volumes) == saver.last
    # After a "reboot" only a is still mounted: b's stale ID is dropped.
    mounter2, saver2 = FakeMounter(), FakeSaver()
    mounter2.mounted.add(f"{VOLS}/a")
    reg2 = Registry(VOLS, mounter2, saver2, volumes)
    assert reg2.reconcile() == ["b"]
    assert reg2.get("a").mounts == ["c1"] and reg2.get("b").mounts == []
    assert saver2.last["volumes"][1]["mounts"] == []
    assert reg2.reconcile() == []


def test_load_skips_bad_entries() -> None:
    doc = {
        "version": 1,
        "volumes": [
            {"name": "ok", "options": {"device": "d"}, "path": "/x/ok", "created_at": "t", "mounts": ["m"]},
            {"name": "ok", "options": {"device": "d"}, "path": "/x/ok2", "mounts": []},
            {"name": "../bad", "options": {"device": "d"}, "path": "/x/bad"},
            {"name": "badtype", "options": {"device": "d", "type": "zfs"}, "path": "/x/t"},
            {"name": "relpath", "options": {"device": "d"}, "path": "x"},
            {"name": "badmounts", "options": {"device": "d"}, "path": "/x/m", "mounts": [1]},
            "junk",
        ],
    }
    volumes, problems = volumes_from_document(doc)
    assert list(volumes) == ["ok"] and volumes["ok"].mounts == ["m"]
    assert volumes["ok"].options == {"device": "d", "type": "efs"}
    assert len(problems) == 6
    assert volumes_from_document(None) == ({}, [])
    assert volumes_from_document([1, 2])[1] == ["state is not an object with a volumes list"]
