"""The pure volume registry: Go state format, mount counts per ID, Go semantics
(ecs-init/volumes/ecs_volume_plugin.go, types/types.go), rollback."""

from __future__ import annotations

import json
import re

import pytest
from volplugin_helpers import GO_STATE, FakeMounter, FakeSaver, validate_state

from ecs_init.volume_plugin.drivers import VolumeError
from ecs_init.volume_plugin.registry import Registry
from ecs_init.volume_plugin.state import (
    StateFormatError,
    Volume,
    encode_state,
    parse_state,
    rfc3339_nano,
    state_document,
    utc_now,
    volumes_from_document,
)

VOLS = "/var/lib/ecs/volumes"
NOW = "2026-01-02T03:04:05.123456789Z"


def make(volumes: dict[str, Volume] | None = None) -> tuple[Registry, FakeMounter, FakeSaver]:
    mounter, saver = FakeMounter(), FakeSaver()
    reg = Registry(VOLS, mounter, saver, volumes, clock=lambda: NOW)
    return reg, mounter, saver


def vol(name: str, mounts: dict[str, int] | None = None, **options: str) -> Volume:
    opts = {"type": "efs", "device": "fs-1:/", **options}
    return Volume(name, opts["type"], f"{VOLS}/{name}", opts, NOW, dict(mounts or {}))


# ---------------------------------------------------------------- format


def test_go_fixture_loads_volumes_counts_and_created_at() -> None:
    validate_state(json.loads(GO_STATE))  # the fixture is in the format the schema describes
    loaded = parse_state(GO_STATE.encode(), VOLS)
    assert loaded.problems == [] and not loaded.legacy
    assert sorted(loaded.volumes) == ["efsvol", "fresh", "legacyzero", "notype"]
    efs = loaded.volumes["efsvol"]
    assert efs.mounts == {"0b7d2a1c9e": 2, "5f3e8d7c6b": 1} and efs.users == 3
    assert efs.type == "efs" and efs.path == f"{VOLS}/efsvol"
    assert efs.options == {"device": "fs-0123456789abcdef0:/", "o": "tls,iam,awscredsuri=/v2/credentials/1234",
                           "type": "efs"}  # fmt: skip
    assert efs.created_at == "2024-05-06T07:08:09.123456789Z"
    assert loaded.volumes["fresh"].mounts == {} and loaded.volumes["fresh"].path == "/mnt/s3files/fresh"
    assert loaded.volumes["fresh"].created_at == "2024-05-06T07:08:10.5+02:00"
    assert loaded.volumes["legacyzero"].mounts == {"old-id": 1}  # Go: a count of 0 read back is 1
    assert loaded.volumes["notype"].type == "" and loaded.volumes["notype"].options == {"device": "fs-2:/"}


def test_go_fixture_round_trips_and_what_we_write_validates() -> None:
    loaded = parse_state(GO_STATE.encode(), VOLS)
    doc = state_document(loaded.volumes)
    validate_state(doc)
    expected = json.loads(GO_STATE)
    expected["volumes"]["legacyzero"]["mounts"] = {"old-id": 1}
    assert doc == expected
    # Go's MarshalIndent(v, "", "\t") layout, field order type, path, options, createdAt, mounts.
    assert encode_state(doc) == GO_STATE.replace('"old-id": 0', '"old-id": 1')
    assert encode_state(state_document({})) == "{}"


def test_written_state_omits_empty_fields_and_validates_through_a_lifecycle() -> None:
    reg, _, saver = make()
    reg.create("data", {"device": "fs-1:/", "o": "tls"})
    assert saver.last == {
        "volumes": {"data": {"path": f"{VOLS}/data", "options": {"device": "fs-1:/", "o": "tls"}, "createdAt": NOW}}
    }  # no type given: none recorded (Go: efs driver, no -t); no mounts: no "mounts" key
    reg.create("s3", {"type": "s3files", "device": "bucket", "o": "", "target": "/mnt/s3"})
    reg.mount("data", "c1")
    reg.mount("data", "c1")
    reg.mount("s3", "c2")
    for doc in saver.docs:
        validate_state(doc)
    assert saver.last["volumes"]["data"]["mounts"] == {"c1": 2}
    assert saver.last["volumes"]["s3"] == {
        "type": "s3files",
        "path": "/mnt/s3",
        "options": {"device": "bucket", "o": "", "target": "/mnt/s3", "type": "s3files"},
        "createdAt": NOW,
        "mounts": {"c2": 1},
    }
    reg.unmount("data", "c1")
    reg.unmount("data", "c1")
    reg.remove("data")
    reg.unmount("s3", "c2")
    reg.remove("s3")
    for doc in saver.docs:
        validate_state(doc)
    assert saver.last == {}


def test_created_at_is_go_rfc3339_nano() -> None:
    assert rfc3339_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"  # trailing zeros dropped
    assert rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$", utc_now())
    reg = Registry(VOLS, FakeMounter(), FakeSaver())
    created = reg.create("v", {"device": "d"}).created_at
    assert reg.get("v").created_at == created
    validate_state({"volumes": {"v": {"createdAt": created}}})


def test_legacy_format_is_read_and_flagged_for_rewrite() -> None:
    doc = {
        "version": 1,
        "volumes": [
            {"name": "ok", "options": {"device": "d", "type": "efs"}, "path": "/x/ok",
             "created_at": "2026-01-01T00:00:00Z", "mounts": ["m1", "m2"]},
            {"name": "ok", "options": {"device": "d"}, "path": "/x/ok2", "mounts": []},
            {"name": "../bad", "options": {"device": "d"}, "path": "/x/bad"},
            {"name": "badtype", "options": {"device": "d", "type": "zfs"}, "path": "/x/t"},
            {"name": "relpath", "options": {"device": "d"}, "path": "x"},
            {"name": "badmounts", "options": {"device": "d"}, "path": "/x/m", "mounts": [1]},
            "junk",
        ],
    }  # fmt: skip
    loaded = volumes_from_document(doc, VOLS)
    assert loaded.legacy and list(loaded.volumes) == ["ok"]
    assert loaded.problems == [
        "skipping volume entry: duplicate volume 'ok'",
        "skipping volume entry: invalid volume name '../bad': want [A-Za-z0-9][A-Za-z0-9_.-]*",
        "skipping volume entry: unknown volume type 'zfs' (known: efs, s3files)",
        "skipping volume entry: bad path 'x'",
        "skipping volume entry: volume badmounts: bad mounts",
        "skipping volume entry: not an object",
    ]
    assert loaded.volumes["ok"] == Volume(
        "ok", "efs", "/x/ok", {"device": "d", "type": "efs"}, "2026-01-01T00:00:00Z", {"m1": 1, "m2": 1}
    )
    validate_state(state_document(loaded.volumes))


def test_go_entries_that_cannot_be_used_are_skipped_with_a_problem_each() -> None:
    doc = {
        "volumes": {
            "good": {"type": "efs", "path": "/p/good", "options": {"device": "d", "extra": "kept"}},
            "nopath": {"options": {"device": "d"}},
            "../evil": {"path": "/p/e"},
            "badtype": {"type": "nfs", "path": "/p/t"},
            "relpath": {"path": "p/r"},
            "dotdot": {"path": "/p/../etc"},
            "badopts": {"path": "/p/o", "options": {"device": 5}},
            "notobj": "x",
            "badmounts": {"path": "/p/m", "mounts": ["a"]},
            "counts": {"path": "/p/c", "mounts": {"n": None, "neg": -3, "big": 2**40, "f": 1.5, "b": True, "": 2}},
            "badtime": {"path": "/p/bt", "createdAt": 5},
            "bindopt": {"path": "/p/b", "options": {"device": "/", "o": "bind"}},
        }
    }
    loaded = volumes_from_document(doc, VOLS)
    assert sorted(loaded.volumes) == ["badtime", "bindopt", "counts", "good", "nopath"]
    assert loaded.volumes["good"].options == {"device": "d", "extra": "kept"}  # Go accepted any option
    assert loaded.volumes["nopath"].path == f"{VOLS}/nopath"
    assert loaded.volumes["counts"].mounts == {"n": 1, "neg": 1}
    assert loaded.volumes["badtime"].created_at == ""
    assert loaded.problems == [
        "skipping volume entry '../evil': invalid volume name '../evil': want [A-Za-z0-9][A-Za-z0-9_.-]*",
        "skipping volume entry 'badtype': unknown volume type 'nfs' (known: efs, s3files)",
        "skipping volume entry 'relpath': bad path 'p/r'",
        "skipping volume entry 'dotdot': bad path '/p/../etc'",
        "skipping volume entry 'badopts': options is not an object of strings",
        "skipping volume entry 'notobj': not an object",
        "volume badmounts cannot be mounted as recorded (missing option 'device'); Remove still works",
        "skipping volume entry 'badmounts': mounts is not an object of counts",
        "volume counts cannot be mounted as recorded (missing option 'device'); Remove still works",
        "volume counts: ignoring mount 'big' with count '1099511627776'",
        "volume counts: ignoring mount 'f' with count '1.5'",
        "volume counts: ignoring mount 'b' with count 'True'",
        "volume counts: ignoring an empty mount ID",
        "volume badtime cannot be mounted as recorded (missing option 'device'); Remove still works",
        "volume badtime: ignoring createdAt '5'",
        "volume bindopt cannot be mounted as recorded (mount option(s) bind not allowed: they change the mount type);"
        " Remove still works",
    ]


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"[1, 2]", "is not a JSON object"),
        (b'{"volumes": "x"}', "has a 'volumes' that is not an object of volumes"),
        (b'{"volumes": []}', "has a 'volumes' that is not an object of volumes"),  # a list without "version"
        (
            b'{"volumes": {',
            "is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 14 (char 13))",
        ),
        (b"\xff\xfe", "is not valid JSON ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)"),
        (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON ("),  # the interpreter's recursion message
        (b'{"volumes": ' + b"[" * 100_000, "is not valid JSON ("),
    ],
)
def test_unusable_documents_raise(raw: bytes, message: str) -> None:
    with pytest.raises(StateFormatError) as err:
        parse_state(raw, VOLS)
    assert str(err.value).startswith(message) and len(str(err.value)) < 250


def test_empty_documents_are_empty_state() -> None:
    for raw in (None, b"", b"  \n", b"{}", b'{"volumes": null}', b'{"volumes": {}}'):
        loaded = parse_state(raw, VOLS)
        assert loaded.volumes == {} and loaded.problems == [] and not loaded.legacy


# ---------------------------------------------------------------- requests


def test_create_records_options_as_given_and_time() -> None:
    reg, mounter, _ = make()
    v = reg.create("data", {"device": "fs-1:/", "o": "tls"})
    assert (v.path, v.type, v.options, v.created_at) == (f"{VOLS}/data", "", {"device": "fs-1:/", "o": "tls"}, NOW)
    assert mounter.prepared == [f"{VOLS}/data"]
    s3 = reg.create("s3", {"type": "s3files", "device": "bucket", "target": "/mnt/s3/"})
    assert s3.path == "/mnt/s3" and s3.type == "s3files"


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
        ("v", {"device": "/", "o": "bind"}, "bind not allowed"),
        ("v", {"device": "/etc", "o": "tls,rbind"}, "rbind not allowed"),
        ("v", {"device": "d", "o": "remount,rw"}, "remount not allowed"),
        ("v", {"device": "/a", "o": "move"}, "move not allowed"),
        ("v", {"device": "/f", "o": "loop=/dev/loop0"}, "loop not allowed"),
        ("v", {"device": "d", "o": "tls, BIND "}, "bind not allowed"),
        ("v", {"device": "d", "o": 'a="x",bind'}, "bind not allowed"),
        ("v", {"device": "d", "o": "rshared"}, "rshared not allowed"),
    ],
)
def test_create_refuses_bad_input(name: object, opts: object, needle: str) -> None:
    reg, mounter, saver = make()
    with pytest.raises(VolumeError, match=re.escape(needle)):
        reg.create(name, opts)
    assert reg.volumes() == [] and saver.docs == [] and mounter.prepared == []


def test_efs_mount_options_the_agent_sends_are_accepted() -> None:
    reg, mounter, _ = make()
    o = "tls,tlsport=20049,iam,awscredsuri=/v2/credentials/abc,accesspoint=fsap-1,netns=/proc/42/ns/net"
    reg.create("v", {"type": "efs", "device": "fs-1:/data", "o": o})
    reg.mount("v", "c1")
    assert mounter.calls == [["mount", "-t", "efs", "-o", o, "fs-1:/data", f"{VOLS}/v"]]


def test_duplicate_name_and_shared_path_refused() -> None:
    reg, _, saver = make()
    reg.create("v", {"device": "d"})
    with pytest.raises(VolumeError, match="already exists"):
        reg.create("v", {"device": "other"})
    with pytest.raises(VolumeError, match="already used by volume v"):
        reg.create("w", {"device": "d", "target": f"{VOLS}/v"})
    assert len(saver.docs) == 1


def test_counts_per_mount_id_same_id_needs_two_unmounts() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"type": "efs", "device": "fs-1:/", "o": "tls,iam"})
    path = f"{VOLS}/v"
    assert reg.mount("v", "c1") == path
    assert mounter.calls == [["mount", "-t", "efs", "-o", "tls,iam", "fs-1:/", path]]
    assert reg.mount("v", "c1") == path  # same ID again: counted, not mounted again
    assert reg.mount("v", "c2") == path
    assert len(mounter.calls) == 1
    assert reg.get("v").mounts == {"c1": 2, "c2": 1}
    assert saver.last["volumes"]["v"]["mounts"] == {"c1": 2, "c2": 1}
    reg.unmount("v", "c1")
    reg.unmount("v", "c2")
    assert reg.get("v").mounts == {"c1": 1}
    assert len(mounter.calls) == 1 and path in mounter.mounted  # c1 still holds it
    reg.unmount("v", "c1")
    assert mounter.calls[-1] == ["umount", "-l", path]
    assert path not in mounter.mounted
    assert "mounts" not in saver.last["volumes"]["v"]


def test_unmount_of_unknown_id_succeeds_and_changes_nothing() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    saves, calls = len(saver.docs), list(mounter.calls)
    reg.unmount("v", "never-mounted")
    reg.unmount("v", "never-mounted")
    assert reg.get("v").mounts == {"c1": 1}
    assert len(saver.docs) == saves and mounter.calls == calls
    with pytest.raises(VolumeError, match="volume nope not found"):
        reg.unmount("nope", "c1")


def test_loaded_go_counts_unmount_of_the_last_id_unmounts_the_host() -> None:
    loaded = parse_state(GO_STATE.encode(), VOLS)
    mounter, saver = FakeMounter(), FakeSaver()
    path = f"{VOLS}/efsvol"
    mounter.mounted.add(path)  # the Go plugin mounted it before the upgrade
    reg = Registry(VOLS, mounter, saver, loaded.volumes)
    reg.mount("efsvol", "new-id")  # still mounted: counted, no second mount
    assert mounter.calls == []
    for mid in ("0b7d2a1c9e", "0b7d2a1c9e", "5f3e8d7c6b"):
        reg.unmount("efsvol", mid)
        assert mounter.calls == [] and path in mounter.mounted
    reg.unmount("efsvol", "new-id")
    assert mounter.calls == [["umount", "-l", path]] and path not in mounter.mounted
    assert "mounts" not in saver.last["volumes"]["efsvol"]
    assert saver.last["volumes"]["efsvol"]["createdAt"] == "2024-05-06T07:08:09.123456789Z"


def test_mount_without_type_or_o_leaves_them_out() -> None:
    reg, mounter, _ = make()
    reg.create("s3", {"type": "s3files", "device": "bucket"})
    reg.create("plain", {"device": "fs-2:/"})
    reg.mount("s3", "c1")
    reg.mount("plain", "c1")
    assert mounter.calls == [["mount", "-t", "s3files", "bucket", f"{VOLS}/s3"], ["mount", "fs-2:/", f"{VOLS}/plain"]]


def test_mount_refuses_missing_id_unknown_volume_and_unmountable_records() -> None:
    nodevice = Volume(name="old", type="efs", path=f"{VOLS}/old", options={"type": "efs"}, created_at="")
    bind = Volume(name="bind", type="efs", path=f"{VOLS}/bind", options={"device": "/", "o": "bind"}, created_at="")
    reg, mounter, _ = make({"old": nodevice, "bind": bind})
    reg.create("v", {"device": "d"})
    for mid in (None, "", 5):
        with pytest.raises(VolumeError, match="missing mount ID"):
            reg.mount("v", mid)
    with pytest.raises(VolumeError, match="volume nope not found"):
        reg.mount("nope", "c1")
    with pytest.raises(VolumeError, match="missing option 'device'"):
        reg.mount("old", "c1")
    with pytest.raises(VolumeError, match="bind not allowed"):
        reg.mount("bind", "c1")  # a state file edited behind our back cannot smuggle one in
    assert mounter.calls == []
    reg.remove("bind")  # but it can still be removed


def test_remount_when_mount_vanished() -> None:
    reg, mounter, _ = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    mounter.mounted.clear()  # someone unmounted it behind our back
    reg.mount("v", "c2")
    assert [c[0] for c in mounter.calls] == ["mount", "mount"]


def test_remove_unmounts_if_still_mounted_then_removes_the_directory() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    reg.remove("v")  # Go/SPEC: Remove unmounts a volume still mounted
    assert mounter.calls[-1] == ["umount", "-l", f"{VOLS}/v"] and mounter.mounted == set()
    assert reg.volumes() == [] and saver.last == {}
    assert mounter.released == [f"{VOLS}/v"]
    with pytest.raises(VolumeError, match="not found"):
        reg.remove("v")
    reg.create("t", {"device": "d", "target": "/mnt/mine"})
    reg.remove("t")
    assert mounter.released[-1] == "/mnt/mine"  # only ever removed when empty (HostMounter.release)


def test_remove_keeps_everything_when_umount_fails() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    mounter.fail_umount = True
    with pytest.raises(VolumeError, match="umount failed"):
        reg.remove("v")
    assert reg.get("v").mounts == {"c1": 1} and "v" in saver.last["volumes"] and mounter.released == []


def test_failed_mount_changes_nothing() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    mounter.fail_mount = True
    with pytest.raises(VolumeError, match="mount failed"):
        reg.mount("v", "c1")
    assert reg.get("v").mounts == {} and len(saver.docs) == 1


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
    assert reg.get("v").mounts == {}
    assert [c[0] for c in mounter.calls] == ["mount", "umount"]
    assert mounter.mounted == set()


def test_failed_save_rolls_back_second_mount_without_unmounting() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    saver.fail = True
    with pytest.raises(VolumeError):
        reg.mount("v", "c1")
    assert reg.get("v").mounts == {"c1": 1}
    assert [c[0] for c in mounter.calls] == ["mount"] and mounter.mounted


def test_failed_save_rolls_back_unmount_and_keeps_mount() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    saver.fail = True
    with pytest.raises(VolumeError, match="cannot save state"):
        reg.unmount("v", "c1")
    assert reg.get("v").mounts == {"c1": 1}
    assert [c[0] for c in mounter.calls] == ["mount"]  # nothing unmounted
    assert f"{VOLS}/v" in mounter.mounted


def test_failed_umount_restores_mount_count() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    mounter.fail_umount = True
    with pytest.raises(VolumeError, match="umount failed"):
        reg.unmount("v", "c1")
    assert reg.get("v").mounts == {"c1": 1}
    assert saver.last["volumes"]["v"]["mounts"] == {"c1": 1}


def test_failed_save_rolls_back_remove() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    saver.fail = True
    with pytest.raises(VolumeError):
        reg.remove("v")
    assert [v.name for v in reg.volumes()] == ["v"] and mounter.released == []


def test_reconcile_clears_counts_of_volumes_no_longer_mounted() -> None:
    reg, mounter, saver = make()
    reg.create("a", {"device": "d1"})
    reg.create("b", {"device": "d2", "o": "ro", "type": "s3files"})
    reg.mount("a", "c1")
    reg.mount("b", "c2")
    loaded = parse_state(encode_state(saver.last).encode(), VOLS)
    assert state_document(loaded.volumes) == saver.last
    # After a "reboot" only a is still mounted: b's stale count is dropped.
    mounter2, saver2 = FakeMounter(), FakeSaver()
    mounter2.mounted.add(f"{VOLS}/a")
    reg2 = Registry(VOLS, mounter2, saver2, loaded.volumes)
    assert reg2.reconcile() == ["b"]
    assert reg2.get("a").mounts == {"c1": 1} and reg2.get("b").mounts == {}
    assert "mounts" not in saver2.last["volumes"]["b"]
    assert reg2.reconcile() == []


# ---------------------------------------------------------------- exact answers (issue 21)


def test_mount_count_boundary() -> None:
    doc = {"volumes": {"v": {"path": "/p/v", "mounts": {"max": 2**31 - 1, "over": 2**31, "one": 1, "zero": 0}}}}
    loaded = volumes_from_document(doc, VOLS)
    assert loaded.volumes["v"].mounts == {"max": 2**31 - 1, "one": 1, "zero": 1}
    assert loaded.problems == [
        "volume v cannot be mounted as recorded (missing option 'device'); Remove still works",
        "volume v: ignoring mount 'over' with count '2147483648'",
    ]


def test_legacy_created_at_that_is_not_a_string_is_dropped() -> None:
    doc = {"version": 1, "volumes": [{"name": "v", "options": {"device": "d"}, "path": "/x/v", "created_at": 5}]}
    assert volumes_from_document(doc, VOLS).volumes["v"].created_at == ""


def test_parse_state_places_a_volume_without_path_in_the_volumes_dir() -> None:
    loaded = parse_state(b'{"volumes": {"v": {"options": {"device": "d"}}}}', "/srv/vols")
    assert loaded.volumes["v"].path == "/srv/vols/v" and loaded.problems == []


def test_registry_hands_out_copies() -> None:
    reg, _, _ = make()
    created = reg.create("v", {"device": "d"})
    created.options["o"] = "bind"
    reg.get("v").options["o"] = "bind"
    reg.volumes()[0].options["o"] = "bind"
    assert reg.get("v").options == {"device": "d"}
    assert reg.path("v") == f"{VOLS}/v"
    with pytest.raises(VolumeError) as err:
        reg.path("nope")
    assert str(err.value) == "volume nope not found"


def test_remove_unmounts_what_the_host_has_mounted_without_counts() -> None:
    reg, mounter, _ = make()
    reg.create("v", {"device": "d"})
    mounter.mounted.add(f"{VOLS}/v")  # mounted, but no mount ID holds it
    reg.remove("v")
    assert mounter.calls == [["umount", "-l", f"{VOLS}/v"]]


def test_remount_prepares_the_directory_again() -> None:
    reg, mounter, _ = make()
    reg.create("v", {"device": "d", "type": "s3files"})
    reg.mount("v", "c1")
    mounter.mounted.clear()
    reg.mount("v", "c2")
    assert mounter.prepared == [f"{VOLS}/v"] * 3
    assert mounter.calls[-1] == ["mount", "-t", "s3files", "d", f"{VOLS}/v"]


def test_reconcile_that_cannot_save_changes_nothing() -> None:
    reg, mounter, saver = make()
    reg.create("v", {"device": "d"})
    reg.mount("v", "c1")
    mounter.mounted.clear()
    saver.fail = True
    assert reg.reconcile() == []
    assert reg.get("v").mounts == {"c1": 1}


def test_missing_mount_id_exactly() -> None:
    reg, _, _ = make()
    reg.create("v", {"device": "d"})
    with pytest.raises(VolumeError) as err:
        reg.mount("v", "")
    assert str(err.value) == "missing mount ID"


def test_fields_of_the_wrong_type_are_named() -> None:
    doc = {"volumes": {"t": {"type": 5, "path": "/p/t"}, "p": {"path": 5}, "n": {"path": "/p/\x00"}}}
    assert volumes_from_document(doc, VOLS).problems == [
        "skipping volume entry 't': type is not a string",
        "skipping volume entry 'p': path is not a string",
        "skipping volume entry 'n': bad path '/p/\\x00'",
    ]
    legacy = {"version": 1, "volumes": [{"name": "a", "options": {}}, {"name": "b", "options": {}, "path": 5}]}
    assert volumes_from_document(legacy, VOLS).problems == [
        "skipping volume entry: volume a: no path",
        "skipping volume entry: path is not a string",
    ]
