"""The one adapter through which every external command runs.

Every command runs with ``LC_ALL=C``: this program parses what sysctl, ip,
iptables, apparmor_parser, realm and umount print (``cannot stat``, ``File
exists``, ``not mounted``, ``realm-name``...), and a host whose locale
translates those messages must not change what a step decides.
"""

from __future__ import annotations

import logging
import os

from ecs_init.core.errors import CommandError

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    import subprocess
    from typing import Mapping, Sequence

# subprocess and shutil are imported where they are used: every action builds a
# Runner, and `stop` never runs a command (tests/unit/test_import_budget.py).

log = logging.getLogger(__name__)


# The locale of every command whose output or error text is parsed (SPEC §5).
COMMAND_LOCALE = "C"


def command_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with ``LC_ALL=C`` (which also makes gettext ignore ``LANGUAGE``)."""
    env = dict(base)
    env["LC_ALL"] = COMMAND_LOCALE
    return env


class Runner:
    """Runs external commands. Tests may pass a fake with the same ``run``.

    ``prefix`` is prepended to every argv (e.g. ``["ip", "netns", "exec", "ns1"]``)
    which lets the same code act inside a network namespace.
    """

    def __init__(self, prefix: Sequence[str] = (), env: Mapping[str, str] | None = None):
        self.prefix = list(prefix)
        self.env = dict(env) if env is not None else None

    def which(self, name: str) -> str | None:
        import shutil

        return shutil.which(name)

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        import subprocess

        full = self.prefix + list(argv)
        log.debug("exec: %s", " ".join(full))
        try:
            proc = subprocess.run(
                full,
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input_text,
                env=command_env(self.env if self.env is not None else os.environ),
                check=False,
            )
        except FileNotFoundError as err:
            raise CommandError(f"{argv[0]}: command not found") from err
        except subprocess.TimeoutExpired as err:
            raise CommandError(f"{' '.join(argv)}: timed out after {timeout:.0f}s") from err
        if check and proc.returncode != 0:
            out = (proc.stderr or proc.stdout or "").strip().replace("\n", " | ")
            raise CommandError(f"{' '.join(argv)}: exit {proc.returncode}: {out}")
        return proc
