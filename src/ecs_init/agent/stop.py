"""``stop`` / ``pre-stop``: stop the agent container gracefully, giving up within 20 s.

SPEC §5: systemd's stop timeout is 90 s, so a Docker that does not answer
must not hold ``stop`` for longer than 20 s. The budget: at most
``CONNECT_WAIT`` seconds to reach the daemon (short attempts, so a daemon
that accepts connections but never answers is tried more than once), the
rest for the stop request itself (the 10 s grace plus the kill).

This module imports only what stopping needs (the Engine client, not the
supervisor, the host facts or the image cache).
"""

from __future__ import annotations

import logging
import time

from ecs_init.agent.identity import AGENT_NAME
from ecs_init.docker.api import STOP_GRACE, Engine
from ecs_init.docker.errors import EngineUnavailable
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Callable, Optional

log = logging.getLogger(__name__)

GIVE_UP = 20.0  # seconds: the whole stop, Docker answering or not
CONNECT_WAIT = 6.0  # of which waiting for the daemon to answer at all
SLACK = 1.0  # kept back for logging and exiting


def stop_agent(
    engine: Engine, grace: int = STOP_GRACE, timeout: Optional[float] = None, which: str = AGENT_NAME
) -> bool:
    """Stop the agent container gracefully; False when it was not running. ``which`` names it in the
    log line (the supervisor adds the container ID it created)."""
    stopped = engine.stop_container(AGENT_NAME, grace, timeout)
    log.info("agent container %s %s", which, "stopped" if stopped else "was not running")
    return stopped


def stop(ctx: HostContext, clock: Callable[[], float] = time.monotonic) -> int:
    """The ``stop`` action: 0 when the agent is stopped (or was not running)."""
    started = clock()
    ctx.docker_wait = CONNECT_WAIT if ctx.docker_wait is None else min(ctx.docker_wait, CONNECT_WAIT)
    try:
        engine = ctx.docker
        left = GIVE_UP - SLACK - (clock() - started)
        stop_agent(engine, STOP_GRACE, timeout=max(1.0, left))
    except EngineUnavailable as err:
        raise EngineUnavailable(f"stop: gave up after {clock() - started:.0f}s: {err}")
    return 0
