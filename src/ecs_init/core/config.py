"""The loaded configuration: the process environment plus the merged ecs.config files (SPEC §3).

``merged`` is the instance file then the operator file (operator wins): it
is what the agent gets. This program's own settings are read through the
typed accessors below, each taking a row of the settings table
(``core/settings.py``): from the process environment first, then from the
merged files (SPEC §3 "Beyond"), unless the row says otherwise. A value a
row's rule refuses is logged once and its default used.

Reads files only; nothing changes the host.
"""

from __future__ import annotations

import logging
import os

from ecs_init.core import envfile, settings
from ecs_init.core.envfile import EnvFile
from ecs_init.core.paths import Paths
from ecs_init.core.settings import Setting, Source

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Iterable, Mapping

log = logging.getLogger(__name__)


class Config:
    """The settings as read: the process environment and the env files (a plain class, not a
    dataclass: this module is on every action's start-up path)."""

    __slots__ = ("paths", "environ", "instance", "operator", "files", "_warned")

    def __init__(
        self,
        paths: Paths,
        environ: dict[str, str],
        instance: dict[str, str] | None = None,
        operator: dict[str, str] | None = None,
        files: tuple[EnvFile, ...] = (),  # the operator's file, then the instance file, as read
    ) -> None:
        self.paths = paths
        self.environ = environ
        self.instance: dict[str, str] = {} if instance is None else instance
        self.operator: dict[str, str] = {} if operator is None else operator
        self.files = files
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"Config(paths={self.paths!r}, environ=<{len(self.environ)} variables>, "
            f"instance=<{len(self.instance)} settings>, operator=<{len(self.operator)} settings>)"
        )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, paths: Paths | None = None) -> Config:
        env = dict(os.environ if environ is None else environ)
        p = paths or Paths.from_env(env)
        operator, instance = envfile.read(p.ecs_config), envfile.read(p.instance_config, follow_symlinks=False)
        # Nothing is logged here: logging is set up after the configuration is read (its level
        # is a setting); the command line logs ``file_errors`` then, in logfmt, to ecs-init.log too.
        return cls(paths=p, environ=env, instance=instance.values, operator=operator.values, files=(operator, instance))

    def file_errors(self) -> list[str]:
        """One line per env file that exists but cannot be used at all (it is ignored)."""
        return [f"config file {f.path} {f.error}; ignoring it" for f in self.files if f.error]

    def refusals(self) -> list[str]:
        """One line per env file that is not KEY=VALUE text (``envfile.text_refusal``)."""
        return [f"config file {f.path} {f.refusal}" for f in self.files if f.refusal]

    def mark_reported(self, names: Iterable[str]) -> None:
        """The problems of these settings were logged already: the accessors do not log them again."""
        self._warned.update(names)

    @property
    def merged(self) -> dict[str, str]:
        out = dict(self.instance)
        out.update(self.operator)
        return out

    # ------------------------------------------------------------ raw values

    def raw(self, setting: Setting) -> str:
        """The value as written ("" when unset), from where the table says it is read."""
        if setting.source is not Source.FILES and setting.name in self.environ:
            return self.environ[setting.name]
        if setting.source is Source.ENV:
            return ""
        return self.merged.get(setting.name, "")

    def origin(self, setting: Setting) -> str:
        """Where the value came from: "the process environment", a file's path, or "" (unset)."""
        if setting.source is not Source.FILES and setting.name in self.environ:
            return "the process environment"
        if setting.source is Source.ENV:
            return ""
        if setting.name in self.operator:
            return self.paths.ecs_config
        return self.paths.instance_config if setting.name in self.instance else ""

    def _warn_once(self, setting: Setting, problem: str | None) -> None:
        if problem is not None and setting.name not in self._warned:
            self._warned.add(setting.name)
            log.warning("%s", problem)

    # ------------------------------------------------------------ typed accessors

    def text(self, setting: Setting) -> str:
        """A text, URL, JSON or choice setting: its value as written, or the default when unset or empty
        (a choice that is none of its choices: the default, logged once)."""
        raw = self.raw(setting)
        self._warn_once(setting, settings.validate(setting, raw))
        if setting.choices and raw.strip().lower() not in setting.choices:
            return setting.default
        return raw if raw != "" else setting.default

    def flag(self, setting: Setting) -> bool:
        """A boolean setting, read by its Go rule (SPEC §3); a doubtful value is logged once."""
        value, problem = settings.read_flag(setting, self.raw(setting))
        self._warn_once(setting, problem)
        return value

    def instance_flag(self, setting: Setting) -> bool:
        """A boolean as the instance file alone sets it (SPEC §3: its GPU switch waits for devices)."""
        return settings.read_flag(setting, self.instance.get(setting.name, ""))[0]

    def seconds(self, setting: Setting) -> float:
        """A number of seconds in the row's range; out of range or unparsable: the default (logged once)."""
        value, problem = settings.read_number(setting, self.raw(setting))
        self._warn_once(setting, problem)
        return value

    def count(self, setting: Setting) -> int:
        return int(self.seconds(setting))

    def docker_host(self) -> str:
        """The Docker endpoint this program talks to (process environment only)."""
        return self.text(settings.DOCKER_HOST)
