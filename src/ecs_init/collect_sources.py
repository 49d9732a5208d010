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
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ecs_init import redact
from ecs_init.agent_spec import AGENT_NAME
from ecs_init.context import HostContext
from ecs_init.errors import InitError
from ecs_init.fsutil import read_regular

if TYPE_CHECKING:
    from ecs_init.docker_client import DockerAdapter as Engine

MAX_FILE_BYTES = 1024 * 1024  # config, state and JSON files larger than this are cut
AGENT_LOG_LINES = 2000
MAX_JSON_VALUE = 64 * 1024  # a JSON value after a secret key is followed this far, else to the end of its line
AGENT_JSON_SECRET_KEYS = ("EngineAuthData",)  # ECS_ENGINE_AUTH_DATA as the agent's JSON config spells it

# KEY=value and "key": "value" where the key names a secret (SPEC §11): the value goes, the key stays.
# Found from the secret word outwards (a linear scan: a regex that first matches the key's leading
# characters backtracks over every long word of a log and took seconds per 10 MiB).
_SECRET_WORDS = ("secret", "token", "password", "ecs_engine_auth_data")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_SEPARATOR = re.compile(r"=|\"\s*:\s*")
_QUOTED = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"")
_BARE = re.compile(r"[^\s\",;&}\]]+")

_ENV_LINE = re.compile(r"(?P<lead>\s*#?\s*)(?P<key>[^=]*)=(?P<value>.*)\Z", re.DOTALL)


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


# ---------------------------------------------------------------- secrets


def scrub(text: str, by_key: bool = True) -> str:
    """Text with every registered secret value and URL password removed, and (``by_key``) the value
    of every ``KEY=value`` or ``"key": "value"`` whose key names a secret.

    JSON members are redacted by key as documents already (their fields, such as
    ``secrets_redacted``, are not settings): they get ``by_key=False``.
    """
    text = redact.redact_text(text)
    return redact_by_key(text) if by_key else text


def _secret_words(text: str) -> list[tuple[int, int]]:
    """(start, end) of every secret word in ``text``, any case, in order (plain substring search)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer: stay exact, search the original
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    found = []
    for word in _SECRET_WORDS:
        at = lowered.find(word)
        while at >= 0:
            found.append((at, at + len(word)))
            at = lowered.find(word, at + 1)
    return sorted(found)


def _value_end(text: str, start: int) -> int:
    """Where the value starting at ``start`` ends: a quoted string, a JSON object or list (to its
    closing bracket, at most to the end of the line), or a bare word."""
    if start >= len(text):
        return start
    if text[start] == '"':
        quoted = _QUOTED.match(text, start)
        return quoted.end() if quoted else start
    if text[start] in "{[":
        depth, position, in_string = 0, start, False
        limit = min(len(text), start + MAX_JSON_VALUE)
        while position < limit:
            char = text[position]
            if char == "\n":
                return position  # unbalanced: the rest of the line goes
            if in_string:
                if char == "\\":
                    position += 1
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return position + 1
            position += 1
        line_end = text.find("\n", limit)  # very long: to the end of the line
        return len(text) if line_end < 0 else line_end
    bare = _BARE.match(text, start)
    return bare.end() if bare else start


def redact_by_key(text: str) -> str:
    """The values of ``KEY=value`` and ``"key": "value"`` pairs whose key names a secret, replaced."""
    out: list[str] = []
    done = 0
    for start, end in _secret_words(text):
        if start < done:
            continue  # inside a value already replaced
        while end < len(text) and text[end] in _KEY_CHARS:
            end += 1
        separator = _SEPARATOR.match(text, end)
        value_end = _value_end(text, separator.end()) if separator else 0
        if separator is None or value_end <= separator.end():
            continue
        out.append(text[done : separator.end()])
        out.append(f'"{redact.REDACTED}"' if text[separator.end()] == '"' else redact.REDACTED)
        done = value_end
    out.append(text[done:])
    return "".join(out)


def redact_env_text(text: str) -> str:
    """An env file with every secret key's value replaced, commented-out lines included;
    a line whose key part looks like a secret key but is malformed shows its name only."""
    out = []
    for line in text.split("\n"):
        match = _ENV_LINE.match(line)
        if match is None:
            out.append(redact.display_key(line.strip()) if redact.is_secret_key(line) else line)
            continue
        lead, key, value = match.group("lead"), match.group("key"), match.group("value")
        out.append(f"{lead}{redact.display_key(key.strip())}={redact.redact_value(key.strip(), value)}")
    return "\n".join(out)


def _agent_json_secrets(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {
            k: (redact.REDACTED if k in AGENT_JSON_SECRET_KEYS and v not in ("", None) else _agent_json_secrets(v))
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [_agent_json_secrets(v) for v in doc]
    return doc


def register_container_secrets(state: Mapping[str, Any]) -> None:
    """Remember the secrets of a container's Env, labels and log options, for the free-text pass."""
    config = state.get("Config") or {}
    env = {}
    for entry in config.get("Env") or []:
        key, sep, value = str(entry).partition("=")
        if sep:
            env[key] = value
    redact.register_secrets(env)
    labels = config.get("Labels") or {}
    if isinstance(labels, dict):
        redact.register_secrets({str(k): str(v) for k, v in labels.items()})
    log_config = ((state.get("HostConfig") or {}).get("LogConfig") or {}).get("Config") or {}
    if isinstance(log_config, dict):
        redact.register_secrets({str(k): str(v) for k, v in log_config.items()})


def redact_container(state: Mapping[str, Any]) -> dict[str, Any]:
    """``docker inspect`` of a container with the values of secret keys (Env, labels, log options) replaced."""
    doc: dict[str, Any] = json.loads(json.dumps(state, default=str))
    config = doc.get("Config") or {}
    if isinstance(config.get("Env"), list):
        config["Env"] = redact.redact_env_entries(str(e) for e in config["Env"])
    redacted: dict[str, Any] = redact.redact_json(doc)
    return redacted


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
    for value in _walk_values(doc, AGENT_JSON_SECRET_KEYS):
        redact.register_secrets({"ECS_ENGINE_AUTH_DATA": value})
    redact.register_secrets({"agent-json": json.dumps(doc)})
    items.append(Item("config/ecs.config.json", path, as_json(redact.redact_json(_agent_json_secrets(doc)))))
    return items


def _walk_values(doc: Any, keys: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in keys:
                found.append(value if isinstance(value, str) else json.dumps(value))
            else:
                found += _walk_values(value, keys)
    elif isinstance(doc, list):
        for value in doc:
            found += _walk_values(value, keys)
    return found


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
    from ecs_init import cache
    from ecs_init.supervisor import events_path, status_path

    paths = ctx.paths
    items = [
        _json_file_item("state/ecs-init-events.json", events_path(ctx)),
        _json_file_item("state/supervisor.json", status_path(ctx)),
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
    """The Engine's version and info, ``docker inspect`` of the agent (redacted), its last 2 000 log lines."""
    from ecs_init.status import connect_quick, one_line

    host = ctx.cfg.docker_host()
    try:
        engine: Engine = connect_quick(ctx.cfg)
    except InitError as err:
        return [failed("docker/", f"Docker at {host}", f"{err}: no Engine facts, agent container or its logs")]
    items: list[Item] = []
    try:
        items.append(Item("docker/version.json", "GET /version", as_json(dict(engine.server_version))))
        items.append(_engine_call("docker/info.json", "GET /info", lambda: as_json(engine.api.info()), one_line))
        try:
            state = engine.container_state(AGENT_NAME)
        except Exception as err:  # noqa: BLE001 - any Engine failure becomes a manifest line
            state = None
            items.append(failed(f"docker/inspect-{AGENT_NAME}.json", f"inspect {AGENT_NAME}", one_line(err)))
        else:
            if state is None:
                items.append(Item(f"docker/inspect-{AGENT_NAME}.json", f"inspect {AGENT_NAME}",
                                  skipped=f"there is no container named {AGENT_NAME}"))  # fmt: skip
            else:
                register_container_secrets(state)
                items.append(Item(f"docker/inspect-{AGENT_NAME}.json", f"inspect {AGENT_NAME}",
                                  as_json(redact_container(state))))  # fmt: skip
        if state is not None:
            items.append(
                _engine_call(
                    f"docker/{AGENT_NAME}.log",
                    f"logs --tail {AGENT_LOG_LINES} --timestamps {AGENT_NAME}",
                    lambda: ("\n".join(engine.logs_tail(AGENT_NAME, AGENT_LOG_LINES)) + "\n").encode("utf-8"),
                    one_line,
                )
            )
    finally:
        engine.close()
    return items


def _engine_call(name: str, source: str, call: Any, one_line: Any) -> Item:
    try:
        return Item(name, source, call())
    except Exception as err:  # noqa: BLE001 - any Engine failure becomes a manifest line
        return failed(name, source, str(one_line(err)))


# ---------------------------------------------------------------- the operator reports


def report_items(ctx: HostContext) -> list[Item]:
    """status.json, check.json, render.json: the documents the commands print with --json."""
    import time

    def status_doc() -> Any:
        from ecs_init import status

        return status.gather(ctx)

    def check_doc() -> Any:
        from ecs_init import check

        started = time.monotonic()
        return check.report(check.run_checks(ctx), time.monotonic() - started)

    def render_doc() -> Any:
        from ecs_init import render

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
