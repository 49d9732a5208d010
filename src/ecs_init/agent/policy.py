"""The supervision policy (SPEC §5), pure: what an agent's exit means, how long to wait, when to roll back.

Nothing here talks to Docker or the host; ``supervisor.py`` is the loop
that applies it, ``upgrade.py`` the upgrade and rollback steps.
"""

from __future__ import annotations

import enum

from ecs_init.core.exitcodes import AgentExit
from ecs_init.core.record import dataclass, field

LOG_TAIL_LINES = 200  # exit 2: how much of the agent's log to copy into ours

BACKOFF_START = 0.5
BACKOFF_CAP = 15.0
BACKOFF_JITTER = 0.1
# While the Docker daemon is away: ping it at least this often (seconds), and
# wait for it as long as it takes (each ECS_INIT_DOCKER_WAIT_TIMEOUT logs an error).
RECONNECT_POLL = 0.5
# The "exit code" of an agent lost with the Docker daemon (gone, or stopped by
# the daemon's shutdown): restarted by the normal policy, after the first
# backoff step (the backoff is reset: the agent did not fail).
EXIT_DOCKER_LOST = -2
# The "exit code" of an agent container that could not be created or started.
EXIT_START_FAILED = -1
# The "exit code" of an agent stopped by the health monitor (health.py) to heal
# it: restarted by the normal policy; counted against an upgrade only while
# the upgrade is watched (UpgradeWatch: within ECS_INIT_ROLLBACK_WINDOW).
EXIT_HEALED = -3
# The "exit code" of an agent whose container was removed (or replaced) behind the supervisor's
# back (``docker rm -f ecs-agent``): restarted like one lost with Docker, not counted as a failure.
EXIT_CONTAINER_GONE = -4
# That many create/start failures in a row end `start` with 255: systemd then
# runs pre-start again (as after the Go program's first failure); never a loop.
MAX_START_FAILURES = 5


class Next(enum.Enum):
    STOP = "stop supervising"
    TERMINAL = "terminal"
    UPGRADE = "upgrade"
    RESTART = "restart after backoff"


def decide(exit_code: int) -> Next:
    """The exit-code table of SPEC §5."""
    if exit_code == AgentExit.CLEAN:
        return Next.STOP
    if exit_code == AgentExit.TERMINAL:
        return Next.TERMINAL
    if exit_code == AgentExit.UPGRADE:
        return Next.UPGRADE
    return Next.RESTART


def describe_exit(exit_code: int) -> str:
    """How the log tells an exit: the agent's own code, or what befell its container."""
    if exit_code == EXIT_DOCKER_LOST:
        return "the agent container was lost with the Docker daemon"
    if exit_code == EXIT_START_FAILED:
        return "the agent container could not be started"
    if exit_code == EXIT_CONTAINER_GONE:
        return "the agent container disappeared"
    if exit_code == EXIT_HEALED:
        return "the agent was stopped by the health monitor"
    return f"agent exited with code {exit_code}"


def resets_backoff(exit_code: int, uptime: float, reset_after: float) -> bool:
    """An agent that stayed up ``reset_after`` seconds is healthy again (SPEC §5 "Beyond"), and one
    taken down by Docker (or removed by someone) did not fail: the next restart waits the first
    backoff step again."""
    return uptime >= reset_after or exit_code in (EXIT_DOCKER_LOST, EXIT_CONTAINER_GONE)


def counts_against_upgrade(exit_code: int) -> bool:
    """Whether an exit counts as a failure of a freshly upgraded agent (toward a rollback).

    Exits that end or pause supervision by design (0, 5, 42: asking for an
    upgrade is not failing to stay up) and a Docker outage (not the agent's
    fault) do not.
    """
    return exit_code not in (
        AgentExit.CLEAN,
        AgentExit.TERMINAL,
        AgentExit.UPGRADE,
        EXIT_DOCKER_LOST,
        EXIT_CONTAINER_GONE,
    )


@dataclass
class UpgradeWatch:
    """Tracks an upgraded agent until it proves itself or fails too often.

    Times come from the supervisor's (monotonic) clock. The upgrade has
    failed when ``limit`` failures fall within one ``window``; it has proved
    itself once a whole window has passed since the upgrade and since its
    last failure.
    """

    previous_image: str
    new_image: str
    started: float
    failures: list[float] = field(default_factory=list)

    def prune(self, now: float, window: float) -> None:
        """Forget failures older than the window."""
        self.failures = [t for t in self.failures if now - t <= window]

    def proven(self, now: float, window: float) -> bool:
        """True when neither the upgrade nor any failure lies within the window."""
        self.prune(now, window)
        return not self.failures and now - self.started > window

    def record_failure(self, now: float, window: float) -> int:
        """Count a failure at ``now``; return the failures within the window."""
        self.prune(now, window)
        self.failures.append(now)
        return len(self.failures)
