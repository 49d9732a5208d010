"""``amazon-ecs-init render``: the agent container's create config, without starting anything.

It builds the spec exactly as ``start`` does (``agent_spec.build_spec`` on
the facts ``hostfacts.gather`` collects) but never changes the host: the one
fact only Docker can tell, the API version ``start`` would speak, is taken
from ``--api-version``, else asked of the engine (one version request, at
most ``ASK_TIMEOUT`` seconds), else assumed to be the preferred 1.44 (the
create config differs only for engines older than API 1.25). When the
instance file enables GPU support and no NVIDIA device exists yet, ``start``
would wait up to 30 s for one; ``render`` does not wait and shows the
config without it.

Secrets (``ECS_ENGINE_AUTH_DATA`` and any key containing SECRET, TOKEN or
PASSWORD, in the environment, labels and log options, and URL credentials)
are redacted by key unless ``--show-secrets`` is given (see ``redact``).

``warnings`` are the configuration's problems as ``start`` logs them, one line
per class (``agent.config_problems``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional, Sequence

from ecs_init.agent import config_problems, hostfacts
from ecs_init.agent.spec import build_spec
from ecs_init.core import redact, settings
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError, first_line
from ecs_init.docker.api import PREFERRED_MAX_API, version_tuple
from ecs_init.host.context import HostContext
from ecs_init.ops.report import connect_quick, make_parser, write_report

ASK_TIMEOUT = 1.0  # seconds render waits for the engine to tell its API version


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


def engine_api_version(cfg: Config, timeout: float = ASK_TIMEOUT) -> tuple[Optional[str], str]:
    """The API version ``start`` would speak with the engine, if it answers within ``timeout``; else (None, why)."""
    try:
        engine = connect_quick(cfg, timeout)
    except InitError as err:
        return None, first_line(err)
    try:
        return engine.api_version, ""
    finally:
        engine.close()


def render(
    ctx: HostContext, api_version: Optional[str] = None, show_secrets: bool = False, ask_engine: bool = True
) -> dict[str, Any]:
    """The document ``render --json`` prints. Without ``api_version`` the engine is asked for it
    (``ask_engine``), and only when it does not answer is the preferred version assumed."""
    cfg = ctx.cfg
    offline = HostContext(cfg=cfg, runner=ctx.runner, docker_factory=_no_docker)
    notes: list[str] = []
    source = "option"
    if api_version is None and ask_engine:
        api_version, why = engine_api_version(cfg)
        source = "engine"
        if api_version is None:
            notes.append(
                f"Docker API version {PREFERRED_MAX_API} assumed: the engine did not tell its version within "
                f"{ASK_TIMEOUT:g}s ({why}); pass --api-version to match your engine (only engines older than "
                "1.25 get a different config)"
            )
    elif api_version is None:
        notes.append(f"Docker API version {PREFERRED_MAX_API} assumed (pass --api-version to match your engine)")
    assumed = api_version is None
    api = api_version or PREFERRED_MAX_API
    problems = config_problems.find(cfg)  # the warnings; the spec's builders need not log them again
    cfg.mark_reported(problems.setting_names())
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
        "api_version_source": "assumed" if assumed else source,
        "secrets_redacted": not show_secrets,
        "body": body,
        "warnings": problems.summary(),
        "notes": notes,
    }


def format_human(doc: dict[str, Any]) -> str:
    body = doc["body"]
    host = dict(body["HostConfig"])
    binds = host.pop("Binds", [])
    lines = [f"Container {doc['name']} from image {body['Image']}"]
    api_note = {"assumed": " (assumed)", "engine": " (the engine's)", "option": " (--api-version)"}.get(
        doc.get("api_version_source", ""), ""
    )
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


def _api_version(text: str) -> str:
    if version_tuple(text) == (0,):
        raise argparse.ArgumentTypeError(f"{text!r} is not a version like 1.44")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("render", "Print the agent container config that `start` would create, touching nothing.")
    parser.add_argument("--show-secrets", action="store_true", help="do not redact secret values")
    parser.add_argument(
        "--api-version",
        type=_api_version,
        help=f"the Docker API version to render for (default: the engine's, asked with a {ASK_TIMEOUT:g} s limit; "
        f"{PREFERRED_MAX_API} assumed when it does not answer)",
    )
    return parser


def main(ctx: HostContext, args: Sequence[str]) -> int:
    opts = build_parser().parse_args(list(args))
    doc = render(ctx, opts.api_version, opts.show_secrets)
    text = json.dumps(doc, indent=2) if opts.json else format_human(doc)
    if not opts.show_secrets:
        text = redact.redact_text(text)
    write_report(text, human=not opts.json)
    return 0
