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
import json
import logging
import os
import time
from typing import Any, Optional, Sequence

from ecs_init.agent import cache
from ecs_init.agent import state as supervisor_state
from ecs_init.agent.identity import AGENT_IMAGE, AGENT_NAME, METADATA_URL
from ecs_init.core import redact
from ecs_init.core.config import Config
from ecs_init.core.errors import CommandError, InitError, first_line
from ecs_init.core.exitcodes import Exit
from ecs_init.docker.api import Engine, default_bridge
from ecs_init.docker.errors import EngineError
from ecs_init.host.context import HostContext
from ecs_init.ops.report import (
    connect_quick,
    fetch_metadata,
    for_people,
    human_bytes,
    human_duration,
    iso,
    make_parser,
    parse_docker_time,
    read_json_file,
    write_report,
)

log = logging.getLogger(__name__)


XTABLES_WAIT = 1  # seconds iptables -C may wait for the xtables lock
_s = for_people  # a value in the human report: never Python's None
COMMAND_TIMEOUT = 5.0


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
        part["error"] = f"cannot inspect {AGENT_NAME}: {first_line(err)}"
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
        container_id=str(state.get("Id") or "") or None,
        started_at=iso(started),
        finished_at=None if running else iso(finished),
        uptime_seconds=round(now - started, 3) if running and started is not None else None,
        exit_code=None if running else st.get("ExitCode"),
        image_id=str(state.get("Image") or "") or None,
        image=str((state.get("Config") or {}).get("Image") or "") or None,
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
    except OSError:
        return False
    return True


def supervisor_part(ctx: HostContext) -> dict[str, Any]:
    """The supervisor's state file: what is usable of it, and ``error`` naming whatever is not."""
    path = ctx.paths.supervisor_state
    doc, error = read_json_file(path)
    fields, problems = supervisor_state.parse({} if doc is None else doc)
    if error:
        problems = [error]
    elif problems:
        problems = [f"{path}: " + "; ".join(problems)]
    pid = fields["pid"]
    return {
        "file": path,
        "present": isinstance(doc, dict),
        "pid": pid,
        "alive": _pid_alive(pid) if pid is not None else None,
        "state": fields["state"],
        "restarts": fields["restarts"],
        "started_at": iso(fields["started_at"]),
        "updated_at": iso(fields["updated_at"]),
        "last_exit_code": fields["last_exit_code"],
        "upgrade": fields["upgrade"],
        "error": "; ".join(problems) or None,
    }


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
    desired, desired_error = cache.desired_image_name(paths)
    return {**cache.read_facts(paths).as_dict(), "desired_image": desired, "desired_image_error": desired_error}


def last_event_part(ctx: HostContext) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    path = ctx.paths.events_file
    doc, error = read_json_file(path)
    if isinstance(doc, list):
        for event in reversed(doc):
            if isinstance(event, dict):
                return event, None
        return None, None
    if doc is not None:
        return None, f"{path} does not hold a JSON list"
    return None, error or None


def host_network_part(ctx: HostContext, engine: Optional[Engine]) -> dict[str, Any]:
    """Whether route_localnet and each rule pre-start plans (netfilter's own planner and probe) are in place."""
    from ecs_init.host import loopback, netfilter

    part: dict[str, Any] = {"route_localnet": None, "route_localnet_ok": None, "rules": [], "notes": []}
    try:
        value = loopback.route_localnet(ctx, timeout=COMMAND_TIMEOUT)
        part["route_localnet"] = value
        part["route_localnet_ok"] = value == "1"
    except CommandError as err:
        part["notes"].append(f"cannot read {loopback.ROUTE_LOCALNET}: {err}")
    if ctx.runner.which("iptables") is None:
        part["notes"].append("iptables is not installed: cannot check the netfilter rules")
        return part
    bridge: Optional[str] = None
    if not netfilter.settings_from(ctx).allow_offhost_introspection:
        if engine is None:
            part["notes"].append("Docker does not answer: the default-bridge ACCEPT rule is not checked")
        else:
            try:
                bridge = default_bridge(engine.networks())
            except EngineError as err:
                part["notes"].append(f"cannot ask Docker for its default bridge: {first_line(err)}")
    for rule in netfilter.planned(ctx, bridge):
        present: Optional[bool] = None
        error: Optional[str] = None
        try:
            present = netfilter.is_present(ctx.runner, rule, wait=XTABLES_WAIT, timeout=COMMAND_TIMEOUT)
        except CommandError as err:
            error = first_line(err)
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
    report["exit_code"] = int(code)
    report["summary"] = summary
    return report


def verdict(report: dict[str, Any]) -> tuple[int, str]:
    if not report["docker"]["reachable"]:
        return Exit.STATUS_UNKNOWN, "unknown: Docker does not answer"
    agent = report["agent"]
    if agent["running"] is None:
        return Exit.STATUS_UNKNOWN, f"unknown: {agent['error']}"
    if not agent["running"]:
        return Exit.STATUS_NOT_RUNNING, "not running"
    if not report["introspection"]["answering"]:
        return Exit.STATUS_UNKNOWN, "running, but its introspection endpoint does not answer"
    return Exit.OK, "running"


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
        lines.append(f"  engine:        {_s(d['version'])} at {d['host']}")
        lines.append(f"  API version:   {_s(d['api_version'])} (server {_s(d['server_api_version'])})")
    else:
        lines.append(f"  NOT REACHABLE: {d['error']}")
    lines += ["", f"Agent container {a['container']}"]
    if a["error"]:
        lines.append(f"  state:         unknown ({a['error']})")
    else:
        lines.append(f"  state:         {a['state']}")
        if a["running"]:
            lines.append(f"  uptime:        {human_duration(a['uptime_seconds'])} (since {_s(a['started_at'])})")
        elif a["state"] != "absent":
            lines.append(f"  exited:        code {_s(a['exit_code'])} at {_s(a['finished_at'])}")
        if a["image_id"]:
            lines.append(f"  image:         {_s(a['image'])} {a['image_id']}")
        if a["latest_image_id"] and a["latest_image_id"] != a["image_id"]:
            lines.append(f"  {AGENT_IMAGE} is now {a['latest_image_id']}")
        elif not a["latest_image_id"] and not a["error"]:
            lines.append(f"  {AGENT_IMAGE} is not loaded")
    lines += ["", "Supervisor (amazon-ecs-init start)"]
    if s["present"]:
        pid = "pid unknown" if s["pid"] is None else f"pid {s['pid']} ({'running' if s['alive'] else 'not running'})"
        lines.append(f"  process:       {pid}, state {_s(s['state'])}, since {_s(s['started_at'])}")
        last = "none yet" if s["last_exit_code"] is None else s["last_exit_code"]
        lines.append(f"  restarts:      {_s(s['restarts'])} since it started; last agent exit code: {last}")
        if s["upgrade"]:
            up = s["upgrade"]
            since = f" since {up['started_at']}" if up.get("started_at") else ""
            lines.append(f"  watching an upgrade: {_s(up.get('previous_image'))} -> {_s(up.get('new_image'))}{since}")
        if s["error"]:
            lines.append(f"  BROKEN:        {s['error']}")
    elif s["error"]:
        lines.append(f"  BROKEN:        {s['error']}")
    else:
        lines.append(f"  no state file {s['file']}")
    lines += ["", "Introspection endpoint"]
    if i["answering"]:
        lines.append(f"  version:       {_s(i['version'])}")
        lines.append(f"  cluster:       {_s(i['cluster'])}")
        lines.append(f"  instance ARN:  {_s(i['container_instance_arn'], 'none (not registered)')}")
    else:
        lines.append(f"  NOT ANSWERING: {i['error']}")
    lines += ["", "Image cache"]
    size = f"{human_bytes(c['tarball_bytes'])}" if c["tarball_present"] else "missing"
    lines.append(f"  state file:    {c['state_file']} {c['state_file_reading']}")
    lines.append(f"  tarball:       {c['tarball']} ({size})")
    if c["effective_state"] != c["state"]:
        lines.append(f"  cache state:   {c['effective_state']} ({c['effective_state_name']}): {c['effective_reason']}")
    if c["desired_image"]:
        lines.append(f"  desired image: {c['desired_image']}")
    elif c["desired_image_error"]:
        lines.append(f"  desired image: REFUSED: {c['desired_image_error']}")
    lines += ["", "Last event (upgrade, rollback, image load, heal)"]
    event = report["last_event"]
    if event:
        details = " ".join(f"{k}={_s(v, 'none')}" for k, v in event.items() if k not in ("event", "time"))
        lines.append(f"  {_s(event.get('time'), '(no time)')} {_s(event.get('event'))} {details}".rstrip())
    else:
        lines.append("  none" + (f" ({report['last_event_error']})" if report["last_event_error"] else ""))
    lines += ["", "Host network"]
    lines.append(
        f"  route_localnet: {_s(n['route_localnet'])} ({_yes_no(n['route_localnet_ok'], 'in place', 'NOT in place')})"
    )
    for rule in n["rules"]:
        mark = {True: "present", False: "MISSING", None: "unknown"}[rule["present"]]
        lines.append(f"  [{mark}] {rule['rule']}")
    for note in n["notes"]:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    return make_parser(
        "status",
        "Show the state of the ECS agent, its supervisor, the image cache and the host. Exit 0: the agent runs "
        "and answers; 3: it is not running; 1: cannot tell.",
    )


def main(ctx: HostContext, args: Sequence[str]) -> int:
    opts = build_parser().parse_args(list(args))
    report = gather(ctx)
    text = json.dumps(report, indent=2) if opts.json else format_human(report)
    write_report(redact.redact_text(text), human=not opts.json)
    return int(report["exit_code"])
