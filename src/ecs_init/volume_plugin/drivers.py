"""Volume drivers and option validation (pure: no I/O).

The ``type`` option selects the driver and is also the ``mount -t`` type
(SPEC §13): ``efs``, ``s3files`` or empty, an empty type meaning the efs
driver and no ``-t`` at all. Every driver takes the same options:

* ``type``   -- ``efs``, ``s3files`` or empty
* ``device`` -- what to mount (``fs-12345678:/``, a bucket, ...); required
* ``o``      -- the ``mount -o`` option string (may be empty); options that
  turn the mount into another kind of mount (``bind``, ``remount``, ...)
  are refused
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

# mount(8) options that are not file-system options but select another
# operation or kind of mount: a bind mount of any host path, a remount or
# move of an existing mount, a loop device over a host file, a propagation
# change, another mount helper. Any of them would turn an "efs" volume into
# something else, so they are refused at Create and again before mounting.
FORBIDDEN_MOUNT_OPTIONS = frozenset(
    {
        "bind",
        "rbind",
        "remount",
        "move",
        "rmove",
        "loop",
        "offset",
        "sizelimit",
        "encryption",
        "helper",
        "uhelper",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "private",
        "rprivate",
        "unbindable",
        "runbindable",
    }
)

# What umount(8) says when the path is not (or no longer) a mount point; the
# Go plugin takes both as success (SPEC §13).
_NOT_MOUNTED_MARKS = ("not mounted", "no mount point specified")


class VolumeError(Exception):
    """A request that cannot be honoured; the message is returned as ``Err``."""


@dataclass(frozen=True)
class Driver:
    name: str


DRIVERS: dict[str, Driver] = {
    "efs": Driver(name="efs"),
    "s3files": Driver(name="s3files"),
}


def driver_for(type_name: str) -> Driver:
    """The driver for a volume ``type``; empty means the default (efs)."""
    driver = DRIVERS.get(type_name or DEFAULT_TYPE)
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
    """Validate Create's ``Opts``; returns them as given (nothing filled in,
    as the Go plugin records them).

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
        check_option_value(key, value)
        out[key] = value
    driver_for(out.get("type", ""))
    check_device(out.get("device", ""))
    check_mount_options(out.get("o", ""))
    target = out.get("target", "")
    if target:
        check_target(target)
    return out


def check_option_value(key: str, value: str) -> None:
    if len(value) > _MAX_OPTION_LEN or "\x00" in value or "\n" in value:
        raise VolumeError(f"option {key!r} is too long or has control characters")


def check_device(device: str) -> None:
    if not device:
        raise VolumeError("missing option 'device'")
    if device.startswith("-"):
        raise VolumeError(f"invalid device {device!r}")


def mount_option_names(o: str) -> list[str]:
    """The option names in a ``mount -o`` string, lower-cased, quotes and
    blanks stripped. Splits at every comma, quoted or not: for the refusal
    below that can only over-refuse, never let an option through."""
    names = []
    for part in o.split(","):
        name = part.split("=", 1)[0].strip().strip("\"'").strip().lower()
        if name:
            names.append(name)
    return names


def check_mount_options(o: str) -> None:
    """Refuse ``o`` options that change the kind of mount (see above)."""
    bad = sorted({n for n in mount_option_names(o) if n in FORBIDDEN_MOUNT_OPTIONS})
    if bad:
        raise VolumeError(f"mount option(s) {', '.join(bad)} not allowed: they change the mount type")


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


def mount_argv(volume_type: str, options: Mapping[str, str], path: str) -> list[str]:
    """``mount [-t <type>] [-o <o>] <device> <path>`` (SPEC §13).

    ``volume_type`` (the volume's ``type`` field) picks the driver; the
    ``type`` option is what goes after ``-t``. They are the same for every
    volume Create records; a state file may say otherwise, as the Go plugin
    would read it. Everything is validated again here, so a state file
    edited behind our back cannot smuggle in a bind mount.
    """
    driver_for(volume_type)
    mount_type = options.get("type", "")
    driver_for(mount_type)
    device = options.get("device", "")
    check_device(device)
    o = options.get("o", "")
    check_mount_options(o)
    for key in ("type", "device", "o"):
        check_option_value(key, options.get(key, ""))
    if not path:
        raise VolumeError("missing mount target")
    argv = ["mount"]
    if mount_type:
        argv += ["-t", mount_type]
    if o:
        argv += ["-o", o]
    argv += [device, path]
    return argv


def umount_argv(path: str) -> list[str]:
    return ["umount", "-l", path]


def not_mounted(umount_output: str) -> bool:
    """Whether umount(8)'s complaint means the path is simply not mounted."""
    lowered = umount_output.lower()
    return any(mark in lowered for mark in _NOT_MOUNTED_MARKS)
