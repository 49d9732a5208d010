"""The pure rules of healing a hung agent, and the heartbeat of the supervision loop.

The agent container can keep running while its introspection endpoint no
longer answers (a hung agent). While ``start`` supervises, the health
monitor (``healer.py``) probes ``/v1/metadata`` every
``ECS_INIT_HEALTH_INTERVAL`` seconds (default 30). ``HealthTracker`` decides
from the probes of one container: once it has not answered for
``ECS_INIT_HEALTH_TIMEOUT`` seconds (default 300; 0 turns healing off) --
counted from the end of its last good probe, every probe since having failed
-- heal it. An agent that has not answered once since its container started
first gets the whole readiness timeout (``ECS_INIT_READY_TIMEOUT``, default
120 s): its silence counts only from then on. The tracker takes the time as
an argument: no clock, no thread, no I/O.

``Heartbeat`` is the supervision loop's proof of progress for the systemd
watchdog: the loop beats at each step (also from inside the long wait for
the container, after each ping that found Docker answering, and while
backing off or waiting for Docker), each beat promising the next within a
lease. ``stall_reason`` says why the watchdog must not be fed: the loop
missed its lease, or the agent is unhealthy and healing it failed.
"""

from __future__ import annotations

import enum
import logging
import time

from ecs_init.agent.probe import DEFAULT_READY_TIMEOUT
from ecs_init.core import settings
from ecs_init.core.config import Config
from ecs_init.core.record import dataclass
from ecs_init.docker.api import STOP_GRACE

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Callable, Optional

    from ecs_init.agent.healer import HealthMonitor

log = logging.getLogger("ecs_init.agent.supervisor")

HEALTH_INTERVAL_KEY = settings.HEALTH_INTERVAL.name
DEFAULT_HEALTH_INTERVAL = settings.HEALTH_INTERVAL.default_number
HEALTH_TIMEOUT_KEY = settings.HEALTH_TIMEOUT.name
DEFAULT_HEALTH_TIMEOUT = settings.HEALTH_TIMEOUT.default_number  # 0: healing off
MIN_INTERVAL = settings.HEALTH_INTERVAL.low or 0.1
HEALTH_PROBE_TIMEOUT = 5.0  # one probe, capped by the interval
FIRST_ANSWER_POLL = 2.0  # until the agent has answered once, probe at least this often
# A heal's stop that has not ended the container within this many seconds
# has failed (the stop itself gives up after the grace plus 20 s).
HEAL_LIMIT = STOP_GRACE + 30.0

# The heartbeat: the loop's longest honest silence between two beats. Every
# Engine call but the wait and the image load ends within 60 s; the wait
# beats after each 30 s of silence; an image load (the client gives it up to
# 1800 s) is announced with a beat that adds IMAGE_LOAD.
DEFAULT_LEASE = 120.0
IMAGE_LOAD = 1800.0


# ---------------------------------------------------------------- the pure decision


@dataclass(frozen=True)
class HealthPolicy:
    """When to probe and when to heal (seconds)."""

    interval: float = DEFAULT_HEALTH_INTERVAL
    timeout: float = DEFAULT_HEALTH_TIMEOUT
    ready_timeout: float = DEFAULT_READY_TIMEOUT

    @property
    def enabled(self) -> bool:
        return self.timeout > 0

    @property
    def probe_timeout(self) -> float:
        return min(HEALTH_PROBE_TIMEOUT, self.interval)

    @classmethod
    def from_config(cls, cfg: Config) -> HealthPolicy:
        """The settings table's values (an out-of-range value: one warning, the default)."""
        return cls(
            interval=cfg.seconds(settings.HEALTH_INTERVAL),
            timeout=cfg.seconds(settings.HEALTH_TIMEOUT),
            ready_timeout=cfg.seconds(settings.READY_TIMEOUT),
        )


class Verdict(enum.Enum):
    HEALTHY = "healthy"
    FAILING = "failing"  # failing, not for long enough yet
    HEAL = "heal"  # failing for ECS_INIT_HEALTH_TIMEOUT: stop and restart it


@dataclass
class HealthTracker:
    """The probes of one agent container, from the time it started.

    The agent is unhealthy from the end of its last good probe (``last_ok``);
    one that has not answered yet, from ``started + ready_timeout``. A probe
    that fails ``timeout`` seconds or more after that makes it a heal.
    """

    policy: HealthPolicy
    started: float
    last_ok: Optional[float] = None  # None: has not answered since its container started
    failing: bool = False

    def counting_from(self) -> Optional[float]:
        """Since when the current failures count (None: not failing)."""
        if not self.failing:
            return None
        if self.last_ok is None:
            return self.started + self.policy.ready_timeout
        return self.last_ok

    def deadline(self) -> Optional[float]:
        """When continued failures make it a heal (None: not failing)."""
        since = self.counting_from()
        return None if since is None else since + self.policy.timeout

    def observe(self, ok: bool, now: float) -> Verdict:
        """Record a probe that ended at ``now``."""
        if ok:
            self.last_ok = now
            self.failing = False
            return Verdict.HEALTHY
        self.failing = True
        deadline = self.deadline()
        assert deadline is not None
        return Verdict.HEAL if now >= deadline else Verdict.FAILING

    def counting(self, now: float) -> bool:
        """True when failures count now (past the readiness grace of an agent that never answered)."""
        since = self.counting_from()
        return since is not None and now >= since

    def failing_for(self, now: float) -> float:
        """Seconds the current failures have counted for (0 when none)."""
        since = self.counting_from()
        return 0.0 if since is None else max(0.0, now - since)

    def resume(self, now: float) -> None:
        """Observe afresh (re-attached after a Docker outage): the outage's silence does not count."""
        self.failing = False
        if self.last_ok is not None:
            self.last_ok = now

    def next_probe_in(self, now: float) -> float:
        """Seconds to the next probe: the interval, sooner at a heal deadline or before the first answer."""
        delay = self.policy.interval
        if self.last_ok is None:
            delay = min(delay, FIRST_ANSWER_POLL)
        deadline = self.deadline()
        if deadline is not None and deadline > now:
            delay = min(delay, deadline - now)
        return max(MIN_INTERVAL / 2, delay)


# ---------------------------------------------------------------- the heartbeat


class Heartbeat:
    """Proof that the supervision loop makes progress: each beat promises the next within
    ``lease`` seconds (plus ``extra`` for a step known to take longer). Created beating."""

    def __init__(self, lease: float = DEFAULT_LEASE, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease = lease
        self.clock = clock
        self.last = clock()
        self._due = self.last + lease

    def beat(self, extra: float = 0.0) -> None:
        now = self.clock()
        self.last = now
        self._due = now + self.lease + extra

    def fresh(self) -> bool:
        """True while the last beat's promise holds."""
        return self.clock() <= self._due

    def silent_for(self) -> float:
        return self.clock() - self.last


def stall_reason(heartbeat: Heartbeat, monitor: Optional[HealthMonitor]) -> Optional[str]:
    """Why the systemd watchdog must not be fed now; None while supervision makes progress."""
    if not heartbeat.fresh():
        return f"the supervision loop made no progress for {heartbeat.silent_for():.0f}s"
    if monitor is not None:
        return monitor.healing_failed()
    return None
