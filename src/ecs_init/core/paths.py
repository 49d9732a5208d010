"""Every host path of SPEC §2, resolved under an optional root prefix (``ECS_INIT_PATH_PREFIX``)."""

from __future__ import annotations

import os

from ecs_init.core import settings

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Mapping

PREFIX_ENV = settings.PATH_PREFIX.name


class Paths:
    """Every host path of SPEC §2, resolved under an optional root prefix. Immutable.

    (Plain classes, not dataclasses, on every action's start-up path: importing
    ``dataclasses`` and generating their methods costs milliseconds on ``stop``.)
    """

    __slots__ = ("prefix",)
    prefix: str

    def __init__(self, prefix: str = "") -> None:
        object.__setattr__(self, "prefix", prefix)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Paths is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(("Paths", self.prefix))

    def __repr__(self) -> str:
        return f"Paths(prefix={self.prefix!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        prefix = env.get(PREFIX_ENV, "").rstrip("/")
        return cls(prefix=prefix)

    def host(self, path: str) -> str:
        """Map a real absolute path to its location under the prefix."""
        return self.prefix + path

    # /etc/ecs
    @property
    def config_dir(self) -> str:
        return self.host("/etc/ecs")

    @property
    def ecs_config(self) -> str:
        return self.host("/etc/ecs/ecs.config")

    @property
    def ecs_config_json(self) -> str:
        return self.host("/etc/ecs/ecs.config.json")

    # /var/lib/ecs
    @property
    def instance_config_dir(self) -> str:
        return self.host("/var/lib/ecs")

    @property
    def instance_config(self) -> str:
        return self.host("/var/lib/ecs/ecs.config")

    @property
    def data_dir(self) -> str:
        return self.host("/var/lib/ecs/data")

    @property
    def deps_dir(self) -> str:
        return self.host("/var/lib/ecs/deps")

    @property
    def gpu_dir(self) -> str:
        return self.host("/var/lib/ecs/gpu")

    @property
    def gpu_info(self) -> str:
        return self.host("/var/lib/ecs/gpu/nvidia-gpu-info.json")

    @property
    def volumes_dir(self) -> str:
        return self.host("/var/lib/ecs/volumes")

    @property
    def volume_plugin_state(self) -> str:
        return self.host("/var/lib/ecs/data/ecs_volume_plugin.json")

    # /var/log/ecs
    @property
    def log_dir(self) -> str:
        return self.host("/var/log/ecs")

    @property
    def init_log(self) -> str:
        return self.host("/var/log/ecs/ecs-init.log")

    @property
    def agent_log(self) -> str:
        """Written by the agent (``ECS_LOGFILE=/log/ecs-agent.log`` inside its container)."""
        return self.host("/var/log/ecs/ecs-agent.log")

    @property
    def volume_plugin_log(self) -> str:
        return self.host("/var/log/ecs/ecs-volume-plugin.log")

    # /var/cache/ecs
    @property
    def cache_dir(self) -> str:
        return self.host("/var/cache/ecs")

    @property
    def cache_tarball(self) -> str:
        return self.host("/var/cache/ecs/ecs-agent.tar")

    @property
    def cache_state(self) -> str:
        return self.host("/var/cache/ecs/state")

    @property
    def desired_image(self) -> str:
        return self.host("/var/cache/ecs/desired-image")

    # elsewhere
    @property
    def ebs_dir(self) -> str:
        return self.host("/mnt/ecs/ebs")

    @property
    def run_dir(self) -> str:
        """Runtime state of this program: lock, supervisor status, events."""
        return self.host("/var/run/ecs-init")

    @property
    def supervisor_state(self) -> str:
        """The supervisor's state for ``status`` (volatile: /var/run)."""
        return self.host("/var/run/ecs-init/supervisor.json")

    @property
    def events_file(self) -> str:
        """Upgrades, rollbacks, image reloads, heals: the last 50, for ``status`` (survives reboots)."""
        return self.host("/var/lib/ecs/ecs-init-events.json")

    @property
    def apparmor_dir(self) -> str:
        return self.host("/etc/apparmor.d")

    @property
    def os_release(self) -> str:
        """The prefix's os-release when it has one (tests), else the host's."""
        candidate = self.host("/etc/os-release")
        if self.prefix and os.path.exists(candidate):
            return candidate
        return "/etc/os-release"
