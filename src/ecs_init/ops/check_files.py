"""``check``'s file checks: no symlink, FIFO, socket or device where this program reads or writes.

The agent container can write the log, data, cache, config and run
directories through its bind mounts, so what lies at each path this
program reads or appends to is checked: what each reader does with a
symlink or a special file (refuses it with one line, never blocks, never
follows the link) is said, with the fix. A symlink is fine only where it
is followed on purpose: ``/etc/os-release`` (root-owned, normally a link),
the cached tarball (the packages link ``ecs-agent.tar`` to the versioned
tarball beside it) and /etc/ecs/ecs.config (root's, read as the Go program reads it; not the instance
file in /var/lib/ecs, which the agent container can write).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any, Optional

from ecs_init.core.fsutil import kind_name
from ecs_init.core.lock import action_lock_path, supervisor_lock_path
from ecs_init.core.paths import Paths
from ecs_init.ops.report import FAIL, PASS, WARN, Check


@dataclass(frozen=True)
class Watched:
    name: str  # the check is files.<name>
    path: str
    effect: str  # what the program does when the path is unusable
    fix: str = "this program writes a new one when it needs it"  # what follows the removal
    directory: bool = False  # a directory is expected (else a regular file)
    follows: bool = False  # a symlink there is followed on purpose
    inside: str = ""  # a followed symlink should stay inside this directory


def watched(paths: Paths) -> list[Watched]:
    """Every path of SPEC §2 this program reads or appends to (most of them the agent container can
    write), and what an unusable one costs."""
    config = "write the settings into a regular file there"
    return [
        Watched(
            "ecs-config",
            paths.ecs_config,
            "it is ignored: the agent starts without these settings",
            config,
            follows=True,
        ),
        Watched("instance-config", paths.instance_config, "it is ignored", config),
        Watched("init-log", paths.init_log, "this program logs to the console only"),
        Watched("events", paths.events_file, "status shows no upgrade history; start replaces it with a new file"),
        Watched("supervisor-state", paths.supervisor_state, "status cannot show the supervisor; start replaces it"),
        Watched("action-lock", action_lock_path(paths), "pre-start, start, post-stop and reload-cache refuse to run"),
        Watched("supervisor-lock", supervisor_lock_path(paths), "start refuses to run"),
        Watched(
            "desired-image",
            paths.desired_image,
            "an agent self-update (exit 42) is refused",
            "the agent writes it again for its next update",
        ),
        Watched("cache-state", paths.cache_state, "the cache counts as uncached: pre-start downloads the agent"),
        Watched(
            "cache-tarball",
            paths.cache_tarball,
            "the agent image cannot be loaded from it",
            "pre-start downloads the agent, or reinstall the package for its bundled one",
            follows=True,
            inside=paths.cache_dir,
        ),
        Watched(
            "os-release",
            paths.os_release,
            "the platform is taken as generic (no certificate binds)",
            "restore it from the distribution's release package",
            follows=True,
        ),
        Watched("ebs-dir", paths.ebs_dir, "EBS task attach is off", "pre-start creates the directory", directory=True),
    ]


def check_files(paths: Paths) -> list[Check]:
    return [check_path(w) for w in watched(paths)]


def check_path(w: Watched) -> Check:
    name = f"files.{w.name}"
    expected = "a directory" if w.directory else "a regular file"
    details: dict[str, Any] = {"path": w.path}
    try:
        info = os.lstat(w.path)
    except FileNotFoundError:
        details["kind"] = "absent"
        made = "pre-start creates it" if w.directory else "nothing there yet"
        return Check(name, PASS, f"{w.path} does not exist ({made})", "", details)
    except OSError as err:
        return Check(name, WARN, f"cannot look at {w.path}: {err.strerror or err}", "run check as root", details)
    kind = kind_name(info.st_mode)
    details["kind"] = kind
    if kind == expected:
        return Check(name, PASS, f"{w.path} is {kind}", "", details)
    remove = f"remove {w.path} ({w.fix})"
    if not stat.S_ISLNK(info.st_mode):
        return Check(name, FAIL, f"{w.path} is {kind}, not {expected}: {w.effect}", remove, details)
    target = _readlink(w.path)
    if not w.follows:
        return Check(
            name,
            FAIL,
            f"{w.path} is a symlink{target}, never followed: {w.effect}",
            f"{remove}; not its target",
            details,
        )
    return _followed_link(w, name, target, details)


def _followed_link(w: Watched, name: str, target: str, details: dict[str, Any]) -> Check:
    fix = f"point {w.path} at a regular file, or remove it ({w.fix})"
    try:
        resolved = os.stat(w.path)
    except OSError as err:
        why = err.strerror or err
        return Check(name, WARN, f"{w.path} is a symlink{target} that leads nowhere ({why}): {w.effect}", fix, details)
    kind = kind_name(resolved.st_mode)
    if not stat.S_ISREG(resolved.st_mode):
        return Check(name, FAIL, f"{w.path} is a symlink{target} to {kind}: {w.effect}", fix, details)
    if w.inside:
        real, base = os.path.realpath(w.path), os.path.realpath(w.inside)
        if not real.startswith(base + os.sep):
            return Check(
                name,
                WARN,
                f"{w.path} is a symlink{target} that leads out of {w.inside}",
                f"keep the tarball in {w.inside}, or remove the link ({w.fix})",
                details,
            )
    return Check(name, PASS, f"{w.path} is a symlink{target} to a regular file (followed)", "", details)


def _readlink(path: str) -> str:
    target: Optional[str]
    try:
        target = os.readlink(path)
    except OSError:
        target = None
    return f" (to {target})" if target else ""
