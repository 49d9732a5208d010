"""Volume drivers and option validation (pure: no I/O).

The ``type`` option selects the driver and is also the ``mount -t`` type;
``efs`` is the default. Every driver takes the same options:

* ``type``   -- ``efs`` or ``s3files``
* ``device`` -- what to mount (``fs-12345678:/``, a bucket, ...); required
* ``o``      -- the ``mount -o`` option string (may be empty)
* ``target`` -- an absolute mount path; default ``<volumes dir>/<name>``
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

DEFAULT_TYPE = "efs"
KNOWN_OPTIONS = ("type", "device", "o", "target")

# Docker's own rule for volume names; also keeps a name a single safe path component.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_MAX_OPTION_LEN = 4096


class VolumeError(Exception):
    """A request that cannot be honoured; the message is returned as ``Err``."""


@dataclass(frozen=True)
class Driver:
    name: str
    mount_type: str


DRIVERS: dict[str, Driver] = {
    "efs": Driver(name="efs", mount_type="efs"),
    "s3files": Driver(name="s3files", mount_type="s3files"),
}


def driver_for(type_name: str) -> Driver:
    driver = DRIVERS.get(type_name)
    if driver is None:
        known = ", ".join(sorted(DRIVERS))
        raise VolumeError(f"unknown volume type {type_name!r} (known: {known})")
    return driver


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise VolumeError("missing volume Name")
    if not _NAME_RE.match(name):
        raise VolumeError(f"invalid volume name {name!r}: want [A-Za-z0-9][A-Za-z0-9_.-]*")
    return name


def normalize_options(opts: object) -> dict[str, str]:
    """Validate Create's ``Opts`` and return them with ``type`` filled in.

    Unknown option keys are refused (as Docker's local driver does) so a
    typo never silently changes what gets mounted.
    """
    if opts is None:
        opts = {}
    if not isinstance(opts, Mapping):
        raise VolumeError("Opts must be an object of strings")
    out: dict[str, str] = {}
    for key, value in opts.items():
        if key not in KNOWN_OPTIONS:
            raise VolumeError(f"unknown option {key!r} (known: {', '.join(KNOWN_OPTIONS)})")
        if not isinstance(value, str):
            raise VolumeError(f"option {key!r} must be a string")
        if len(value) > _MAX_OPTION_LEN or "\x00" in value or "\n" in value:
            raise VolumeError(f"option {key!r} is too long or has control characters")
        out[key] = value
    out["type"] = out.get("type") or DEFAULT_TYPE
    driver_for(out["type"])
    check_device(out.get("device", ""))
    target = out.get("target", "")
    if target:
        check_target(target)
    return out


def check_device(device: str) -> None:
    if not device:
        raise VolumeError("missing option 'device'")
    if device.startswith("-"):
        raise VolumeError(f"invalid device {device!r}")


def check_target(target: str) -> None:
    if not os.path.isabs(target):
        raise VolumeError(f"target {target!r} is not an absolute path")
    if ".." in target.split("/") or os.path.normpath(target) == "/":
        raise VolumeError(f"invalid target {target!r}")


def mount_path(name: str, options: Mapping[str, str], volumes_dir: str) -> str:
    target = options.get("target", "")
    if target:
        return os.path.normpath(target)
    return os.path.join(volumes_dir, name)


def mount_argv(options: Mapping[str, str], path: str) -> list[str]:
    """``mount -t <type> [-o <o>] <device> <path>``; refuses a missing device/path."""
    driver = driver_for(options.get("type") or DEFAULT_TYPE)
    device = options.get("device", "")
    check_device(device)
    if not path:
        raise VolumeError("missing mount target")
    argv = ["mount", "-t", driver.mount_type]
    if options.get("o"):
        argv += ["-o", options["o"]]
    argv += [device, path]
    return argv


def umount_argv(path: str) -> list[str]:
    return ["umount", "-l", path]
