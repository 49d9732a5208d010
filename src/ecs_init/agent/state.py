"""The supervisor's state, as ``status`` and systemd's STATUS= see it (``Paths.supervisor_state``)."""

from __future__ import annotations

import enum
import json
import logging
from typing import Any

from ecs_init.core.fsutil import atomic_write

log = logging.getLogger(__name__)


class SupervisorState(str, enum.Enum):
    """What ``start`` is doing now (the string is what the state file and STATUS= carry)."""

    STARTING = "starting"  # creating and starting the agent container (the action lock is held)
    RUNNING = "running"  # the agent container runs; waiting for it to exit
    BACKOFF = "backoff"  # the agent exited; waiting before the next start
    DOCKER_LOST = "docker-lost"  # the Docker daemon is away; waiting for it to return
    HEALING = "healing"  # the agent stopped answering: the health monitor is stopping it to restart it
    STOPPED = "stopped"  # supervision ended (agent exit 0, or SIGTERM)
    TERMINAL = "terminal"  # the agent exited 5: not restarted

    def __str__(self) -> str:
        return self.value


def write(path: str, doc: dict[str, Any]) -> None:
    """Replace the state file (not fsynced: it describes this boot only); a failure is logged at debug."""
    try:
        atomic_write(path, json.dumps(doc), durable=False)
    except OSError as err:
        log.debug("cannot write supervisor status: %s", err)
