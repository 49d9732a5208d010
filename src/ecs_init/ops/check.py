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

import argparse
import json
import time
from typing import Any, Optional, Sequence

from ecs_init.agent.identity import AGENT_NAME
from ecs_init.core import redact
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError, first_line
from ecs_init.core.exitcodes import Exit
from ecs_init.docker.api import Engine, version_tuple
from ecs_init.docker.errors import EngineError
from ecs_init.host.context import HostContext
from ecs_init.ops.check_config import config_checks
from ecs_init.ops.check_files import check_files
from ecs_init.ops.check_host import check_cgroup, check_docker_root, check_tarball, check_tools, free_space_check
from ecs_init.ops.report import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Check,
    connect_quick,
    fetch_metadata,
    make_parser,
    write_report,
)

__all__ = ["FAIL", "PASS", "SKIP", "WARN", "Check", "main", "run_checks"]


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
        return Check(name, SKIP, f"cannot inspect {AGENT_NAME}: {first_line(err)}")
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
        checks += config_checks(cfg)
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
        checks += check_files(paths)
        checks.append(check_introspection(engine))
    finally:
        if engine is not None:
            engine.close()
    return checks


def report(checks: list[Check], seconds: float) -> dict[str, Any]:
    counts = {status: sum(1 for c in checks if c.status == status) for status in (PASS, WARN, FAIL, SKIP)}
    code = Exit.CHECK_FAILED if counts[FAIL] else Exit.OK
    return {
        "ok": code == Exit.OK,
        "exit_code": int(code),
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


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "check",
        "Check Docker, ecs.config, the cached agent tarball and the host. Exit 1 when a check FAILs, 0 otherwise.",
        schema="check.schema.json (with --network: check-network.schema.json)",
    )
    parser.add_argument(
        "--network", action="store_true", help="check connectivity instead: metadata, ECS, S3, proxy, credentials"
    )
    return parser


def main(ctx: HostContext, args: Sequence[str]) -> int:
    opts = build_parser().parse_args(list(args))
    if opts.network:
        from ecs_init.ops import netcheck  # only this option pays for sockets, TLS and threads

        return netcheck.main(ctx, opts.json)
    started = time.monotonic()
    doc = report(run_checks(ctx), time.monotonic() - started)
    text = json.dumps(doc, indent=2) if opts.json else format_human(doc)
    write_report(redact.redact_text(text), human=not opts.json)
    return int(doc["exit_code"])
