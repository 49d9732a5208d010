"""What every host-preparation step gets: configuration, command runner, Docker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from ecs_init.cmd import Runner
from ecs_init.config import Config
from ecs_init.errors import InitError

if TYPE_CHECKING:
    from ecs_init.docker_client import DockerAdapter


@dataclass
class HostContext:
    """Passed to each pre-start/post-stop step.

    ``docker`` connects lazily on first use, so steps that do not need the
    engine (sysctl, AppArmor) never wait for it.
    """

    cfg: Config
    runner: Runner = field(default_factory=Runner)
    docker_factory: Optional[Callable[[], DockerAdapter]] = None
    _docker: Optional[DockerAdapter] = None
    _docker_error: Optional[Exception] = None

    @property
    def paths(self):  # type: ignore[no-untyped-def]
        return self.cfg.paths

    @property
    def docker(self) -> DockerAdapter:
        """The connected engine. A failed connect is remembered: one action waits once."""
        if self._docker is None:
            if self._docker_error is not None:
                raise self._docker_error
            try:
                if self.docker_factory is None:
                    from ecs_init.docker_client import DockerAdapter

                    self._docker = DockerAdapter.connect(self.cfg)
                else:
                    self._docker = self.docker_factory()
            except InitError as err:
                self._docker_error = err
                raise
        return self._docker
