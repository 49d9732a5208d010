"""The env files (``/etc/ecs/ecs.config``, ``/var/lib/ecs/ecs.config``): one reader, one parser (SPEC §3).

``Config`` reads the merged settings through it; ``check`` reads the same
entries with their line numbers and what was ignored. A file is read
without following a symlink into a FIFO or device, never blocking, and at
most 1 MiB of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ecs_init.core.fsutil import NotRegularFile, read_regular

log = logging.getLogger(__name__)

# Files larger than this are refused rather than read (hostile input).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_LINES = 10000


@dataclass(frozen=True)
class Entry:
    """One ``KEY=VALUE`` line (key and value trimmed)."""

    line: int
    key: str
    value: str


@dataclass
class EnvFile:
    """What one env file holds, and why it could not be read (``error``; "" when it was, or is absent)."""

    path: str
    present: bool = False
    error: str = ""
    entries: list[Entry] = field(default_factory=list)
    ignored: list[tuple[int, str]] = field(default_factory=list)  # (line number, text) of lines without '='

    @property
    def values(self) -> dict[str, str]:
        """The settings, later lines winning."""
        return {entry.key: entry.value for entry in self.entries}


def parse_lines(text: str) -> tuple[list[Entry], list[tuple[int, str]]]:
    """The KEY=VALUE lines of an env file, the way the agent's env files are read (SPEC §3).

    Each line is trimmed and split on the first ``=``; lines without ``=``
    are skipped (returned as ignored unless blank or a ``#`` comment); a
    blank key is skipped. Line numbers count from 1.
    """
    entries: list[Entry] = []
    ignored: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if "=" not in line:
            if line and not line.startswith("#"):
                ignored.append((number, line))
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key:
            entries.append(Entry(number, key, value.strip()))
    return entries, ignored


def parse_env_text(text: str) -> dict[str, str]:
    """``parse_lines`` as a mapping, later lines winning."""
    return {entry.key: entry.value for entry in parse_lines(text)[0]}


def read(path: str) -> EnvFile:
    """Read an env file; a missing file is empty; never raises, never logs.

    Huge, binary or non-UTF-8 files are handled: bytes that are not UTF-8 are
    replaced, NUL bytes end a line, and files over 1 MiB or 10 000 lines are refused.
    """
    result = EnvFile(path)
    try:
        data = read_regular(path, MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return result
    except NotRegularFile as err:
        result.present, result.error = True, str(err)[len(path) + 1 :] if str(err).startswith(path) else str(err)
        return result
    except OSError as err:
        result.present, result.error = True, f"cannot be read: {err.strerror or err}"
        return result
    result.present = True
    if len(data) > MAX_CONFIG_BYTES:
        result.error = f"is larger than {MAX_CONFIG_BYTES} bytes"
        return result
    text = data.decode("utf-8", errors="replace").replace("\x00", "\n")
    if text.count("\n", 0, len(text.rstrip())) >= MAX_CONFIG_LINES:  # bounds the memory and work of every reader
        result.error = f"has more than {MAX_CONFIG_LINES} lines"
        return result
    result.entries, result.ignored = parse_lines(text)
    return result


def read_env_file(path: str) -> dict[str, str]:
    """The settings of an env file; one error line when it exists but cannot be used."""
    env = read(path)
    if env.error:
        log.error("config file %s %s; ignoring it", path, env.error)
    return env.values
