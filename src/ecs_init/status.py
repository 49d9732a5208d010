"""``amazon-ecs-init status``: what the agent, its supervisor and the host look like now.

Read-only: it asks Docker (short timeout), the agent's introspection
endpoint (at most 1 s), the files this program writes, ``iptables -C`` and
``sysctl -n``. Nothing is changed.

Exit codes: 0 the agent container runs and its introspection endpoint
answers; 3 the agent container is not running; 1 this cannot be told
(Docker does not answer, or the agent runs but its endpoint is silent).
"""

from __future__ import annotations

import argparse
import calendar
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Optional, Sequence

from ecs_init import cache, redact
from ecs_init.agent_spec import AGENT_IMAGE, AGENT_NAME
from ecs_init.config import Config
from ecs_init.context import HostContext
from ecs_init.docker.api import Engine, default_bridge
from ecs_init.docker.errors import EngineError
from ecs_init.errors import CommandError, InitError, UsageError, first_line
from ecs_init.fsutil import read_regular

log = logging.getLogger(__name__)

EXIT_RUNNING = 0
EXIT_UNKNOWN = 1
EXIT_NOT_RUNNING = 3

DOCKER_TIMEOUT = 2.0  # seconds: operator commands never wait for a daemon that is not up
METADATA_URL = "http://127.0.0.1:51678/v1/metadata"
METADATA_TIMEOUT = 1.0
XTABLES_WAIT = 1  # seconds iptables -C may wait for the xtables lock
COMMAND_TIMEOUT = 5.0
MAX_JSON_BYTES = 1024 * 1024

CACHE_STATE_NAMES = {cache.STATE_UNCACHED: "uncached", cache.STATE_CACHED: "cached", cache.STATE_RELOAD: "reload"}


# ---------------------------------------------------------------- shared helpers


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as UsageError (exit 1) instead of exiting 2."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


def make_parser(action: str, description: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"amazon-ecs-init {action}", description=description)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (see the schema in ecs_init/schemas)"
    )
    return parser


def connect_quick(cfg: Config, timeout: float = DOCKER_TIMEOUT) -> Engine:
    """One attempt to reach Docker; this and every later call bounded by ``timeout`` seconds.

    Raises EngineError (EngineUnavailable: "Docker ... does not answer ...") with one line.
    """
    from ecs_init.docker import client

    return client.connect_quick(cfg.docker_host(), timeout)


one_line = first_line


def fetch_metadata(url: str = METADATA_URL, timeout: float = METADATA_TIMEOUT) -> tuple[Optional[dict[str, Any]], str]:
    """The agent's ``/v1/metadata`` document, or (None, why not)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            raw = resp.read(MAX_JSON_BYTES)
    except urllib.error.HTTPError as err:
        return None, f"{url} answered HTTP {err.code}"
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        return None, f"{url} does not answer within {timeout:g}s ({reason})"
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None, f"{url} answered something that is not JSON"
    if not isinstance(doc, dict):
        return None, f"{url} answered JSON that is not an object"
    return doc, ""


def read_json_file(path: str) -> tuple[Any, str]:
    """(document, "") or (None, why not); a missing file is (None, "")."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        return None, ""
    except OSError as err:
        return None, f"cannot read {path}: {err.strerror or err}"
    if len(raw) > MAX_JSON_BYTES:
        return None, f"{path} is larger than {MAX_JSON_BYTES} bytes"
    try:
        return json.loads(raw.decode("utf-8", errors="replace")), ""
    except (ValueError, RecursionError) as err:
        return None, f"{path} is not valid JSON: {err}"


_DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_docker_time(text: str) -> Optional[float]:
    """Docker's RFC 3339 time (nanoseconds allowed) as epoch seconds; None if unset/unparsable."""
    match = _DOCKER_TIME.match(text or "")
    if not match or text.startswith("0001-"):
        return None
    base = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    fraction = float("0." + match.group(2)) if match.group(2) else 0.0
    zone = match.group(3)
    offset = 0
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return base + fraction - offset


def iso(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def human_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h{minutes}m"
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def human_bytes(size: Optional[int]) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


# ---------------------------------------------------------------- the parts


def docker_part(cfg: Config) -> tuple[Optional[Engine], dict[str, Any]]:
    part: dict[str, Any] = {
        "reachable": False,
        "host": cfg.docker_host(),
        "version": None,
        "api_version": None,
        "server_api_version": None,
        "error": None,
    }
    try:
        engine = connect_quick(cfg)
    except InitError as err:
        part["error"] = str(err)
        return None, part
    part.update(
        reachable=True,
        version=str(engine.server_version.get("Version", "")) or None,
        api_version=engine.api_version,
        server_api_version=str(engine.server_version.get("ApiVersion", "")) or None,
    )
    return engine, part


def agent_part(engine: Optional[Engine], now: float) -> dict[str, Any]:
    part: dict[str, Any] = {
        "container": AGENT_NAME,
        "state": "unknown",
        "running": None,
        "container_id": None,
        "started_at": None,
        "finished_at": None,
        "uptime_seconds": None,
        "exit_code": None,
        "image_id": None,
        "image": None,
        "latest_image_id": None,
        "error": None,
    }
    if engine is None:
        part["error"] = "Docker does not answer"
        return part
    try:
        state = engine.container_state(AGENT_NAME)
        part["latest_image_id"] = engine.image_id(AGENT_IMAGE)
    except EngineError as err:  # any Docker failure means "cannot tell"
        part["error"] = f"cannot inspect {AGENT_NAME}: {one_line(err)}"
        return part
    if state is None:
        part.update(state="absent", running=False)
        return part
    st = state.get("State") or {}
    running = bool(st.get("Running"))
    started = parse_docker_time(str(st.get("StartedAt", "")))
    finished = parse_docker_time(str(st.get("FinishedAt", "")))
    part.update(
        state=str(st.get("Status") or ("running" if running else "exited")),
        running=running,
        container_id=str(state.get("Id", "")) or None,
        started_at=iso(started),
        finished_at=None if running else iso(finished),
        uptime_seconds=round(now - started, 3) if running and started is not None else None,
        exit_code=None if running else st.get("ExitCode"),
        image_id=str(state.get("Image", "")) or None,
        image=str((state.get("Config") or {}).get("Image", "")) or None,
    )
    return part


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def supervisor_part(ctx: HostContext) -> dict[str, Any]:
    from ecs_init.events import status_path

    path = status_path(ctx)
    doc, error = read_json_file(path)
    part: dict[str, Any] = {
        "file": path,
        "present": isinstance(doc, dict),
        "pid": None,
        "alive": None,
        "state": None,
        "restarts": None,
        "started_at": None,
        "updated_at": None,
        "last_exit_code": None,
        "upgrade": None,
        "error": error or None,
    }
    if doc is not None and not isinstance(doc, dict):
        part["error"] = f"{path} does not hold a JSON object"
    if not isinstance(doc, dict):
        return part
    pid = doc.get("pid")
    part.update(
        pid=pid if isinstance(pid, int) else None,
        alive=_pid_alive(pid) if isinstance(pid, int) else None,
        state=doc.get("state") if isinstance(doc.get("state"), str) else None,
        restarts=doc.get("restarts") if isinstance(doc.get("restarts"), int) else None,
        started_at=iso(doc["started_at"]) if isinstance(doc.get("started_at"), (int, float)) else None,
        updated_at=iso(doc["updated_at"]) if isinstance(doc.get("updated_at"), (int, float)) else None,
        last_exit_code=doc.get("last_exit_code") if isinstance(doc.get("last_exit_code"), int) else None,
        upgrade=doc.get("upgrade") if isinstance(doc.get("upgrade"), dict) else None,
    )
    return part


def introspection_part() -> dict[str, Any]:
    doc, error = fetch_metadata()
    part: dict[str, Any] = {
        "url": METADATA_URL,
        "answering": doc is not None,
        "version": None,
        "cluster": None,
        "container_instance_arn": None,
        "error": error or None,
    }
    if doc is not None:
        part.update(
            version=str(doc.get("Version", "")) or None,
            cluster=str(doc.get("Cluster", "")) or None,
            container_instance_arn=str(doc.get("ContainerInstanceArn", "")) or None,
        )
    return part


def cache_part(ctx: HostContext) -> dict[str, Any]:
    paths = ctx.paths
    state = cache.read_state(paths)
    try:
        size: Optional[int] = os.path.getsize(paths.cache_tarball)
    except OSError:
        size = None
    desired: Optional[str] = None
    try:
        raw = read_regular(paths.desired_image, 4096)
        desired = raw.decode("utf-8", errors="replace").split("\n", 1)[0].strip() or None
    except OSError:
        pass
    return {
        "state": state,
        "state_name": CACHE_STATE_NAMES.get(state, "unknown"),
        "tarball": paths.cache_tarball,
        "tarball_present": size is not None,
        "tarball_bytes": size,
        "desired_image": desired,
    }


def last_event_part(ctx: HostContext) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    from ecs_init.events import events_path

    doc, error = read_json_file(events_path(ctx))
    if isinstance(doc, list):
        for event in reversed(doc):
            if isinstance(event, dict):
                return event, None
        return None, None
    if doc is not None:
        return None, f"{events_path(ctx)} does not hold a JSON list"
    return None, error or None


def host_network_part(ctx: HostContext, engine: Optional[Engine]) -> dict[str, Any]:
    """Whether each planned netfilter rule and route_localnet are in place (read-only)."""
    from ecs_init import hostnet, netfilter, netrules

    part: dict[str, Any] = {"route_localnet": None, "route_localnet_ok": None, "rules": [], "notes": []}
    runner = ctx.runner
    try:
        proc = runner.run(["sysctl", "-n", hostnet.ROUTE_LOCALNET], check=True, timeout=COMMAND_TIMEOUT)
        value = proc.stdout.strip()
        part["route_localnet"] = value
        part["route_localnet_ok"] = value == "1"
    except CommandError as err:
        part["notes"].append(f"cannot read {hostnet.ROUTE_LOCALNET}: {err}")
    if runner.which("iptables") is None:
        part["notes"].append("iptables is not installed: cannot check the netfilter rules")
        return part
    settings = netfilter.settings_from(ctx)
    bridge: Optional[str] = None
    if not settings.allow_offhost_introspection:
        if engine is None:
            part["notes"].append("Docker does not answer: the default-bridge ACCEPT rule is not checked")
        else:
            try:
                bridge = default_bridge(engine.networks())
            except EngineError as err:
                part["notes"].append(f"cannot ask Docker for its default bridge: {one_line(err)}")
    facts = netrules.HostFacts(
        loopback=hostnet.loopback_name(ctx), bridge=bridge, ipv6=netfilter.ipv6_tables_available(ctx)
    )
    for rule in netrules.plan_setup(settings, facts):
        present: Optional[bool] = None
        error: Optional[str] = None
        try:
            proc = runner.run(rule.argv("-C", XTABLES_WAIT), check=False, timeout=COMMAND_TIMEOUT)
            if proc.returncode == 0:
                present = True
            elif proc.returncode == 1:
                present = False
            else:
                error = ((proc.stderr or proc.stdout or "").strip().splitlines() or [f"exit {proc.returncode}"])[0]
        except CommandError as err:
            error = str(err)
        part["rules"].append({"rule": str(rule), "purpose": rule.purpose, "present": present, "error": error})
    return part


# ---------------------------------------------------------------- the report


def gather(ctx: HostContext) -> dict[str, Any]:
    now = time.time()
    engine, docker_info = docker_part(ctx.cfg)
    try:
        agent = agent_part(engine, now)
        supervisor = supervisor_part(ctx)
        introspection = introspection_part()
        event, event_error = last_event_part(ctx)
        network = host_network_part(ctx, engine)
    finally:
        if engine is not None:
            engine.close()
    report: dict[str, Any] = {
        "time": iso(now),
        "docker": docker_info,
        "agent": agent,
        "supervisor": supervisor,
        "introspection": introspection,
        "cache": cache_part(ctx),
        "last_event": event,
        "last_event_error": event_error,
        "host_network": network,
    }
    code, summary = verdict(report)
    report["exit_code"] = code
    report["summary"] = summary
    return report


def verdict(report: dict[str, Any]) -> tuple[int, str]:
    if not report["docker"]["reachable"]:
        return EXIT_UNKNOWN, "unknown: Docker does not answer"
    agent = report["agent"]
    if agent["running"] is None:
        return EXIT_UNKNOWN, f"unknown: {agent['error']}"
    if not agent["running"]:
        return EXIT_NOT_RUNNING, "not running"
    if not report["introspection"]["answering"]:
        return EXIT_UNKNOWN, "running, but its introspection endpoint does not answer"
    return EXIT_RUNNING, "running"


def _yes_no(value: Optional[bool], yes: str = "yes", no: str = "NO") -> str:
    return "unknown" if value is None else (yes if value else no)


def format_human(report: dict[str, Any]) -> str:
    d, a, s, i, c, n = (
        report["docker"],
        report["agent"],
        report["supervisor"],
        report["introspection"],
        report["cache"],
        report["host_network"],
    )
    lines = [f"ECS agent: {report['summary']}", ""]
    lines.append("Docker")
    if d["reachable"]:
        lines.append(f"  engine:        {d['version']} at {d['host']}")
        lines.append(f"  API version:   {d['api_version']} (server {d['server_api_version']})")
    else:
        lines.append(f"  NOT REACHABLE: {d['error']}")
    lines += ["", f"Agent container {a['container']}"]
    if a["error"]:
        lines.append(f"  state:         unknown ({a['error']})")
    else:
        lines.append(f"  state:         {a['state']}")
        if a["running"]:
            lines.append(f"  uptime:        {human_duration(a['uptime_seconds'])} (since {a['started_at']})")
        elif a["state"] != "absent":
            lines.append(f"  exited:        code {a['exit_code']} at {a['finished_at']}")
        if a["image_id"]:
            lines.append(f"  image:         {a['image']} {a['image_id']}")
        if a["latest_image_id"] and a["latest_image_id"] != a["image_id"]:
            lines.append(f"  {AGENT_IMAGE} is now {a['latest_image_id']}")
        elif not a["latest_image_id"] and not a["error"]:
            lines.append(f"  {AGENT_IMAGE} is not loaded")
    lines += ["", "Supervisor (amazon-ecs-init start)"]
    if s["present"]:
        alive = "running" if s["alive"] else "not running"
        lines.append(f"  process:       pid {s['pid']} ({alive}), state {s['state']}, since {s['started_at']}")
        lines.append(f"  restarts:      {s['restarts']} since it started; last agent exit code {s['last_exit_code']}")
        if s["upgrade"]:
            lines.append(
                f"  watching an upgrade: {s['upgrade'].get('previous_image')} -> {s['upgrade'].get('new_image')}"
            )
    else:
        lines.append(f"  no state file {s['file']}" + (f" ({s['error']})" if s["error"] else ""))
    lines += ["", "Introspection endpoint"]
    if i["answering"]:
        lines.append(f"  version:       {i['version']}")
        lines.append(f"  cluster:       {i['cluster']}")
        lines.append(f"  instance ARN:  {i['container_instance_arn']}")
    else:
        lines.append(f"  NOT ANSWERING: {i['error']}")
    lines += ["", "Image cache"]
    size = f"{human_bytes(c['tarball_bytes'])}" if c["tarball_present"] else "missing"
    lines.append(f"  state:         {c['state']} ({c['state_name']})")
    lines.append(f"  tarball:       {c['tarball']} ({size})")
    if c["desired_image"]:
        lines.append(f"  desired image: {c['desired_image']}")
    lines += ["", "Last upgrade/rollback event"]
    event = report["last_event"]
    if event:
        details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "time"))
        lines.append(f"  {event.get('time')} {event.get('event')} {details}".rstrip())
    else:
        lines.append("  none" + (f" ({report['last_event_error']})" if report["last_event_error"] else ""))
    lines += ["", "Host network"]
    lines.append(
        f"  route_localnet: {n['route_localnet']} ({_yes_no(n['route_localnet_ok'], 'in place', 'NOT in place')})"
    )
    for rule in n["rules"]:
        mark = {True: "present", False: "MISSING", None: "unknown"}[rule["present"]]
        lines.append(f"  [{mark}] {rule['rule']}")
    for note in n["notes"]:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def main(ctx: HostContext, args: Sequence[str]) -> int:
    parser = make_parser("status", "Show the state of the ECS agent, its supervisor, the image cache and the host.")
    opts = parser.parse_args(list(args))
    report = gather(ctx)
    text = json.dumps(report, indent=2) if opts.json else format_human(report)
    sys.stdout.write(redact.redact_text(text) + "\n")
    sys.stdout.flush()
    return int(report["exit_code"])
