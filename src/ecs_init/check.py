"""``amazon-ecs-init check``: named host and configuration checks, PASS/WARN/FAIL.

Read-only. Each check has a stable name, a status, a one-line reason and,
unless it passed, a hint to fix it. Exit 0 when nothing FAILed, 1 otherwise.

Severity policy:
- FAIL: the host cannot run the agent as configured, or a setting will
  silently be replaced by something the operator did not write (an
  unparsable boolean becomes false, invalid ``ECS_AGENT_LABELS`` are
  dropped, an unsupported ``ECS_LOG_DRIVER`` becomes json-file, ...).
- WARN: probably a mistake, but harmless to start (an unknown key may be a
  setting of a newer agent; a missing tarball is downloaded by pre-start; a
  boolean spelled so that only one of SPEC §3's two rules takes it as true,
  e.g. ``ECS_AGENT_RUN_PRIVILEGED=1``, which is off).
- SKIP: the check does not apply now (e.g. the agent is not running), or a
  check it depends on failed.

Free space: FAIL under 200 MiB, WARN under 1 GiB, in the Docker root
directory (``DockerRootDir`` from ``docker info``) and in the cache
directory. The agent image is about 100–200 MiB: loading it needs room for
its layers, and a download needs room for the tarball.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
import sys
import tarfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ecs_init import cache, redact
from ecs_init.agent_spec import AGENT_IMAGE, AGENT_NAME, SUPPORTED_LOG_DRIVERS
from ecs_init.config import (
    BOOLEAN_RULES,
    MAX_CONFIG_BYTES,
    Config,
    parse_bool,
    read_platform,
    rules_disagree,
    version_tuple,
)
from ecs_init.context import HostContext
from ecs_init.docker.errors import EngineError
from ecs_init.errors import InitError
from ecs_init.known_keys import BOOLEAN_KEYS, KNOWN_KEYS
from ecs_init.status import connect_quick, fetch_metadata, human_bytes, make_parser, one_line

if TYPE_CHECKING:
    from ecs_init.docker.api import Engine

PASS = "PASS"
WARN = "WARN"
FAIL = "FAIL"
SKIP = "SKIP"

EXIT_OK = 0
EXIT_FAILED = 1

MIB = 1024 * 1024
GIB = 1024 * MIB
FREE_WARN_BYTES = 1 * GIB
FREE_FAIL_BYTES = 200 * MIB
MAX_MANIFEST_BYTES = 1024 * 1024
DEFAULT_DOCKER_ROOT = "/var/lib/docker"
SUGGESTION_CUTOFF = 0.75
TOOLS = ("iptables", "sysctl", "ip")


@dataclass
class Check:
    name: str
    status: str
    reason: str
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "reason": self.reason, "hint": self.hint}
        out.update(self.details)
        return out


@dataclass
class ConfigLine:
    file: str
    line: int
    key: str
    value: str


@dataclass
class ConfigFile:
    path: str
    label: str
    lines: list[ConfigLine] = field(default_factory=list)
    ignored: list[tuple[int, str]] = field(default_factory=list)  # (line number, text) without "="
    readable: bool = True
    present: bool = False
    error: str = ""


# ---------------------------------------------------------------- config files


def parse_config_lines(path: str, text: str) -> tuple[list[ConfigLine], list[tuple[int, str]]]:
    """The KEY=VALUE lines of an env file with their line numbers (same rules as config.parse_env_text)."""
    entries: list[ConfigLine] = []
    ignored: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if "=" not in line:
            if not line.startswith("#"):
                ignored.append((number, line))
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key:
            entries.append(ConfigLine(path, number, key, value.strip()))
    return entries, ignored


def load_config_file(path: str, label: str) -> ConfigFile:
    """Read an env file like config.read_env_file does, but keep why it could not be read."""
    result = ConfigFile(path=path, label=label)
    try:
        # O_NONBLOCK: a FIFO must not hang the check; only regular files are read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return result
    except OSError as err:
        result.present, result.readable, result.error = True, False, str(err.strerror or err)
        return result
    result.present = True
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            result.readable, result.error = False, "is a directory"
            return result
        if not stat.S_ISREG(mode):
            result.readable, result.error = False, "is not a regular file"
            return result
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        result.readable, result.error = False, str(err.strerror or err)
        return result
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        result.readable, result.error = False, f"is larger than {MAX_CONFIG_BYTES} bytes and is ignored"
        return result
    text = data.decode("utf-8", errors="replace").replace("\x00", "\n")
    result.lines, result.ignored = parse_config_lines(path, text)
    return result


def check_config_file(cf: ConfigFile) -> Check:
    name = f"config.{cf.label}"
    if not cf.present:
        if cf.label == "operator":
            return Check(
                name,
                WARN,
                f"{cf.path} does not exist: the agent uses its defaults (cluster 'default')",
                f"create {cf.path} with at least ECS_CLUSTER=<your cluster>",
                {"file": cf.path},
            )
        return Check(name, PASS, f"{cf.path} does not exist (nothing set by the platform)", "", {"file": cf.path})
    if not cf.readable:
        return Check(
            name, FAIL, f"{cf.path} {cf.error}", f"make {cf.path} a readable KEY=VALUE text file", {"file": cf.path}
        )
    if cf.ignored:
        numbers = ", ".join(str(n) for n, _ in cf.ignored)
        return Check(
            name,
            WARN,
            f"{cf.path}: line(s) {numbers} have no '=' and are ignored",
            "write one KEY=VALUE per line",
            {"file": cf.path, "lines": [n for n, _ in cf.ignored]},
        )
    return Check(name, PASS, f"{cf.path}: {len(cf.lines)} setting(s)", "", {"file": cf.path})


def suggest_key(key: str) -> Optional[str]:
    upper = key.upper().lstrip("#").strip()
    if upper in KNOWN_KEYS:
        return upper
    words = upper.split()
    if len(words) > 1 and words[0] in KNOWN_KEYS:  # "KEY value": a space instead of '='
        return words[0]
    matches = difflib.get_close_matches(upper, sorted(KNOWN_KEYS), n=1, cutoff=SUGGESTION_CUTOFF)
    return matches[0] if matches else None


def check_keys(entries: list[ConfigLine]) -> list[Check]:
    out: list[Check] = []
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        where = f"{entry.file}:{entry.line}"
        # a malformed key part that looks like a secret key (``KEY value`` with a space
        # instead of '=') carries the value in the key: shown by its name only
        shown = redact.display_key(entry.key)
        details: dict[str, Any] = {"key": shown, "file": entry.file, "line": entry.line}
        first = seen.setdefault((entry.file, entry.key), entry.line)
        if first != entry.line:
            out.append(
                Check(
                    "config.duplicate-key",
                    WARN,
                    f"{shown} is set again at {where} (first at line {first}); the last one wins",
                    f"keep one {shown} line",
                    details,
                )
            )
        if entry.key in KNOWN_KEYS:
            continue
        suggestion = suggest_key(entry.key)
        details["suggestion"] = suggestion
        if entry.key.startswith("#"):
            hint = "ecs.config has no comments: this line sets a variable literally named " + repr(shown)
            hint += f"; delete the line{' or remove the #' if suggestion else ''}"
        elif shown != entry.key and suggestion:
            hint = f"write {suggestion}=<value>, with '=' right after the key"
        elif suggestion:
            hint = f"did you mean {suggestion}?"
        else:
            hint = "check the spelling against the ECS agent's configuration documentation"
        out.append(Check("config.unknown-key", WARN, f"unknown key {shown} at {where}", hint, details))
    if not any(c.name == "config.unknown-key" for c in out):
        out.insert(0, Check("config.keys", PASS, f"all {len({e.key for e in entries})} key(s) are known"))
    return out


def check_booleans(entries: list[ConfigLine]) -> list[Check]:
    """FAIL a boolean no rule can read; WARN a value only one of SPEC §3's two rules takes as true
    (``ECS_AGENT_RUN_PRIVILEGED=1`` is off for ecs-init, as for the Go program)."""
    out = []
    count = 0
    for entry in entries:
        if entry.key not in BOOLEAN_KEYS and entry.key not in BOOLEAN_RULES:
            continue
        count += 1
        where = f"{entry.file}:{entry.line}"
        details = {"key": entry.key, "file": entry.file, "line": entry.line}
        if parse_bool(entry.value) is None:
            out.append(
                Check(
                    "config.boolean",
                    FAIL,
                    f"{entry.key}={entry.value!r} at {where} is not a boolean "
                    "(ecs-init reads it as false, the agent uses its default)",
                    "use true or false",
                    details,
                )
            )
            continue
        disagreement = rules_disagree(entry.key, entry.value)
        if disagreement is not None:
            out.append(Check("config.boolean", WARN, f"{disagreement} (at {where})", "write true or false", details))
    if not out:
        out.append(Check("config.boolean", PASS, f"{count} boolean setting(s) parse"))
    return out


def _origin(cfg: Config, key: str) -> str:
    if key in cfg.environ:
        return "the process environment"
    if key in cfg.operator:
        return cfg.paths.ecs_config
    return cfg.paths.instance_config


def check_labels(cfg: Config) -> Check:
    name = "config.agent-labels"
    raw = cfg.merged.get("ECS_AGENT_LABELS", "")
    if not raw.strip():
        return Check(name, PASS, "ECS_AGENT_LABELS is not set")
    where = cfg.paths.ecs_config if "ECS_AGENT_LABELS" in cfg.operator else cfg.paths.instance_config
    hint = 'write a JSON object of strings, e.g. ECS_AGENT_LABELS={"team":"infra"}'
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:
        return Check(name, FAIL, f"ECS_AGENT_LABELS in {where} is not valid JSON ({err}): no labels are set", hint)
    if not isinstance(value, dict):
        return Check(name, FAIL, f"ECS_AGENT_LABELS in {where} is not a JSON object: no labels are set", hint)
    bad = sorted(k for k, v in value.items() if not isinstance(v, str))
    if bad:
        return Check(
            name,
            FAIL,
            f"ECS_AGENT_LABELS in {where}: value of {', '.join(bad)} is not a string: no labels are set",
            hint,
        )
    return Check(name, PASS, f"ECS_AGENT_LABELS: {len(value)} label(s)")


def check_log_driver(cfg: Config) -> Check:
    name = "config.log-driver"
    driver = cfg.setting("ECS_LOG_DRIVER")
    if not driver:
        return Check(name, PASS, "ECS_LOG_DRIVER is not set: json-file")
    if driver not in SUPPORTED_LOG_DRIVERS:
        return Check(
            name,
            FAIL,
            f"ECS_LOG_DRIVER={driver!r} in {_origin(cfg, 'ECS_LOG_DRIVER')} is not supported: "
            "json-file is used and ECS_LOG_OPTS dropped",
            f"use one of {', '.join(SUPPORTED_LOG_DRIVERS)}",
        )
    return Check(name, PASS, f"ECS_LOG_DRIVER={driver} is supported")


def check_log_opts(cfg: Config) -> Check:
    name = "config.log-opts"
    raw = cfg.setting("ECS_LOG_OPTS")
    if not raw:
        return Check(name, PASS, "ECS_LOG_OPTS is not set")
    hint = 'write a JSON object of strings, e.g. ECS_LOG_OPTS={"max-size":"50m"}'
    where = _origin(cfg, "ECS_LOG_OPTS")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:
        return Check(name, FAIL, f"ECS_LOG_OPTS in {where} is not valid JSON ({err}): it is ignored", hint)
    if not isinstance(value, dict):
        return Check(name, FAIL, f"ECS_LOG_OPTS in {where} is not a JSON object: it is ignored", hint)
    not_strings = sorted(k for k, v in value.items() if not isinstance(v, str))
    if not_strings:
        return Check(
            name, WARN, f"ECS_LOG_OPTS in {where}: value of {', '.join(not_strings)} is not a string (converted)", hint
        )
    return Check(name, PASS, f"ECS_LOG_OPTS: {len(value)} option(s)")


# ---------------------------------------------------------------- the cached tarball


def inspect_archive(path: str) -> tuple[list[str], str]:
    """The RepoTags of a ``docker save`` archive, or ([], why it is not one).

    Only tar headers and manifest.json are read (members are skipped by
    seeking), so a large tarball costs milliseconds.
    """
    try:
        size = os.path.getsize(path)
        with tarfile.open(path, mode="r:") as tar:
            members: dict[str, tarfile.TarInfo] = {}
            for member in tar:
                members[member.name.lstrip("./")] = member
                if member.isfile() and member.offset_data + member.size > size:
                    return [], f"is truncated: member {member.name} ends past the end of the file"
            manifest_member = members.get("manifest.json")
            if manifest_member is None or not manifest_member.isfile():
                return [], "is a tar archive but not a docker save archive (no manifest.json)"
            if manifest_member.size > MAX_MANIFEST_BYTES:
                return [], "has an implausibly large manifest.json"
            fh = tar.extractfile(manifest_member)
            if fh is None:
                return [], "has an unreadable manifest.json"
            manifest = json.loads(fh.read().decode("utf-8", errors="replace"))
    except (tarfile.TarError, EOFError) as err:
        return [], f"is not a readable tar archive ({err})"
    except OSError as err:
        return [], f"cannot be read ({err.strerror or err})"
    except (ValueError, RecursionError) as err:
        return [], f"has a manifest.json that is not valid JSON ({err})"
    if not isinstance(manifest, list):
        return [], "has a manifest.json that is not a list"
    tags: list[str] = []
    for image in manifest:
        if not isinstance(image, dict):
            return [], "has a malformed manifest.json"
        wanted = [image.get("Config"), *(image.get("Layers") or [])]
        missing = [str(p) for p in wanted if isinstance(p, str) and p.lstrip("./") not in members]
        if missing:
            return [], f"is truncated or incomplete: {missing[0]} is missing"
        tags.extend(str(t) for t in (image.get("RepoTags") or []))
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
    state_name = {0: "uncached", 1: "cached", 2: "reload at next pre-start"}[state]
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


# ---------------------------------------------------------------- Docker and the agent


def check_docker(cfg: Config) -> tuple[Optional[Engine], Check]:
    try:
        engine = connect_quick(cfg)
    except InitError as err:
        return None, Check(
            "docker", FAIL, str(err), "start Docker (systemctl start docker) or fix DOCKER_HOST", {"api_version": None}
        )
    version = str(engine.server_version.get("Version", "?"))
    server_api = str(engine.server_version.get("ApiVersion", "?"))
    details = {"version": version, "api_version": engine.api_version, "server_api_version": server_api}
    if version_tuple(engine.api_version) < (1, 25):
        return engine, Check(
            "docker",
            WARN,
            f"Docker {version} answers with API {server_api}: too old for --init and task ENIs",
            "upgrade Docker to a release with API 1.25 or later",
            details,
        )
    return engine, Check("docker", PASS, f"Docker {version} answers, API {engine.api_version}", "", details)


def check_introspection(engine: Optional[Engine]) -> Check:
    name = "introspection"
    if engine is None:
        return Check(name, SKIP, "Docker does not answer: cannot tell whether the agent runs")
    try:
        state = engine.container_state(AGENT_NAME)
    except EngineError as err:
        return Check(name, SKIP, f"cannot inspect {AGENT_NAME}: {one_line(err)}")
    if not state or not (state.get("State") or {}).get("Running"):
        return Check(name, SKIP, f"the agent container {AGENT_NAME} is not running")
    doc, error = fetch_metadata()
    if doc is None:
        return Check(
            name,
            FAIL,
            f"the agent runs but {error}",
            f"look at the agent's log (/var/log/ecs/ecs-agent.log, docker logs {AGENT_NAME})",
        )
    return Check(name, PASS, f"the agent answers: {doc.get('Version', '?')}, cluster {doc.get('Cluster', '?')}")


# ---------------------------------------------------------------- all of it


def run_checks(ctx: HostContext) -> list[Check]:
    cfg = ctx.cfg
    paths = ctx.paths
    engine, docker_check = check_docker(cfg)
    try:
        checks = [docker_check]
        files = [load_config_file(paths.ecs_config, "operator"), load_config_file(paths.instance_config, "instance")]
        checks += [check_config_file(cf) for cf in files]
        entries = [entry for cf in files for entry in cf.lines]
        checks += check_keys(entries)
        checks += check_booleans(entries)
        checks += [check_labels(cfg), check_log_driver(cfg), check_log_opts(cfg)]
        checks.append(check_tarball(ctx))
        checks.append(check_docker_root(engine))
        checks.append(
            free_space_check(
                "disk.cache",
                "the cache directory",
                paths.cache_dir,
                "free space there: the agent tarball and its downloads live in it",
            )
        )
        checks += check_tools(ctx)
        checks.append(check_cgroup(ctx))
        checks.append(check_introspection(engine))
    finally:
        if engine is not None:
            engine.close()
    return checks


def report(checks: list[Check], seconds: float) -> dict[str, Any]:
    counts = {status: sum(1 for c in checks if c.status == status) for status in (PASS, WARN, FAIL, SKIP)}
    code = EXIT_FAILED if counts[FAIL] else EXIT_OK
    return {
        "ok": code == EXIT_OK,
        "exit_code": code,
        "counts": counts,
        "duration_seconds": round(seconds, 3),
        "checks": [c.as_dict() for c in checks],
    }


def format_human(doc: dict[str, Any]) -> str:
    lines = []
    width = max((len(c["name"]) for c in doc["checks"]), default=0)
    for c in doc["checks"]:
        lines.append(f"{c['status']:<4}  {c['name'].ljust(width)}  {c['reason']}")
        if c["hint"] and c["status"] != PASS:
            lines.append(f"      {' ' * width}  hint: {c['hint']}")
    counts = doc["counts"]
    lines.append("")
    lines.append(
        f"{counts[PASS]} passed, {counts[WARN]} warning(s), {counts[FAIL]} failed, {counts[SKIP]} skipped "
        f"in {doc['duration_seconds']:.2f}s"
    )
    return "\n".join(lines)


def main(ctx: HostContext, args: Sequence[str]) -> int:
    parser = make_parser("check", "Check Docker, ecs.config, the cached agent tarball and the host.")
    parser.add_argument(
        "--network", action="store_true", help="check connectivity instead: metadata, ECS, S3, proxy, credentials"
    )
    opts = parser.parse_args(list(args))
    if opts.network:
        from ecs_init import netcheck  # only this option pays for sockets, TLS and threads

        return netcheck.main(ctx, opts.json)
    started = time.monotonic()
    doc = report(run_checks(ctx), time.monotonic() - started)
    text = json.dumps(doc, indent=2) if opts.json else format_human(doc)
    sys.stdout.write(redact.redact_text(text) + "\n")
    sys.stdout.flush()
    return int(doc["exit_code"])
