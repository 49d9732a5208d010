"""What every host-preparation step gets: configuration, command runner, Docker."""

from __future__ import annotations

from ecs_init.core import settings
from ecs_init.core.cmd import Runner
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.paths import Paths

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Callable, Optional

    from ecs_init.docker.api import Engine


class HostContext:
    """Passed to each pre-start/post-stop step.

    ``docker`` connects lazily on first use, so steps that do not need the
    engine (sysctl, AppArmor) never wait for it. ``docker_factory`` replaces
    the real client (tests pass a fake); ``docker_wait`` caps the wait for
    the daemon (``stop`` must give up early).
    """

    __slots__ = ("cfg", "runner", "docker_factory", "docker_wait", "_docker", "_docker_error")

    def __init__(
        self,
        cfg: Config,
        runner: Optional[Runner] = None,
        docker_factory: Optional[Callable[[], Engine]] = None,
        docker_wait: Optional[float] = None,
    ) -> None:
        # (A plain class, not a dataclass: it is on every action's start-up path.)
        self.cfg = cfg
        self.runner = Runner() if runner is None else runner
        self.docker_factory = docker_factory
        self.docker_wait = docker_wait
        self._docker: Optional[Engine] = None
        self._docker_error: Optional[InitError] = None

    def __repr__(self) -> str:
        return f"HostContext(cfg={self.cfg!r}, docker_wait={self.docker_wait!r})"

    @property
    def paths(self) -> Paths:
        return self.cfg.paths

    def docker_wait_timeout(self) -> float:
        """How long to wait for the Docker daemon (ECS_INIT_DOCKER_WAIT_TIMEOUT, capped by ``docker_wait``)."""
        configured = self.cfg.seconds(settings.DOCKER_WAIT_TIMEOUT)
        return configured if self.docker_wait is None else min(configured, self.docker_wait)

    @property
    def docker(self) -> Engine:
        """The connected engine. A failed connect is remembered: one action waits once."""
        if self._docker is None:
            if self._docker_error is not None:
                raise self._docker_error
            try:
                if self.docker_factory is None:
                    from ecs_init.docker import client

                    wait = self.docker_wait_timeout()
                    attempt = client.PING_TIMEOUT
                    if self.docker_wait is not None:  # a capped wait: shorter attempts, so a hung daemon gets several
                        attempt = max(1.0, min(attempt, wait / 3))
                    self._docker = client.connect(self.cfg.docker_host(), wait, attempt_timeout=attempt)
                else:
                    self._docker = self.docker_factory()
            except InitError as err:
                self._docker_error = err
                raise
        return self._docker
