"""What a support bundle holds, gathered as ``Item``s: configuration, state, Docker, reports.

Every gatherer returns items and never raises for a missing file, tool or
daemon: such a thing becomes an item with ``error`` (a line in the
manifest). Secrets are handled twice: by key where the structure is known
(ecs.config lines, the agent JSON config, the container's Env, labels and
log options), and registered so that the final free-text pass over every
member (``scrub``) removes their values anywhere else too.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from ecs_init.agent.identity import AGENT_NAME
from ecs_init.core import redact
from ecs_init.core.errors import InitError, first_line
from ecs_init.core.fsutil import read_regular
from ecs_init.docker.errors import EngineError
from ecs_init.host.context import HostContext
from ecs_init.ops.collect_redact import (
    redact_agent_config,
    redact_container,
    redact_env_text,
    register_container_secrets,
)

if TYPE_CHECKING:
    from ecs_init.docker.api import LogLine

MAX_FILE_BYTES = 1024 * 1024  # config, state and JSON files larger than this are cut
AGENT_LOG_LINES = 2000


@dataclass
class Item:
    """One member of the bundle, or why it is not there."""

    name: str  # path inside the bundle
    source: str  # the file, command or API call it came from
    data: bytes = b""
    error: str = ""  # could not be collected: why
    skipped: str = ""  # deliberately left out: why
    keep_newest: bool = True  # when cut to fit: keep the end (logs) or the start
    note: str = ""

    @property
    def is_json(self) -> bool:
        """A JSON document, redacted by key when it was built (see ``scrub``)."""
        return self.name.endswith(".json")


ABSENT = "does not exist"


def failed(name: str, source: str, why: str) -> Item:
    """An item that could not be collected; a file that does not exist is only left out."""
    if why == ABSENT:
        return Item(name, source, skipped=why)
    return Item(name, source, error=why)


def as_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def _why(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return ABSENT
    return str(err.strerror or err)


def read_file(path: str, limit: int = MAX_FILE_BYTES, follow: bool = False) -> tuple[Optional[bytes], str]:
    """(content, "") or (None, why not): a regular file, never blocking, and never through a
    symlink unless ``follow`` (for system files such as /etc/os-release, never for anything
    under the directories the agent container can write)."""
    try:
        data = read_regular(path, limit + 1, follow_symlinks=follow)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return None, "is a symlink (not followed)"
        return None, _why(err)
    if len(data) > limit:
        return data[:limit], f"cut at {limit} bytes"
    return data, ""


# ---------------------------------------------------------------- configuration and state


def config_items(ctx: HostContext) -> list[Item]:
    paths = ctx.paths
    items = []
    for name, path in (("config/etc-ecs-ecs.config", paths.ecs_config),
                       ("config/var-lib-ecs-ecs.config", paths.instance_config)):  # fmt: skip
        data, why = read_file(path)
        if data is None:
            items.append(failed(name, path, why))
            continue
        text = data.decode("utf-8", errors="replace").replace("\x00", "\n")
        items.append(Item(name, path, redact_env_text(text).encode("utf-8"), note=why, keep_newest=False))
    path = paths.ecs_config_json
    data, why = read_file(path)
    if data is None:
        items.append(failed("config/ecs.config.json", path, why))
        return items
    try:
        doc = json.loads(data.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as err:
        items.append(failed("config/ecs.config.json", path, f"not valid JSON ({err}): left out, it may hold secrets"))
        return items
    items.append(Item("config/ecs.config.json", path, as_json(redact_agent_config(doc))))
    return items


def _json_file_item(name: str, path: str) -> Item:
    data, why = read_file(path)
    if data is None:
        return failed(name, path, why)
    try:
        doc = json.loads(data.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return Item(name + ".txt", path, data, note="not valid JSON; included as text")
    return Item(name, path, as_json(redact.redact_json(doc)), note=why)


def _digests(path: str) -> dict[str, Any]:
    """Size, MD5 (comparable with S3's .md5) and SHA-256 of the tarball; never its content."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    md5, sha256 = hashlib.md5(), hashlib.sha256()  # noqa: S324 - S3's published checksum, not security
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        size = 0
        while True:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return {"bytes": size, "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def state_items(ctx: HostContext) -> list[Item]:
    from ecs_init.agent import cache
    from ecs_init.agent.events import events_path

    paths = ctx.paths
    items = [
        _json_file_item("state/ecs-init-events.json", events_path(ctx)),
        _json_file_item("state/supervisor.json", ctx.paths.supervisor_state),
    ]
    doc: dict[str, Any] = {"state_file": paths.cache_state, "state": cache.read_state(paths)}
    raw, why = read_file(paths.cache_state, 64)
    doc["state_file_content"] = raw.decode("utf-8", errors="replace") if raw is not None else None
    doc["state_file_error"] = why or None
    desired, why = read_file(paths.desired_image, 4096)
    doc["desired_image"] = desired.decode("utf-8", errors="replace").split("\n", 1)[0] if desired else None
    doc["tarball"] = paths.cache_tarball
    try:
        doc["tarball_facts"] = _digests(paths.cache_tarball)
    except OSError as err:
        doc["tarball_facts"] = None
        doc["tarball_error"] = _why(err)
    try:
        listing = sorted(os.listdir(paths.cache_dir))
        doc["cache_dir"] = {n: _size(os.path.join(paths.cache_dir, n)) for n in listing[:200]}
    except OSError as err:
        doc["cache_dir_error"] = _why(err)
    items.append(Item("state/cache.json", paths.cache_dir, as_json(doc)))
    return items


def _size(path: str) -> Optional[int]:
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


# ---------------------------------------------------------------- Docker


def docker_items(ctx: HostContext) -> list[Item]:
    """The Engine's version and info, ``docker inspect`` of the agent (redacted), its last 2 000 log lines.

    Every call goes through the Engine client with the operator commands' short
    timeout: a daemon that does not answer costs one timeout, then one line.
    """
    from ecs_init.ops.report import connect_quick

    inspect_name, inspect_source = f"docker/inspect-{AGENT_NAME}.json", f"GET /containers/{AGENT_NAME}/json"
    try:
        engine = connect_quick(ctx.cfg)
    except InitError as err:
        return [failed("docker/", f"Docker at {ctx.cfg.docker_host()}", f"{err}: no Engine facts, agent or its logs")]
    items = [Item("docker/version.json", "GET /version", as_json(dict(engine.server_version)))]
    try:
        items.append(_engine_call("docker/info.json", "GET /info", lambda: as_json(engine.info())))
        try:
            state = engine.container_state(AGENT_NAME)
        except EngineError as err:
            items.append(failed(inspect_name, inspect_source, first_line(err)))
            return items
        if state is None:
            items.append(Item(inspect_name, inspect_source, skipped=f"there is no container named {AGENT_NAME}"))
            return items
        register_container_secrets(state)
        items.append(Item(inspect_name, inspect_source, as_json(redact_container(state))))
        items.append(
            _engine_call(
                f"docker/{AGENT_NAME}.log",
                f"GET /containers/{AGENT_NAME}/logs?tail={AGENT_LOG_LINES}&timestamps=1",
                lambda: log_text(engine.logs_tail(AGENT_NAME, AGENT_LOG_LINES)),
            )
        )
    finally:
        engine.close()
    return items


def log_text(lines: list[LogLine]) -> bytes:
    """A container's log lines as ``docker logs --timestamps`` shows them, stderr lines marked."""
    return "".join(f"{line.text}{'  [stderr]' if line.stream == 'stderr' else ''}\n" for line in lines).encode()


def _engine_call(name: str, source: str, call: Callable[[], bytes]) -> Item:
    try:
        return Item(name, source, call())
    except EngineError as err:
        return failed(name, source, first_line(err))


# ---------------------------------------------------------------- the operator reports


def report_items(ctx: HostContext) -> list[Item]:
    """status.json, check.json, render.json: the documents the commands print with --json."""
    import time

    def status_doc() -> Any:
        from ecs_init.ops import status

        return status.gather(ctx)

    def check_doc() -> Any:
        from ecs_init.ops import check

        started = time.monotonic()
        return check.report(check.run_checks(ctx), time.monotonic() - started)

    def render_doc() -> Any:
        from ecs_init.ops import render

        return render.render(ctx)

    items = []
    for name, command, build in (("status.json", "status --json", status_doc),
                                 ("check.json", "check --json", check_doc),
                                 ("render.json", "render --json", render_doc)):  # fmt: skip
        try:
            items.append(Item(name, f"amazon-ecs-init {command}", as_json(build())))
        except Exception as err:  # noqa: BLE001 - one report failing must not fail the bundle
            items.append(failed(name, f"amazon-ecs-init {command}", f"{type(err).__name__}: {err}"))
    return items
