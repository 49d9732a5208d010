"""Every exit code, in one place: this program's (SPEC §1) and the agent's (SPEC §5), kept apart.

``Exit`` is what ``amazon-ecs-init`` itself returns; ``AgentExit`` is what the
agent container returns to its supervisor. They share numbers (5 means
"terminal" in both) but not meaning: a supervisor maps the agent's 5 onto
its own 5 so that systemd's ``RestartPreventExitStatus=5`` holds.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """Exit codes of ``amazon-ecs-init``."""

    OK = 0
    USAGE = 1  # no or unknown action, a bad option
    CHECK_FAILED = 1  # `check`: at least one FAIL
    STATUS_UNKNOWN = 1  # `status`: cannot tell (Docker or the agent's endpoint does not answer)
    STATUS_NOT_RUNNING = 3  # `status`: the agent container is not running
    TERMINAL = 5  # `start`: the agent asked not to be restarted
    FAILURE = 255  # any other failure (the Go program's -1)


# What each exit code of ``amazon-ecs-init`` means, by member (``--help`` lists them, grouped by
# number; tests/unit/test_cli.py keeps this complete).
EXIT_MEANINGS: dict[str, str] = {
    "OK": "success (start: the agent exited 0, or SIGTERM/SIGINT stopped it)",
    "USAGE": "usage error: no or an unknown action, an unknown option",
    "CHECK_FAILED": "check: at least one check FAILed",
    "STATUS_UNKNOWN": "status: cannot tell (Docker or the agent's endpoint does not answer)",
    "STATUS_NOT_RUNNING": "status: the agent container is not running",
    "TERMINAL": "start: the agent asked not to be restarted (systemd's RestartPreventExitStatus=5)",
    "FAILURE": "any other failure, logged as one line",
}


def exit_code_lines() -> list[str]:
    """``code  meaning`` lines, one per member of ``Exit`` (a code shared by several shown once)."""
    by_code: dict[int, list[str]] = {}
    for name, member in Exit.__members__.items():
        by_code.setdefault(int(member), []).append(EXIT_MEANINGS[name])
    lines = []
    for code, texts in sorted(by_code.items()):
        lines += [f"{str(code) if i == 0 else '':<4} {text}" for i, text in enumerate(texts)]
    return lines


class AgentExit(enum.IntEnum):
    """Exit codes of the agent container, as the supervision policy reads them."""

    CLEAN = 0  # stop supervising
    DEBUG = 2  # log the agent's last lines, then back off
    TERMINAL = 5  # do not restart
    UPGRADE = 42  # load the desired image, restart at once
