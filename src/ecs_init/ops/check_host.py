"""``check``'s host checks: the cached tarball, free space, the tools pre-start runs, the cgroup mount."""

from __future__ import annotations

import io
import os
import tarfile
from typing import Any, BinaryIO, Optional

from ecs_init.agent import cache
from ecs_init.agent.identity import AGENT_IMAGE
from ecs_init.core import jsonfile
from ecs_init.core.fsutil import open_regular, refusal
from ecs_init.core.platform import read_platform
from ecs_init.docker.api import Engine
from ecs_init.docker.errors import EngineError
from ecs_init.host.context import HostContext
from ecs_init.ops.report import FAIL, PASS, SKIP, WARN, Check, human_bytes

MIB = 1024 * 1024
GIB = 1024 * MIB
FREE_WARN_BYTES = 1 * GIB
FREE_FAIL_BYTES = 200 * MIB
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MEMBERS = 4096  # tar members inspect_archive reads the headers of
MAX_HEADER_READ = MAX_MANIFEST_BYTES  # the largest single read: a header (pax, long name) or manifest.json
DEFAULT_DOCKER_ROOT = "/var/lib/docker"
TOOLS = ("iptables", "sysctl", "ip")


class _BoundedReads(io.RawIOBase):
    """The tarball for ``tarfile``: seekable, but no single read larger than ``MAX_HEADER_READ``
    (a pax or GNU long-name header claiming gigabytes would otherwise be read into memory)."""

    def __init__(self, fh: BinaryIO):
        super().__init__()
        self._fh = fh

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > MAX_HEADER_READ:
            raise tarfile.ReadError(f"a header or member of more than {MAX_HEADER_READ} bytes")
        return self._fh.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


def inspect_archive(path: str) -> tuple[list[str], str]:
    """The RepoTags of a ``docker save`` archive, or ([], why it is not one).

    Only tar headers and manifest.json are read (members are skipped by
    seeking), at most ``MAX_MEMBERS`` headers and never more than
    ``MAX_HEADER_READ`` bytes at once, so any file costs milliseconds and
    little memory (a docker save archive of an image with Docker's maximum
    of 127 layers has a few hundred members).
    """
    try:
        fd, info = open_regular(path)
        raw = os.fdopen(fd, "rb")
        with raw, tarfile.open(fileobj=_BoundedReads(raw), mode="r:") as tar:
            size = info.st_size
            names: set[str] = set()
            manifest_member: Optional[tarfile.TarInfo] = None
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    return [], f"has more than {MAX_MEMBERS} members: not a docker save archive of the agent"
                name = member.name.lstrip("./")
                names.add(name)
                if name == "manifest.json":
                    manifest_member = member
                if member.isfile() and member.offset_data + member.size > size:
                    return [], f"is truncated: member {member.name} ends past the end of the file"
            if manifest_member is None or not manifest_member.isfile():
                return [], "is a tar archive but not a docker save archive (no manifest.json)"
            if manifest_member.size > MAX_MANIFEST_BYTES:
                return [], "has an implausibly large manifest.json"
            fh = tar.extractfile(manifest_member)
            if fh is None:
                return [], "has an unreadable manifest.json"
            manifest = jsonfile.loads(fh.read())
    except jsonfile.BadJSON as err:
        return [], f"has a manifest.json that {err}"
    except (tarfile.TarError, EOFError, ValueError) as err:
        return [], f"is not a readable tar archive ({err})"
    except OSError as err:
        return [], refusal(err)
    if not isinstance(manifest, list):
        return [], "has a manifest.json that is not a list"
    tags: list[str] = []
    for image in manifest:
        if not isinstance(image, dict):
            return [], "has a malformed manifest.json"
        layers = image.get("Layers")
        wanted = [image.get("Config"), *(layers if isinstance(layers, list) else [])]
        missing = [str(p) for p in wanted if isinstance(p, str) and p.lstrip("./") not in names]
        if missing:
            return [], f"is truncated or incomplete: {missing[0]} is missing"
        repo_tags = image.get("RepoTags")
        tags.extend(str(t) for t in (repo_tags if isinstance(repo_tags, list) else []))
    return tags, ""


def check_tarball(ctx: HostContext) -> Check:
    name = "cache.tarball"
    paths = ctx.paths
    tarball = paths.cache_tarball
    state = cache.read_state(paths)
    details: dict[str, Any] = {"file": tarball, "state": state}
    fresh = f"remove {tarball} and {paths.cache_state}: the next pre-start (or reload-cache) downloads a fresh copy"
    try:
        size = os.path.getsize(tarball)
    except FileNotFoundError:
        return Check(
            name,
            WARN,
            f"no cached tarball {tarball}: pre-start will download the agent (needs network access)",
            "install the ecs-init package's tarball, or make sure this host can reach the download bucket",
            details,
        )
    except OSError as err:
        return Check(name, FAIL, f"cannot read {tarball}: {err.strerror or err}", fresh, details)
    details["bytes"] = size
    if os.path.isdir(tarball):
        return Check(name, FAIL, f"{tarball} is a directory", f"remove the directory {tarball}", details)
    if size == 0:
        return Check(name, WARN, f"{tarball} is empty: pre-start will download the agent", fresh, details)
    tags, problem = inspect_archive(tarball)
    if problem:
        return Check(name, FAIL, f"{tarball} {problem}", fresh, details)
    details["tags"] = tags
    if AGENT_IMAGE not in tags:
        found = ", ".join(tags) or "no tags"
        return Check(name, FAIL, f"{tarball} does not contain {AGENT_IMAGE} (it has {found})", fresh, details)
    if state not in cache.KNOWN_STATES:
        return Check(
            name,
            FAIL,
            f"pre-start will fail: {cache.unknown_state_message(paths, state)}",
            f"run amazon-ecs-init reload-cache, or write 2 to {paths.cache_state}",
            details,
        )
    state_name = cache.state_name(state)
    return Check(
        name,
        PASS,
        f"{human_bytes(size)} docker save archive with {AGENT_IMAGE} (cache state {state}: {state_name})",
        "",
        details,
    )


# ---------------------------------------------------------------- disk, tools, cgroup


def _existing_ancestor(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def free_space_check(name: str, what: str, path: str, hint: str) -> Check:
    target = _existing_ancestor(path)
    try:
        st = os.statvfs(target)
    except OSError as err:
        return Check(
            name, WARN, f"cannot tell the free space of {what} {path}: {err.strerror or err}", "", {"path": path}
        )
    free = st.f_bavail * st.f_frsize
    details = {"path": path, "free_bytes": free}
    text = f"{human_bytes(free)} free in {what} {path}"
    if free < FREE_FAIL_BYTES:
        return Check(name, FAIL, f"only {text} (under {human_bytes(FREE_FAIL_BYTES)})", hint, details)
    if free < FREE_WARN_BYTES:
        return Check(name, WARN, f"only {text} (under {human_bytes(FREE_WARN_BYTES)})", hint, details)
    return Check(name, PASS, text, "", details)


def check_docker_root(engine: Optional[Engine]) -> Check:
    root = DEFAULT_DOCKER_ROOT
    hint = "free space there: docker system prune, or grow the volume"
    if engine is not None:
        try:
            root = str(engine.info().get("DockerRootDir") or DEFAULT_DOCKER_ROOT)
        except EngineError:  # fall back to the usual directory
            root = DEFAULT_DOCKER_ROOT
    if not os.path.exists(root):
        return Check(
            "disk.docker-root", SKIP, f"Docker's root directory {root} is not visible from here", "", {"path": root}
        )
    return free_space_check("disk.docker-root", "Docker's root directory", root, hint)


def check_tools(ctx: HostContext) -> list[Check]:
    out = []
    for tool in TOOLS:
        found = ctx.runner.which(tool)
        if found:
            out.append(Check(f"tool.{tool}", PASS, f"{tool} is {found}", "", {"path": found}))
        else:
            package = {"iptables": "iptables", "sysctl": "procps", "ip": "iproute2 (iproute)"}[tool]
            out.append(
                Check(
                    f"tool.{tool}",
                    FAIL,
                    f"{tool} is not on PATH: pre-start cannot prepare the host",
                    f"install the {package} package",
                )
            )
    return out


def check_cgroup(ctx: HostContext) -> Check:
    platform = read_platform(ctx.paths)
    mount = platform.cgroup_mountpoint
    details = {"path": mount, "platform": platform.family}
    if not os.path.isdir(mount):
        return Check(
            "cgroup",
            FAIL,
            f"cgroup mountpoint {mount} does not exist ({platform.family} platform)",
            "mount the cgroup filesystem (the agent binds it as /sys/fs/cgroup)",
            details,
        )
    if not os.path.ismount(mount):
        return Check(
            "cgroup", WARN, f"{mount} exists but is not a mount point", "mount the cgroup filesystem there", details
        )
    return Check("cgroup", PASS, f"cgroup mountpoint {mount} is mounted", "", details)
