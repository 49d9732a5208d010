"""The env files (``/etc/ecs/ecs.config``, ``/var/lib/ecs/ecs.config``): one reader, one parser (SPEC §3).

``Config`` reads the merged settings through it; ``check`` reads the same
entries with their line numbers and what was ignored. A file is read
without following a symlink into a FIFO or device, never blocking, and at
most 1 MiB of it.

Two kinds of trouble are kept apart: ``error`` (the file cannot be used at
all: larger than 1 MiB, unreadable, not a regular file; it is ignored, with
one error line) and ``refusal`` (the file was read but is not KEY=VALUE text:
``text_refusal``'s rule; pre-start and start refuse to run with it, since an
agent started from such a file would run without its cluster).
"""

from __future__ import annotations

import errno
import logging
import re

from ecs_init.core.fsutil import NotRegularFile, read_regular

log = logging.getLogger(__name__)

# Files larger than this are refused rather than read (hostile input).
MAX_CONFIG_BYTES = 1024 * 1024
# Files with more lines than this are refused too: it bounds the memory and work of every reader.
MAX_CONFIG_LINES = 10000
# text_refusal: a file where more than this share of the characters is not text is binary.
MAX_NON_TEXT_SHARE = 0.10
# A key the agent can read from its environment: a variable name.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What is not text: bytes that were not UTF-8 (decoded as U+FFFD), control characters but tab, LF, CR.
_NON_TEXT = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Entry:
    """One ``KEY=VALUE`` line (key and value trimmed). Immutable.

    (Plain classes, not dataclasses: this module is on every action's start-up path.)
    """

    __slots__ = ("line", "key", "value")
    line: int
    key: str
    value: str

    def __init__(self, line: int, key: str, value: str) -> None:
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Entry is immutable: cannot set {name}")

    def _key(self) -> tuple[int, str, str]:
        return (self.line, self.key, self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Entry(line={self.line!r}, key={self.key!r}, value={self.value!r})"


class EnvFile:
    """What one env file holds, and why it could not be read (``error``; "" when it was, or is absent)."""

    __slots__ = ("path", "present", "error", "entries", "ignored", "refusal")

    def __init__(
        self,
        path: str,
        present: bool = False,
        error: str = "",
        entries: list[Entry] | None = None,
        ignored: list[tuple[int, str]] | None = None,  # (line number, text) of lines without '='
        refusal: str = "",  # why this is not a KEY=VALUE text file ("" when it is): pre-start and start refuse it
    ) -> None:
        self.path = path
        self.present = present
        self.error = error
        self.entries: list[Entry] = [] if entries is None else entries
        self.ignored: list[tuple[int, str]] = [] if ignored is None else ignored
        self.refusal = refusal

    def __repr__(self) -> str:
        return (
            f"EnvFile(path={self.path!r}, present={self.present!r}, error={self.error!r}, "
            f"entries={self.entries!r}, ignored={self.ignored!r}, refusal={self.refusal!r})"
        )

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


def read(path: str, follow_symlinks: bool = True) -> EnvFile:
    """Read an env file; a missing file is empty; never raises, never logs.

    Huge, binary or non-UTF-8 files are handled: bytes that are not UTF-8 are
    replaced, NUL bytes end a line, and files over 1 MiB or 10 000 lines are refused.
    With ``follow_symlinks=False`` a symlink is refused too (a file in a directory
    the agent container can write).
    """
    result = EnvFile(path)
    try:
        data = read_regular(path, MAX_CONFIG_BYTES + 1, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        return result
    except OSError as err:
        if err.errno != errno.ELOOP or follow_symlinks:
            return _unreadable(result, err)
        result.present, result.error = True, "is a symlink (not followed)"
        return result
    result.present = True
    if len(data) > MAX_CONFIG_BYTES:
        result.error = f"is larger than {MAX_CONFIG_BYTES} bytes"
        return result
    decoded = data.decode("utf-8", errors="replace")
    text = decoded.replace("\x00", "\n")
    if text.count("\n", 0, len(text.rstrip())) >= MAX_CONFIG_LINES:
        result.error = f"has more than {MAX_CONFIG_LINES} lines"
        return result
    result.refusal = text_refusal(decoded)
    result.entries, result.ignored = parse_lines(text)
    return result


def is_name(key: str) -> bool:
    """Whether ``key`` is a variable name (letters, digits, ``_``; not starting with a digit)."""
    return _NAME.fullmatch(key) is not None


def text_refusal(text: str) -> str:
    """Why ``text`` (an env file, decoded with replacement characters) is not a KEY=VALUE text file,
    or "" when it is. The rule:

    - a NUL byte anywhere: binary;
    - more than 10 % of its characters are not text (bytes that are not UTF-8, control
      characters other than tab, CR and LF): binary;
    - among its lines that are not blank and not ``#`` comments, no ``KEY=VALUE`` line
      (a variable name, ``=``, a value), or more than half of them are not ``KEY=VALUE``.

    An empty file, or one of comments only, is text.
    """
    if "\x00" in text:
        return "holds NUL bytes: it is a binary file, not KEY=VALUE text"
    if text:
        bad = len(_NON_TEXT.findall(text))
        if bad > MAX_NON_TEXT_SHARE * len(text):
            return (
                f"is binary: {100 * bad // len(text)}% of it is not text (bytes that are not UTF-8, control characters)"
            )
    content = [
        (number, line.strip())
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    malformed = [number for number, line in content if "=" not in line or not is_name(line.split("=", 1)[0].strip())]
    if not malformed:
        return ""
    shown = ", ".join(str(n) for n in malformed[:5]) + (f" and {len(malformed) - 5} more" if len(malformed) > 5 else "")
    if len(malformed) == len(content):
        return f"has no KEY=VALUE line: none of its {len(content)} line(s) sets a variable (lines {shown})"
    if 2 * len(malformed) > len(content):
        return f"is mostly not KEY=VALUE text: {len(malformed)} of its {len(content)} lines are not (lines {shown})"
    return ""


def _unreadable(result: EnvFile, err: OSError) -> EnvFile:
    path = result.path
    if isinstance(err, NotRegularFile):
        result.error = str(err)[len(path) + 1 :] if str(err).startswith(path) else str(err)
    else:
        result.error = f"cannot be read: {err.strerror or err}"
    result.present = True
    return result


def read_env_file(path: str) -> dict[str, str]:
    """The settings of an env file; one error line when it exists but cannot be used."""
    env = read(path)
    if env.error:
        log.error("config file %s %s; ignoring it", path, env.error)
    return env.values
