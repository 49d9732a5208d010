"""Command line: ``amazon-ecs-init ACTION [OPTIONS]`` (SPEC §1).

Before anything runs, the arguments are checked: ``-h``/``--help`` anywhere
after an action prints that action's help and exits 0, touching nothing; an
option the action does not take is a usage error (plain text on stderr, then
the action's usage; exit 1). Only then is the configuration read, logging set
up and the action run.
"""

from __future__ import annotations

import sys

from ecs_init import AGENT_VERSION, __version__

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    import argparse
    from typing import Callable, Optional, Sequence

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
    "version": ("print the version of this program and of the bundled agent (also: --version)", ""),
    "status": ("show the agent, its supervisor, the image cache and host rules (--json)", "ecs_init.ops.status:main"),
    "check": (
        "check Docker, ecs.config, the cached tarball and the host; --network: connectivity (--json)",
        "ecs_init.ops.check:main",
    ),
    "render": (
        "print the agent container config that start would create (--json, --show-secrets, --api-version)",
        "ecs_init.ops.render:main",
    ),
    "collect": (
        "write a support bundle: logs, config, state, host facts, secrets redacted (--output, --since, --json)",
        "ecs_init.ops.collect:main",
    ),
}

# Actions that only read: they log to the console, not to ecs-init.log.
READ_ONLY_ACTIONS: set[str] = {"version", "status", "check", "render", "collect"}
# Operator reports: the report goes to stdout; the console log shows warnings and errors only.
REPORT_ACTIONS: set[str] = {"status", "check", "render", "collect"}
HELP_FLAGS = ("-h", "--help")

# The help of the actions that take no option (the reports' comes from their parsers).
DETAILS: dict[str, str] = {
    "pre-start": (
        "Steps, in order, each logged: GPU setup, AppArmor, loopback routing and IPv6 router advertisements, "
        "the IPv6-only route, netfilter rules, the EBS mount directory, then the agent image (download and/or "
        "load as /var/cache/ecs/state says). Logs each class of ecs.config problems once (see `check`); refuses "
        "to run (255) when an ecs.config file is not KEY=VALUE text."
    ),
    "start": (
        "Runs the ecs-agent container and restarts it by its exit code: 0 ends supervision (exit 0), 5 is "
        "terminal (exit 5), 42 loads the desired image and restarts at once, anything else restarts after a "
        "backoff. SIGTERM/SIGINT stops the agent (10 s grace) and exits 0. Logs each class of ecs.config "
        "problems once; refuses to run (255) when an ecs.config file is not KEY=VALUE text."
    ),
    "stop": "Stops the ecs-agent container (10 s grace); gives up within 20 s when Docker does not answer (255).",
    "pre-stop": "The same as stop, for upstart jobs.",
    "post-stop": (
        "Removes the netfilter rules, the IPv6-only route and restores route_localnet. Every step is attempted, "
        "each failure logged; the exit is 0."
    ),
    "reload-cache": (
        "Loads /var/cache/ecs/ecs-agent.tar into Docker (downloading it first when the cache is uncached), "
        "writes cache state 1 and records a reload-cache event (shown by `status`). The manual rollback after "
        "a failed self-update: stop ecs; amazon-ecs-init reload-cache; start ecs."
    ),
    "version": "Line 1 exactly as the Go ecs-init prints it (scripts parse it); line 2 the agent version.",
}


def _exit_codes() -> list[str]:
    from ecs_init.core.exitcodes import exit_code_lines

    return [f"  {line}" for line in exit_code_lines()]


def usage() -> str:
    width = max(len(name) for name in ACTIONS)
    lines = ["Usage: amazon-ecs-init ACTION [OPTIONS]", "       amazon-ecs-init ACTION --help", "", "Actions:"]
    for name, (description, _) in ACTIONS.items():
        lines.append(f"  {name.ljust(width)}  {description}")
    lines += ["", "Exit codes:", *_exit_codes()]
    lines += [
        "",
        "Log: /var/log/ecs/ecs-init.log. JSON schemas of the --json documents: /usr/share/amazon-ecs-init/schemas/.",
        "Manual: amazon-ecs-init(1).",
    ]
    return "\n".join(lines)


def _report_parser(action: str) -> argparse.ArgumentParser:
    """The argparse parser of a report action (its module's ``build_parser``)."""
    import importlib

    module = importlib.import_module(ACTIONS[action][1].partition(":")[0])
    parser: argparse.ArgumentParser = module.build_parser()
    return parser


def action_usage(action: str) -> str:
    if action in REPORT_ACTIONS:
        return _report_parser(action).format_usage().rstrip()
    return f"usage: amazon-ecs-init {action} [-h]"


def action_help(action: str) -> str:
    if action in REPORT_ACTIONS:
        return _report_parser(action).format_help().rstrip()
    import textwrap

    description = ACTIONS[action][0]
    lines = [action_usage(action), "", description[0].upper() + description[1:] + ".", ""]
    lines += textwrap.wrap(DETAILS[action], 79)
    lines += ["", "options:", "  -h, --help  show this help and exit (nothing else is done)", ""]
    lines += ["Exit codes:", *_exit_codes()]
    return "\n".join(lines)


def option_problem(action: str, args: Sequence[str]) -> Optional[str]:
    """Why ``args`` are not options ``action`` takes (None when they are): checked before anything runs."""
    if action in REPORT_ACTIONS:
        from ecs_init.core.errors import UsageError

        try:
            _report_parser(action).parse_args(list(args))
        except UsageError as err:
            return str(err)
        return None
    if args:
        return f"amazon-ecs-init {action}: unrecognized arguments: {' '.join(args)}"
    return None


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


def _usage_error(message: str, action: Optional[str] = None) -> int:
    """A usage error is for a person: plain text on stderr, then the usage (never a log line)."""
    if action is None:
        print(f"{message}\n\n{usage()}", file=sys.stderr)
    else:
        print(f"{message}\n{action_usage(action)}\nTry 'amazon-ecs-init {action} --help'.", file=sys.stderr)
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 1
    action, rest = args[0], args[1:]
    if action == "--version":
        action = "version"
    if action not in ACTIONS:
        return _usage_error(f"amazon-ecs-init: unknown action {action!r}")
    if any(arg in HELP_FLAGS for arg in rest):
        print(action_help(action))
        return 0
    problem = option_problem(action, rest)
    if problem is not None:
        return _usage_error(problem, action)
    if action == "version":
        print(version_text())
        return 0

    import logging
    import signal

    from ecs_init.core import logsetup, redact, settings
    from ecs_init.core.config import Config
    from ecs_init.core.errors import InitError, UsageError, first_line
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
    if action not in ("pre-start", "start"):  # those two log every class of config problems themselves
        for line in cfg.file_errors():
            log.error("%s", line)
    try:
        func = _resolve(ACTIONS[action][1])
        return int(func(ctx, rest))
    except UsageError as err:  # an option's value found wrong late: still for a person
        return _usage_error(str(err), action)
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


def run() -> int:
    """The program's entry point (the packaged executable, ``python -m ecs_init``): ``main()``, then a
    quick exit. Tearing the interpreter down module by module costs a short action such as ``stop``
    milliseconds for nothing, so once the exit handlers have run (logging's closes the log file)
    and stdout and stderr are flushed, the process ends at once with ``os._exit``; a flush that fails
    ends it with 120, as the interpreter's own exit would. While another thread is still running
    (or on an interpreter without ``atexit._run_exitfuncs``) the code is returned for the usual exit,
    which waits for that thread."""
    code = main()
    import atexit
    import os

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    threading = sys.modules.get("threading")
    if run_exit_handlers is None or (threading is not None and threading.active_count() > 1):
        return code
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except (OSError, ValueError):
            code = 120
    os._exit(code)
