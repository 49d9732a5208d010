"""``amazon-ecs-init render``: the agent container's create config, without starting anything.

It builds the spec exactly as ``start`` does (``agent_spec.build_spec`` on
the facts ``hostfacts.gather`` collects) but never contacts Docker and never
changes the host: the one fact only Docker can tell, its API version, is
taken from ``--api-version`` or assumed to be the preferred 1.44 (the
create config differs only for engines older than API 1.25). When the
instance file enables GPU support and no NVIDIA device exists yet, ``start``
would wait up to 30 s for one; ``render`` does not wait and shows the
config without it.

Secrets (``ECS_ENGINE_AUTH_DATA`` and any key containing SECRET, TOKEN or
PASSWORD, in the environment, labels and log options, and URL credentials)
are redacted by key unless ``--show-secrets`` is given (see ``redact``).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ecs_init.agent import hostfacts
from ecs_init.agent.spec import build_spec
from ecs_init.core import redact, settings
from ecs_init.core.errors import InitError, UsageError
from ecs_init.docker.api import PREFERRED_MAX_API, version_tuple
from ecs_init.host.context import HostContext
from ecs_init.ops.report import make_parser, write_report


class _NoDocker:
    """Stands in for the Docker adapter: render must never reach it."""

    def __getattr__(self, name: str) -> Any:
        raise InitError("render does not contact Docker")


def _no_docker() -> Any:
    return _NoDocker()


def redact_body(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of an Engine API create body with secret values replaced."""
    out = json.loads(json.dumps(body))
    out["Env"] = redact.redact_env_entries(out.get("Env") or [])
    out["Labels"] = redact.redact_json(out.get("Labels") or {})
    log_config = (out.get("HostConfig") or {}).get("LogConfig")
    if isinstance(log_config, dict) and isinstance(log_config.get("Config"), dict):
        log_config["Config"] = redact.redact_json(log_config["Config"])
    return out


def render(ctx: HostContext, api_version: Optional[str] = None, show_secrets: bool = False) -> dict[str, Any]:
    """The document ``render --json`` prints."""
    cfg = ctx.cfg
    offline = HostContext(cfg=cfg, runner=ctx.runner, docker_factory=_no_docker)
    assumed = api_version is None
    api = api_version or PREFERRED_MAX_API
    notes: list[str] = []
    if assumed:
        notes.append(
            f"Docker API version {api} assumed (render does not contact Docker; pass --api-version to match "
            "your engine: only engines older than 1.25 get a different config)"
        )
    facts = hostfacts.gather(offline, docker_api_version=api)
    appeared: Optional[bool] = None
    if cfg.instance_flag(settings.ENABLE_GPU_SUPPORT):
        appeared = facts.gpu_devices
        if not appeared:
            notes.append(
                "ECS_ENABLE_GPU_SUPPORT=true in the instance file but no NVIDIA device exists now: start waits up "
                "to 30 s for one and drops the setting if none appears; shown here without it"
            )
    spec = build_spec(cfg, facts, appeared)
    body = spec.engine_body()
    if not show_secrets:
        body = redact_body(body)
    return {
        "name": spec.name,
        "api_version": api,
        "api_version_assumed": assumed,
        "secrets_redacted": not show_secrets,
        "body": body,
        "warnings": [str(w) for w in spec.warnings],
        "notes": notes,
    }


def format_human(doc: dict[str, Any]) -> str:
    body = doc["body"]
    host = dict(body["HostConfig"])
    binds = host.pop("Binds", [])
    lines = [f"Container {doc['name']} from image {body['Image']}"]
    api_note = " (assumed)" if doc["api_version_assumed"] else ""
    lines.append(
        f"Docker API {doc['api_version']}{api_note}; secrets {'redacted' if doc['secrets_redacted'] else 'SHOWN'}"
    )
    lines += ["", f"Environment ({len(body['Env'])}, in the order start passes them):"]
    lines += [f"  {entry}" for entry in body["Env"]]
    labels = body.get("Labels") or {}
    lines += ["", f"Labels ({len(labels)}):"]
    lines += [f"  {key}={value}" for key, value in labels.items()] or ["  (none)"]
    lines += ["", f"Binds ({len(binds)}, host:container[:mode]):"]
    lines += [f"  {bind}" for bind in binds]
    lines += ["", "Host config:"]
    for key, value in host.items():
        if key == "LogConfig" and isinstance(value, dict):
            options = " ".join(f"{k}={v}" for k, v in (value.get("Config") or {}).items())
            text = f"{value.get('Type')} {options}".rstrip()
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value) or "(none)"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        lines.append(f"  {key}: {text}")
    if doc["warnings"]:
        lines += ["", "Warnings (start logs these):"]
        lines += [f"  - {w}" for w in doc["warnings"]]
    if doc["notes"]:
        lines += ["", "Notes:"]
        lines += [f"  - {n}" for n in doc["notes"]]
    return "\n".join(lines)


def main(ctx: HostContext, args: Sequence[str]) -> int:
    parser = make_parser("render", "Print the agent container config that `start` would create.")
    parser.add_argument("--show-secrets", action="store_true", help="do not redact secret values")
    parser.add_argument("--api-version", help=f"the Docker API version to render for (default: {PREFERRED_MAX_API})")
    opts = parser.parse_args(list(args))
    if opts.api_version is not None and version_tuple(opts.api_version) == (0,):
        raise UsageError(f"--api-version {opts.api_version!r} is not a version like 1.44")
    doc = render(ctx, opts.api_version, opts.show_secrets)
    text = json.dumps(doc, indent=2) if opts.json else format_human(doc)
    if not opts.show_secrets:
        text = redact.redact_text(text)
    write_report(text, human=not opts.json)
    return 0
