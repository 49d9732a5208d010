"""Volume option validation (pure): the exact refusal each bad input gets (returned to Docker as Err)."""

from __future__ import annotations

import pytest

from ecs_init.volume_plugin.drivers import (
    VolumeError,
    check_mount_options,
    check_name,
    driver_for,
    mount_argv,
    mount_option_names,
    mount_path,
    normalize_options,
)

LIMIT = 4096


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({}, "missing option 'device'"),
        ({"device": "d", "colour": "red"}, "unknown option 'colour' (known: type, device, o, target)"),
        ({"device": "d", "type": "nfs"}, "unknown volume type 'nfs' (known: efs, s3files)"),
        ({"device": "d", "o": "bind,tls,loop"}, "mount option(s) bind, loop not allowed: they change the mount type"),
        ({"device": "d", "o": "offset=1=2"}, "mount option(s) offset not allowed: they change the mount type"),
        ({"device": "d\x00"}, "option 'device' is too long or has control characters"),
        ({"device": "d", "o": "tls\nbind"}, "option 'o' is too long or has control characters"),
        ({"device": "d", "target": "/x" * LIMIT}, "option 'target' is too long or has control characters"),
        ({"device": "d", "type": "efs\n"}, "option 'type' is too long or has control characters"),
        ("opts", "Opts must be an object of strings"),
    ],
)
def test_normalize_options_refusals_exactly(opts: object, message: str) -> None:
    with pytest.raises(VolumeError) as err:
        normalize_options(opts)
    assert str(err.value) == message


def test_option_values_up_to_the_limit_pass() -> None:
    device = "fs-1:/" + "d" * (LIMIT - 6)
    assert normalize_options({"device": device}) == {"device": device}
    with pytest.raises(VolumeError):
        normalize_options({"device": device + "d"})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "missing volume Name"),
        (3, "missing volume Name"),
        ("-v", "invalid volume name '-v': want [A-Za-z0-9][A-Za-z0-9_.-]*"),
    ],
)
def test_check_name_refusals_exactly(name: object, message: str) -> None:
    with pytest.raises(VolumeError) as err:
        check_name(name)
    assert str(err.value) == message


@pytest.mark.parametrize("key", ["type", "device", "o"])
@pytest.mark.parametrize("bad", ["\x00", "\n", "x" * (LIMIT + 1)])
def test_mount_argv_checks_every_recorded_value_again(key: str, bad: str) -> None:
    """A state file edited behind the plugin's back cannot smuggle a control character into mount(8)."""
    options = {"type": "efs", "device": "fs-1:/", "o": "tls"}
    options[key] = options[key] + bad if key != "type" else bad
    with pytest.raises(VolumeError):
        mount_argv("efs", options, "/mnt/v")


def test_mount_argv_exactly() -> None:
    assert mount_argv("", {"device": "fs-1:/"}, "/mnt/v") == ["mount", "fs-1:/", "/mnt/v"]
    assert mount_argv("efs", {"type": "efs", "device": "fs-1:/", "o": "tls"}, "/mnt/v") == [
        "mount",
        "-t",
        "efs",
        "-o",
        "tls",
        "fs-1:/",
        "/mnt/v",
    ]
    with pytest.raises(VolumeError) as err:
        mount_argv("efs", {"device": "fs-1:/"}, "")
    assert str(err.value) == "missing mount target"
    with pytest.raises(VolumeError) as err:
        mount_argv("efs", {"type": "nfs", "device": "fs-1:/"}, "/mnt/v")
    assert str(err.value) == "unknown volume type 'nfs' (known: efs, s3files)"


def test_mount_option_names() -> None:
    assert mount_option_names(" TLS , \"bind\"=x ,, accesspoint=fsap-1=2, 'Loop'") == [
        "tls",
        "bind",
        "accesspoint",
        "loop",
    ]
    check_mount_options("tls,iam,accesspoint=bind")  # a value named like an option is fine


def test_mount_path_and_driver() -> None:
    assert mount_path("v", {}, "/vols") == "/vols/v"
    assert mount_path("v", {"target": "/mnt//x/"}, "/vols") == "/mnt/x"
    assert driver_for("").name == "efs" and driver_for("s3files").name == "s3files"
