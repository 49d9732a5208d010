"""Command line: ``amazon-ecs-init ACTION`` (SPEC §1)."""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from ecs_init import AGENT_VERSION, __version__

# Imports beyond these happen per action, inside main(): `version` loads no
# logging, HTTP or Docker code (tests/unit/test_import_budget.py).

# action -> (one-line description, "module:function"); every action is
# ``function(ctx, args) -> exit code``.
ACTIONS: dict[str, tuple[str, str]] = {
    "pre-start": ("prepare the host and make sure the agent image is loaded", "ecs_init.actions:pre_start"),
    "start": ("run the agent container and supervise it until it stops for good", "ecs_init.actions:start"),
    "stop": ("stop the agent container (10 s grace)", "ecs_init.actions:stop"),
    "pre-stop": ("same as stop (kept for upstart jobs)", "ecs_init.actions:stop"),
    "post-stop": ("undo the host preparation", "ecs_init.actions:post_stop"),
    "reload-cache": (
        "load the cached agent tarball into Docker (download it first if missing)",
        "ecs_init.actions:reload_cache",
    ),
    "version": ("print the version of this program and of the bundled agent", ""),
    "status": ("show the agent, its supervisor, the image cache and host rules (--json)", "ecs_init.ops.status:main"),
    "check": (
        "check Docker, ecs.config, the cached tarball and the host; --network: connectivity (--json)",
        "ecs_init.ops.check:main",
    ),
    "render": ("print the agent container config that start would create (--json)", "ecs_init.ops.render:main"),
    "collect": (
        "write a support bundle: logs, config, state, host facts, secrets redacted (--output, --since, --json)",
        "ecs_init.ops.collect:main",
    ),
}

# Actions that only read: they log to the console, not to ecs-init.log.
READ_ONLY_ACTIONS: set[str] = {"version", "status", "check", "render", "collect"}
# Operator reports: the report goes to stdout; the console log shows warnings and errors only.
REPORT_ACTIONS: set[str] = {"status", "check", "render", "collect"}


def usage() -> str:
    width = max(len(name) for name in ACTIONS)
    lines = ["Usage: amazon-ecs-init ACTION [OPTIONS]", "", "Actions:"]
    for name, (description, _) in ACTIONS.items():
        lines.append(f"  {name.ljust(width)}  {description}")
    lines += [
        "",
        "Exit codes: 0 success, 1 usage, 5 the agent asked not to be restarted, 255 failure.",
        "Log: /var/log/ecs/ecs-init.log. Manual: amazon-ecs-init(1).",
    ]
    return "\n".join(lines)


def version_text() -> str:
    """Line 1 exactly as the Go program prints it (scripts parse it); line 2 the agent version."""
    from ecs_init import versioninfo

    return f"{versioninfo.version_line(__version__)}\nECS agent version {AGENT_VERSION}"


def _resolve(target: str) -> Callable[..., int]:
    import importlib

    module_name, _, func_name = target.partition(":")
    module = importlib.import_module(module_name)
    func: Callable[..., int] = getattr(module, func_name)
    return func


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 1
    action, rest = args[0], args[1:]
    if action == "--version":
        action = "version"
    if action not in ACTIONS:
        print(f"amazon-ecs-init: unknown action {action!r}\n\n{usage()}", file=sys.stderr)
        return 1
    if action == "version":
        print(version_text())
        return 0

    import logging
    import signal

    from ecs_init.core import logsetup, redact, settings
    from ecs_init.core.config import Config
    from ecs_init.core.errors import InitError, first_line
    from ecs_init.core.exitcodes import Exit
    from ecs_init.host.context import HostContext

    log = logging.getLogger("ecs_init")

    cfg = Config.load()
    redact.register_secrets(cfg.merged)
    redact.register_secrets(cfg.environ)
    level = cfg.text(settings.LOGLEVEL)
    if action in REPORT_ACTIONS and level.strip().lower() not in ("error", "crit", "critical", "none"):
        level = "warn"
    logsetup.setup(None if action in READ_ONLY_ACTIONS else cfg.paths.init_log, level)
    ctx = HostContext(cfg=cfg)
    log.info("%s (amazon-ecs-init %s)", action, __version__)
    try:
        func = _resolve(ACTIONS[action][1])
        return int(func(ctx, rest))
    except InitError as err:
        log.error("%s", err)
        return err.exit_code
    except KeyboardInterrupt:
        log.error("%s: interrupted", action)
        return Exit.FAILURE
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        log.debug("unexpected error", exc_info=True)
        log.error("%s failed: %s: %s", action, type(err).__name__, first_line(err))
        return Exit.FAILURE
    finally:
        if action == "start":
            # systemd sends SIGTERM after ExecStop; arriving while the
            # interpreter shuts down it would turn a clean 0 into "killed".
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
